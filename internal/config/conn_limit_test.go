package config

import (
	"errors"
	"testing"
)

func TestHTTPMaxConnectionsSetting(t *testing.T) {
	s, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.HTTP.MaxConnections != 10000 {
		t.Errorf("default %d, want 10000", s.HTTP.MaxConnections)
	}
	s, err = load([]string{"--http-max-connections", "500"}, map[string]string{"EVENTBUS_HTTP_MAX_CONNECTIONS": "7"})
	if err != nil || s.HTTP.MaxConnections != 500 {
		t.Errorf("flag over env: %d %v, want 500", s.HTTP.MaxConnections, err)
	}
	for _, bad := range []string{"0", "-1", "x", "1000001"} {
		if _, err := load(nil, map[string]string{"EVENTBUS_HTTP_MAX_CONNECTIONS": bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
}
