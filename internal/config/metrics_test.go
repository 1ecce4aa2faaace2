package config

import (
	"errors"
	"testing"
)

func TestMetricsPublicSetting(t *testing.T) {
	s, err := load(nil, nil)
	if err != nil || s.MetricsPublic {
		t.Fatalf("default: %v %v, want false", s.MetricsPublic, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{nil, map[string]string{"EVENTBUS_METRICS_PUBLIC": "true"}, true},
		{[]string{"--metrics-public"}, nil, true},
		{[]string{"--metrics-public=false"}, map[string]string{"EVENTBUS_METRICS_PUBLIC": "true"}, false},
	} {
		s, err := load(tc.args, tc.env)
		if err != nil || s.MetricsPublic != tc.want {
			t.Errorf("%v %v: %v %v, want %v", tc.args, tc.env, s.MetricsPublic, err, tc.want)
		}
	}
	if _, err := load(nil, map[string]string{"EVENTBUS_METRICS_PUBLIC": "maybe"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("maybe: %v, want ErrInvalid", err)
	}
}
