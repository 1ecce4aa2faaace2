package config

import (
	"errors"
	"testing"
)

func TestHTTPMaxStreamsSetting(t *testing.T) {
	s, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.HTTP.MaxStreams != 64 {
		t.Errorf("default %d, want 64", s.HTTP.MaxStreams)
	}
	s, err = load([]string{"--http-max-streams", "5"}, map[string]string{"EVENTBUS_HTTP_MAX_STREAMS": "7"})
	if err != nil || s.HTTP.MaxStreams != 5 {
		t.Errorf("flag over env: %d %v, want 5", s.HTTP.MaxStreams, err)
	}
	if s, err = load(nil, map[string]string{"EVENTBUS_HTTP_MAX_STREAMS": "7"}); err != nil || s.HTTP.MaxStreams != 7 {
		t.Errorf("env: %d %v, want 7", s.HTTP.MaxStreams, err)
	}
	for _, bad := range []string{"0", "-1", "x", "100001"} {
		if _, err := load(nil, map[string]string{"EVENTBUS_HTTP_MAX_STREAMS": bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
}
