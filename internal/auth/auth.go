// Package auth authenticates bearer tokens: JWT HS256 (claims sub,
// tenantId, role, exp; secret shared with the platform) and API keys from
// configuration. It answers who the caller is and what it may do.
//
// A JWT is refused unless it names a subject (sub), a tenant and a known
// role; its aud and iss claims are checked when an audience or issuer is
// configured. A JWT of tenant "*" (every tenant) is refused unless
// platform-wide JWTs are allowed (AllowPlatformJWT); API keys of tenant "*"
// are configured explicitly and always allowed.
package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// AllTenants is the tenant of a platform token: it sees every tenant.
const AllTenants = "*"

// Roles.
const (
	RolePublisher = "publisher"
	RoleAdmin     = "admin"
	RoleOwner     = "owner"
)

// knownRoles are the roles an API key may have: the three that may publish
// and the platform's read-only ones.
var knownRoles = map[string]bool{RolePublisher: true, RoleAdmin: true, RoleOwner: true, "member": true, "viewer": true}

// ErrUnauthenticated means no token, or a token that is not valid.
var ErrUnauthenticated = errors.New("unauthenticated")

// Principal is an authenticated caller.
type Principal struct {
	Subject  string
	TenantID string
	Role     string
}

// CanPublish reports whether the role may publish events.
func (p Principal) CanPublish() bool {
	return p.Role == RolePublisher || p.Role == RoleAdmin || p.Role == RoleOwner
}

// CanAdmin reports whether the role may use the admin routes.
func (p Principal) CanAdmin() bool { return p.Role == RoleAdmin || p.Role == RoleOwner }

// SeesTenant reports whether the caller may see or act for tenant.
func (p Principal) SeesTenant(tenant string) bool {
	return p.TenantID == AllTenants || p.TenantID == tenant
}

// Authenticator checks bearer tokens.
type Authenticator struct {
	secret []byte
	keys   map[[32]byte]Principal // by SHA-256 of the token
	parser *jwt.Parser

	allowPlatform    bool
	audience, issuer string
}

// Option configures how an Authenticator checks JWTs.
type Option func(*Authenticator)

// AllowPlatformJWT lets a JWT of tenant "*" act for every tenant. Without
// it such a JWT is refused.
func AllowPlatformJWT(allow bool) Option {
	return func(a *Authenticator) { a.allowPlatform = allow }
}

// Audience requires JWTs to carry aud (a string or a list holding it).
// Empty: aud is not checked.
func Audience(aud string) Option {
	return func(a *Authenticator) { a.audience = aud }
}

// Issuer requires JWTs to carry iss equal to iss. Empty: iss is not
// checked.
func Issuer(iss string) Option {
	return func(a *Authenticator) { a.issuer = iss }
}

// New returns an Authenticator for a JWT secret (empty: JWTs are refused)
// and API keys (see ParseAPIKeys).
func New(jwtSecret string, apiKeys map[string]Principal, opts ...Option) *Authenticator {
	a := &Authenticator{keys: make(map[[32]byte]Principal, len(apiKeys))}
	for _, o := range opts {
		o(a)
	}
	popts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()}
	if a.audience != "" {
		popts = append(popts, jwt.WithAudience(a.audience))
	}
	if a.issuer != "" {
		popts = append(popts, jwt.WithIssuer(a.issuer))
	}
	a.parser = jwt.NewParser(popts...)
	if jwtSecret != "" {
		a.secret = []byte(jwtSecret)
	}
	for token, p := range apiKeys {
		a.keys[sha256.Sum256([]byte(token))] = p
	}
	return a
}

// Enabled reports whether any way to authenticate is configured.
func (a *Authenticator) Enabled() bool { return a.secret != nil || len(a.keys) > 0 }

// Authenticate checks an Authorization header value ("Bearer <token>").
func (a *Authenticator) Authenticate(header string) (Principal, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Principal{}, fmt.Errorf("%w: want Authorization: Bearer <token>", ErrUnauthenticated)
	}
	token = strings.TrimSpace(token)
	// API keys are looked up by hash, so the lookup's timing says nothing
	// about the token.
	if p, ok := a.keys[sha256.Sum256([]byte(token))]; ok {
		return p, nil
	}
	if a.secret == nil || strings.Count(token, ".") != 2 {
		return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	claims := jwt.MapClaims{}
	if _, err := a.parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return a.secret, nil }); err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	p := Principal{}
	p.Subject, _ = claims["sub"].(string)
	p.TenantID, _ = claims["tenantId"].(string)
	p.Role, _ = claims["role"].(string)
	switch {
	case strings.TrimSpace(p.Subject) == "":
		return Principal{}, fmt.Errorf("%w: token lacks the sub claim", ErrUnauthenticated)
	case p.TenantID == "" || p.Role == "":
		return Principal{}, fmt.Errorf("%w: token lacks the tenantId or role claim", ErrUnauthenticated)
	case !knownRoles[p.Role]:
		return Principal{}, fmt.Errorf("%w: role %q is not one of publisher, admin, owner, member, viewer", ErrUnauthenticated, p.Role)
	case p.TenantID == AllTenants && !a.allowPlatform:
		return Principal{}, fmt.Errorf("%w: platform-wide tokens (tenantId \"*\") are not allowed as JWTs here", ErrUnauthenticated)
	}
	return p, nil
}

// ParseAPIKeys parses "token=tenantId:role,token2=tenantId:role". Tenant
// "*" means every tenant. Errors never repeat a token.
func ParseAPIKeys(s string) (map[string]Principal, error) {
	keys := map[string]Principal{}
	if strings.TrimSpace(s) == "" {
		return keys, nil
	}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		eq := strings.LastIndex(entry, "=") // tokens may end in '=' (base64)
		ok := eq > 0
		token, rest := entry[:max(eq, 0)], entry[eq+1:]
		tenant, role, ok2 := strings.Cut(rest, ":")
		switch {
		case !ok || !ok2 || token == "" || tenant == "" || role == "":
			return nil, fmt.Errorf("entry %d: want token=tenantId:role", i+1)
		case len(token) < 16:
			return nil, fmt.Errorf("entry %d: token shorter than 16 characters", i+1)
		case !knownRoles[role]:
			return nil, fmt.Errorf("entry %d: role %q: want publisher, admin, owner, member or viewer", i+1, role)
		}
		if _, dup := keys[token]; dup {
			return nil, fmt.Errorf("entry %d: token repeated", i+1)
		}
		keys[token] = Principal{Subject: "api-key-" + fmt.Sprint(i+1), TenantID: tenant, Role: role}
	}
	return keys, nil
}
