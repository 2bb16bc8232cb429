package githubtest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type authKey struct{}

// withAuth lets the auth middleware note, on the call being recorded, what
// credentials it saw.
func withAuth(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, authKey{}, c)
}

func noteAuth(r *http.Request, kind string, installationID int64) {
	if c, ok := r.Context().Value(authKey{}).(*Call); ok {
		c.Auth, c.InstallationID = kind, installationID
	}
}

// noteUser notes, on the call being recorded, the user a user token
// belongs to.
func noteUser(r *http.Request, login string) {
	if c, ok := r.Context().Value(authKey{}).(*Call); ok {
		c.Auth, c.User = "user", login
	}
}

// actingUser is the user whose token a call carries ("" for the App).
func actingUser(r *http.Request) string {
	if c, ok := r.Context().Value(authKey{}).(*Call); ok {
		return c.User
	}
	return ""
}

// app requires a valid App JWT, as GitHub does for /app/... and the
// installation lookup.
func (s *Server) app(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.verifyJWT(r.Header.Get("Authorization")); err != nil {
			writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded: "+err.Error())
			return
		}
		noteAuth(r, "jwt", 0)
		h(w, r)
	}
}

// verifyJWT checks what GitHub checks of an App JWT: RS256 signed by the
// App's key, issuer the App ID, issued no later than now (60 s of clock
// drift allowed), expiring in the future and at most 10 minutes after issue.
func (s *Server) verifyJWT(header string) error {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return errors.New("no Bearer token")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	var head struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &head); err != nil || head.Alg != "RS256" {
		return fmt.Errorf("alg %q is not RS256", head.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return errors.New("malformed signature")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("signature does not match the App's key")
	}
	var claims struct {
		Iss any   `json:"iss"`
		Iat int64 `json:"iat"`
		Exp int64 `json:"exp"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return errors.New("malformed claims")
	}
	if fmt.Sprint(claims.Iss) != strconv.FormatInt(s.AppID, 10) {
		return fmt.Errorf("issuer %v is not app %d", claims.Iss, s.AppID)
	}
	now := time.Now().Unix()
	switch {
	case claims.Iat > now+60:
		return errors.New("'Issued at' claim (iat) must be an Integer representing a time in the past")
	case claims.Exp <= now:
		return errors.New("'Expiration time' claim ('exp') is too far in the past")
	case claims.Exp-claims.Iat > 600:
		return errors.New("'Expiration time' claim ('exp') is too far in the future")
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// installation requires a live installation token of the org's
// installation, and the permission the endpoint needs.
func (s *Server) installation(permission, level string, h func(w http.ResponseWriter, r *http.Request, o *org)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "token ")
		if !ok {
			tok, _ = strings.CutPrefix(auth, "Bearer ")
		}
		if strings.HasPrefix(tok, userTokenPrefix) {
			s.asOwner(w, r, tok, h)
			return
		}
		s.mu.Lock()
		it, known := s.tokens[tok]
		o := s.orgFromPath(r)
		s.mu.Unlock()
		if !known || time.Now().After(it.expires) {
			writeError(w, http.StatusUnauthorized, "Bad credentials")
			return
		}
		noteAuth(r, "installation", it.installationID)
		if o == nil || o.installationID != it.installationID {
			writeError(w, http.StatusNotFound, "Not Found")
			return
		}
		s.mu.Lock()
		granted := o.permissions[permission]
		s.mu.Unlock()
		if granted == "" || level == "write" && granted != "write" {
			writeError(w, http.StatusForbidden, "Resource not accessible by integration")
			return
		}
		h(w, r, o)
	}
}

// orgFromPath finds the org named by {org} or, as in GitHub's Link headers,
// by {orgid}. s.mu must be held.
func (s *Server) orgFromPath(r *http.Request) *org {
	if login := r.PathValue("org"); login != "" {
		return s.orgs[strings.ToLower(login)]
	}
	id, _ := strconv.ParseInt(r.PathValue("orgid"), 10, 64)
	for _, o := range s.orgs {
		if o.id == id {
			return o
		}
	}
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	var perms map[string]string
	for _, o := range s.orgs {
		if o.installationID == id {
			perms = o.permissions
		}
	}
	if perms == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	tok := "ghs_" + hex.EncodeToString(b)
	expires := time.Now().Add(s.tokenTTL).UTC().Truncate(time.Second)
	s.tokens[tok] = issuedToken{installationID: id, expires: expires}
	s.issued++
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":                tok,
		"expires_at":           expires.Format(time.RFC3339),
		"permissions":          perms,
		"repository_selection": "all",
	})
}

func (s *Server) getInstallation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orgs[strings.ToLower(r.PathValue("org"))]
	if o == nil || o.installationID == 0 {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                   o.installationID,
		"app_id":               s.AppID,
		"app_slug":             "patbot",
		"target_id":            o.id,
		"target_type":          "Organization",
		"account":              map[string]any{"login": o.login, "id": o.id, "type": "Organization"},
		"repository_selection": "all",
		"permissions":          o.permissions,
		"events":               []string{"personal_access_token_request"},
		"access_tokens_url":    fmt.Sprintf("%s/app/installations/%d/access_tokens", strings.TrimSuffix(s.URL, "/"), o.installationID),
	})
}

func (s *Server) getApp(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"id": s.AppID, "slug": "patbot", "name": "patbot", "node_id": "A_patbot",
		"owner":       map[string]any{"login": "acme", "type": "Organization"},
		"permissions": map[string]string{"organization_personal_access_token_requests": "write", "organization_personal_access_tokens": "write", "members": "read"},
		"events":      []string{"personal_access_token_request"},
	})
}
