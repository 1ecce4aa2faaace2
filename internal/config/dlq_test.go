package config

import (
	"errors"
	"strings"
	"testing"
)

// TestDLQSettings: EVENTBUS_DLQ_BUDGET (default 10,000) and
// EVENTBUS_MAX_REDRIVES (default 3) are read from the environment or
// their flags (flags win), reach eventbus.Config, and a bad value is an
// error naming the setting and the value.
func TestDLQSettings(t *testing.T) {
	for _, tc := range []struct {
		name                string
		args                []string
		env                 map[string]string
		budget, maxRedrives int
	}{
		{"defaults", nil, nil, 10000, 3},
		{"env", nil, map[string]string{"EVENTBUS_DLQ_BUDGET": "500", "EVENTBUS_MAX_REDRIVES": "7"}, 500, 7},
		{"flags win", []string{"--dlq-budget", "20000", "--max-redrives", "1"},
			map[string]string{"EVENTBUS_DLQ_BUDGET": "500", "EVENTBUS_MAX_REDRIVES": "7"}, 20000, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := load(tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if s.DLQBudget != tc.budget || s.MaxRedrives != tc.maxRedrives {
				t.Errorf("settings: budget %d max redrives %d, want %d %d", s.DLQBudget, s.MaxRedrives, tc.budget, tc.maxRedrives)
			}
			cfg := s.BusConfig(nil, nil)
			if cfg.DLQBudget != tc.budget || cfg.MaxRedrives != tc.maxRedrives {
				t.Errorf("BusConfig: budget %d max redrives %d, want %d %d", cfg.DLQBudget, cfg.MaxRedrives, tc.budget, tc.maxRedrives)
			}
		})
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"EVENTBUS_DLQ_BUDGET": "0"}, `EVENTBUS_DLQ_BUDGET="0"`},
		{nil, map[string]string{"EVENTBUS_DLQ_BUDGET": "10k"}, `EVENTBUS_DLQ_BUDGET="10k"`},
		{[]string{"--dlq-budget", "-5"}, nil, `--dlq-budget="-5"`},
		{nil, map[string]string{"EVENTBUS_MAX_REDRIVES": "0"}, `EVENTBUS_MAX_REDRIVES="0"`},
		{[]string{"--max-redrives", "1001"}, nil, `--max-redrives="1001"`},
		{[]string{"--max-redrives", "three"}, nil, `--max-redrives="three"`},
	} {
		if _, err := load(tc.args, tc.env); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want ErrInvalid naming %s", tc.args, tc.env, err, tc.want)
		}
	}
}
