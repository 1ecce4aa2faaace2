package config

import (
	"strings"
	"testing"
	"time"
)

// TestAuditRetentionSetting: the audit log's retention defaults to 365
// days, is set by EVENTBUS_RETENTION_AUDIT or --retention-audit, and a
// bad value is an error naming the setting.
func TestAuditRetentionSetting(t *testing.T) {
	s, err := load(nil, nil)
	if err != nil || s.Retention.Audit != 365*24*time.Hour {
		t.Fatalf("default: %v, %v", s.Retention.Audit, err)
	}
	s, err = load(nil, map[string]string{"EVENTBUS_RETENTION_AUDIT": "30d"})
	if err != nil || s.Retention.Audit != 30*24*time.Hour {
		t.Fatalf("env: %v, %v", s.Retention.Audit, err)
	}
	s, err = load([]string{"--retention-audit", "720h"}, map[string]string{"EVENTBUS_RETENTION_AUDIT": "30d"})
	if err != nil || s.Retention.Audit != 720*time.Hour {
		t.Fatalf("flag: %v, %v", s.Retention.Audit, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"EVENTBUS_RETENTION_AUDIT": "1s"}, `EVENTBUS_RETENTION_AUDIT="1s"`},
		{[]string{"--retention-audit", "never"}, nil, `--retention-audit="never"`},
	} {
		if _, err := load(tc.args, tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want it to name %s", tc.args, tc.env, err, tc.want)
		}
	}
}
