package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const secret = "test-secret-0123456789abcdef"

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthenticate(t *testing.T) {
	keys, err := ParseAPIKeys("key-tenant-a-publisher=tenant-a:publisher, key-platform-admin-0001=*:admin")
	if err != nil {
		t.Fatal(err)
	}
	a := New(secret, keys)
	exp := time.Now().Add(time.Hour).Unix()
	good := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "u1", "tenantId": "t1", "role": "owner", "exp": exp})

	tests := []struct {
		name   string
		header string
		want   Principal
		ok     bool
	}{
		{"jwt", "Bearer " + good, Principal{"u1", "t1", "owner"}, true},
		{"jwt lowercase scheme", "bearer " + good, Principal{"u1", "t1", "owner"}, true},
		{"api key", "Bearer key-tenant-a-publisher", Principal{"api-key-1", "tenant-a", "publisher"}, true},
		{"platform key", "Bearer key-platform-admin-0001", Principal{"api-key-2", "*", "admin"}, true},
		{"missing", "", Principal{}, false},
		{"basic", "Basic abc", Principal{}, false},
		{"unknown key", "Bearer nope", Principal{}, false},
		{"wrong secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("other"), jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "exp": exp}), Principal{}, false},
		{"expired", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "exp": time.Now().Add(-time.Minute).Unix()}), Principal{}, false},
		{"no exp", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner"}), Principal{}, false},
		{"hs512 refused", "Bearer " + sign(t, jwt.SigningMethodHS512, []byte(secret), jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "exp": exp}), Principal{}, false},
		{"no tenant claim", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "u", "role": "owner", "exp": exp}), Principal{}, false},
		{"alg none", "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1IiwidGVuYW50SWQiOiJ0Iiwicm9sZSI6Im93bmVyIn0.", Principal{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(tt.header)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("err = %v, want ErrUnauthenticated", err)
			}
			if p != tt.want {
				t.Errorf("principal %+v, want %+v", p, tt.want)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	for role, want := range map[string][2]bool{"publisher": {true, false}, "admin": {true, true}, "owner": {true, true}, "viewer": {false, false}} {
		p := Principal{Role: role, TenantID: "t"}
		if p.CanPublish() != want[0] || p.CanAdmin() != want[1] {
			t.Errorf("%s: publish %v admin %v", role, p.CanPublish(), p.CanAdmin())
		}
	}
	if !(Principal{TenantID: "*"}).SeesTenant("x") || (Principal{TenantID: "a"}).SeesTenant("b") {
		t.Error("SeesTenant")
	}
}

func TestParseAPIKeysBase64Token(t *testing.T) {
	keys, err := ParseAPIKeys("c2VjcmV0LXRva2VuLTEyMzQ1Ng===acme:admin")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := keys["c2VjcmV0LXRva2VuLTEyMzQ1Ng=="]; !ok || p.TenantID != "acme" || p.Role != "admin" {
		t.Errorf("keys %v", keys)
	}
}

func TestParseAPIKeysErrorsNeverShowTokens(t *testing.T) {
	for _, in := range []string{"secrettoken-123456", "secrettoken-123456=t", "secrettoken-123456=:admin", "short=t:admin",
		"secrettoken-123456=t:Admin", "secrettoken-123456=t:admin,secrettoken-123456=t:admin"} {
		_, err := ParseAPIKeys(in)
		if err == nil {
			t.Errorf("%q accepted", in)
			continue
		}
		if strings.Contains(err.Error(), "secrettoken") {
			t.Errorf("error shows the token: %v", err)
		}
	}
}
