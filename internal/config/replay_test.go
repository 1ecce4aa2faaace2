package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestReplaySettings: the replay runner settings reach eventbus.Config
// (0 runners: none, which the library spells -1), and bad values are
// refused naming the setting.
func TestReplaySettings(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		runners   int // in eventbus.Config
		lease     time.Duration
		retention time.Duration
	}{
		{"defaults", nil, nil, 2, 5 * time.Second, 30 * 24 * time.Hour},
		{"env", nil, map[string]string{"EVENTBUS_REPLAY_RUNNERS": "4", "EVENTBUS_REPLAY_LEASE": "2s", "EVENTBUS_REPLAY_JOB_RETENTION": "7d"},
			4, 2 * time.Second, 7 * 24 * time.Hour},
		{"none here", []string{"--replay-runners", "0"}, map[string]string{"EVENTBUS_REPLAY_RUNNERS": "4"}, -1, 5 * time.Second, 30 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := load(tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.BusConfig(nil, nil)
			if cfg.ReplayRunners != tc.runners || cfg.ReplayLease != tc.lease || cfg.ReplayJobRetention != tc.retention {
				t.Errorf("BusConfig: runners %d lease %v retention %v, want %d %v %v",
					cfg.ReplayRunners, cfg.ReplayLease, cfg.ReplayJobRetention, tc.runners, tc.lease, tc.retention)
			}
		})
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"EVENTBUS_REPLAY_RUNNERS": "-1"}, `EVENTBUS_REPLAY_RUNNERS="-1"`},
		{[]string{"--replay-runners", "65"}, nil, `--replay-runners="65"`},
		{nil, map[string]string{"EVENTBUS_REPLAY_LEASE": "100ms"}, `EVENTBUS_REPLAY_LEASE="100ms"`},
		{[]string{"--replay-lease", "1h"}, nil, `--replay-lease="1h"`},
		{nil, map[string]string{"EVENTBUS_REPLAY_JOB_RETENTION": "10s"}, `EVENTBUS_REPLAY_JOB_RETENTION="10s"`},
	} {
		if _, err := load(tc.args, tc.env); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want ErrInvalid naming %s", tc.args, tc.env, err, tc.want)
		}
	}
}
