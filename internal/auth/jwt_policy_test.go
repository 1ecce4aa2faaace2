package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWTPolicy covers the JWT rules of issue 9 item 9: platform-wide JWTs
// only when allowed, sub and a known role required, aud and iss checked
// when configured. API keys of tenant * stay allowed.
func TestJWTPolicy(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	tok := func(claims jwt.MapClaims) string {
		if _, ok := claims["exp"]; !ok {
			claims["exp"] = exp
		}
		return "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(secret), claims)
	}
	keys, err := ParseAPIKeys("key-platform-admin-0001=*:admin")
	if err != nil {
		t.Fatal(err)
	}
	plain := New(secret, keys)
	platform := New(secret, keys, AllowPlatformJWT(true))
	strict := New(secret, keys, Audience("eventbus"), Issuer("https://platform.example"))

	tests := []struct {
		name   string
		a      *Authenticator
		header string
		want   Principal
		ok     bool
	}{
		{"platform jwt refused by default", plain, tok(jwt.MapClaims{"sub": "u", "tenantId": "*", "role": "admin"}), Principal{}, false},
		{"platform jwt refused for any role", plain, tok(jwt.MapClaims{"sub": "u", "tenantId": "*", "role": "viewer"}), Principal{}, false},
		{"platform jwt allowed when configured", platform, tok(jwt.MapClaims{"sub": "u", "tenantId": "*", "role": "admin"}), Principal{"u", "*", "admin"}, true},
		{"platform api key still allowed", plain, "Bearer key-platform-admin-0001", Principal{"api-key-1", "*", "admin"}, true},
		{"no sub", plain, tok(jwt.MapClaims{"tenantId": "t", "role": "owner"}), Principal{}, false},
		{"empty sub", plain, tok(jwt.MapClaims{"sub": " ", "tenantId": "t", "role": "owner"}), Principal{}, false},
		{"non-string sub", plain, tok(jwt.MapClaims{"sub": 42, "tenantId": "t", "role": "owner"}), Principal{}, false},
		{"unknown role", plain, tok(jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "superuser"}), Principal{}, false},
		{"known read-only role", plain, tok(jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "viewer"}), Principal{"u", "t", "viewer"}, true},
		{"aud and iss ignored when not configured", plain, tok(jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "aud": "other", "iss": "x"}), Principal{"u", "t", "owner"}, true},
		{"aud and iss match", strict, tok(jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "aud": "eventbus", "iss": "https://platform.example"}), Principal{"u", "t", "owner"}, true},
		{"aud list holds it", strict, tok(jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "aud": []string{"x", "eventbus"}, "iss": "https://platform.example"}), Principal{"u", "t", "owner"}, true},
		{"wrong aud", strict, tok(jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "aud": "other", "iss": "https://platform.example"}), Principal{}, false},
		{"missing aud", strict, tok(jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "iss": "https://platform.example"}), Principal{}, false},
		{"wrong iss", strict, tok(jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "aud": "eventbus", "iss": "https://evil.example"}), Principal{}, false},
		{"missing iss", strict, tok(jwt.MapClaims{"sub": "u", "tenantId": "t", "role": "owner", "aud": "eventbus"}), Principal{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.a.Authenticate(tt.header)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("err = %v, want ErrUnauthenticated", err)
			}
			if p != tt.want {
				t.Errorf("principal = %+v, want %+v", p, tt.want)
			}
		})
	}
}
