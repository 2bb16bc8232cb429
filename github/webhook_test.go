package github

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSignatureDocumentedVector(t *testing.T) {
	// From GitHub's "Validating webhook deliveries".
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign(secret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if err := VerifySignature(secret, body, want); err != nil {
		t.Fatalf("documented signature rejected: %v", err)
	}
}

func TestVerifySignatureMatrix(t *testing.T) {
	secret := []byte("s3cret")
	body, err := os.ReadFile("testdata/personal_access_token_request.created.json")
	if err != nil {
		t.Fatal(err)
	}
	good := Sign(secret, body)
	tests := map[string]struct {
		secret []byte
		body   []byte
		header string
		want   error
	}{
		"valid":                 {secret, body, good, nil},
		"missing":               {secret, body, "", ErrNoSignature},
		"wrong secret":          {[]byte("other"), body, good, ErrBadSignature},
		"body changed":          {secret, append([]byte(" "), body...), good, ErrBadSignature},
		"no sha256= prefix":     {secret, body, strings.TrimPrefix(good, "sha256="), ErrBadSignature},
		"sha1 scheme":           {secret, body, "sha1=" + strings.TrimPrefix(good, "sha256="), ErrBadSignature},
		"not hex":               {secret, body, "sha256=zz", ErrBadSignature},
		"truncated":             {secret, body, good[:len(good)-2], ErrBadSignature},
		"upper-case hex is hex": {secret, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := VerifySignature(tc.secret, tc.body, tc.header)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// The streaming check agrees, and counts what it read.
			n, err := VerifySignatureReader(tc.secret, bytes.NewReader(tc.body), tc.header)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) || n != int64(len(tc.body)) {
				t.Fatalf("streaming: %d bytes, %v; want %d, %v", n, err, len(tc.body), tc.want)
			}
		})
	}
}

// parseFixture parses one of testdata's webhook payloads.
func parseFixture(t *testing.T, name string) (*RequestEvent, []byte) {
	t.Helper()
	body, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ParseRequestEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	return ev, body
}

func TestParseRealCreatedFixture(t *testing.T) {
	ev, _ := parseFixture(t, "personal_access_token_request.created.json")
	if ev.Action != ActionCreated || ev.Org != "github-ssh-authority" || ev.InstallationID != 49956902 {
		t.Errorf("event = %+v", ev)
	}
	r := ev.Request
	if r.ID != 415440 || r.Owner.Login != "halain987" || r.Owner.ID != 18029382 || r.Owner.HTMLURL != "https://github.com/halain987" {
		t.Errorf("request = %+v", r)
	}
	if r.RepositorySelection != SelectionNone || r.Repositories != nil || r.RepositoryCount != 0 {
		t.Errorf("repositories = %q %v %d", r.RepositorySelection, r.Repositories, r.RepositoryCount)
	}
	if r.TokenID != 0 || r.TokenName != "" {
		t.Errorf("token fields should be absent: %d %q", r.TokenID, r.TokenName)
	}
	wantCreated := time.Date(2024, 4, 23, 14, 52, 27, 0, time.UTC)
	if !r.CreatedAt.Equal(wantCreated) {
		t.Errorf("created_at = %v, want %v", r.CreatedAt, wantCreated)
	}
	if r.TokenExpiresAt == nil || !r.TokenExpiresAt.Equal(time.Date(2024, 5, 23, 14, 52, 27, 0, time.UTC)) {
		t.Errorf("token_expires_at = %v", r.TokenExpiresAt)
	}
	if r.TokenLastUsedAt != nil {
		t.Errorf("token_last_used_at = %v, want nil", r.TokenLastUsedAt)
	}
	if len(r.PermissionsResult.Organization)+len(r.PermissionsResult.Repository)+len(r.PermissionsResult.Other) != 0 {
		t.Errorf("permissions = %+v, want empty", r.PermissionsResult)
	}
}

func TestParseSyntheticApprovedFixture(t *testing.T) {
	ev, _ := parseFixture(t, "personal_access_token_request.approved.json")
	if ev.Action != ActionApproved || ev.Org != "test-org" || ev.Request.ID != 42 || ev.Sender.Login != "admin" {
		t.Errorf("event = %+v", ev)
	}
	if ev.InstallationID != 0 {
		t.Errorf("installation = %d, want 0 (absent)", ev.InstallationID)
	}
}

func TestParseRequestEventRejects(t *testing.T) {
	tests := map[string]struct {
		body string
		want string
	}{
		"not JSON":       {`{"action":`, "malformed JSON"},
		"array":          {`[1,2]`, "malformed JSON"},
		"no action":      {`{"personal_access_token_request":{"id":1},"organization":{"login":"a"}}`, "lacks action"},
		"empty action":   {`{"action":"","personal_access_token_request":{"id":1},"organization":{"login":"a"}}`, "lacks action"},
		"no request":     {`{"action":"created","organization":{"login":"a"}}`, "personal_access_token_request.id"},
		"no request id":  {`{"action":"created","personal_access_token_request":{},"organization":{"login":"a"}}`, "personal_access_token_request.id"},
		"no org":         {`{"action":"created","personal_access_token_request":{"id":1}}`, "organization.login"},
		"id wrong type":  {`{"action":"created","personal_access_token_request":{"id":"1"},"organization":{"login":"a"}}`, "malformed JSON"},
		"everything":     {`{}`, "lacks action, personal_access_token_request.id, organization.login"},
		"bad created_at": {`{"action":"created","personal_access_token_request":{"id":1,"created_at":"yesterday"},"organization":{"login":"a"}}`, "malformed JSON"},
		"trailing data":  {`{"action":"created","personal_access_token_request":{"id":1},"organization":{"login":"a"}} {}`, "malformed JSON"},
		// Two parsers could each see a different org: refused outright.
		"duplicate name": {`{"action":"created","personal_access_token_request":{"id":1},"organization":{"login":"a"},"organization":{"login":"b"}}`, "malformed JSON"},
		"invalid UTF-8":  {"{\"action\":\"created\xff\",\"personal_access_token_request\":{\"id\":1},\"organization\":{\"login\":\"a\"}}", "malformed JSON"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseRequestEvent([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCompactEventRoundTrip(t *testing.T) {
	ev, body := parseFixture(t, "personal_access_token_request.created.json")
	ev.Request.PermissionsAdded.Repository = map[string]string{"contents": "write"}
	compact, err := EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(compact) > len(body)/3 {
		t.Errorf("compact form is %d bytes of the payload's %d", len(compact), len(body))
	}
	got, err := DecodeEvent(compact)
	if err != nil {
		t.Fatal(err)
	}
	if got.Action != ev.Action || got.Org != ev.Org || got.Sender != ev.Sender || got.InstallationID != ev.InstallationID ||
		got.Request.ID != ev.Request.ID || got.Request.Owner != ev.Request.Owner || !got.Request.CreatedAt.Equal(ev.Request.CreatedAt) ||
		!got.Request.TokenExpiresAt.Equal(*ev.Request.TokenExpiresAt) || got.Request.TokenLastUsedAt != nil ||
		got.Request.PermissionsAdded.Repository["contents"] != "write" || got.Request.RepositorySelection != ev.Request.RepositorySelection {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, ev)
	}

	// Jobs stored by earlier versions hold encoding/json's output.
	legacy, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if old, err := DecodeEvent(legacy); err != nil || old.Request.ID != ev.Request.ID || old.Org != ev.Org {
		t.Errorf("legacy compact form: %+v, %v", old, err)
	}
	if _, err := DecodeEvent([]byte(`{"action":"created"}`)); err == nil {
		t.Error("event without a request id decoded")
	}
}

func TestPayloadFormEncoded(t *testing.T) {
	json := `{"action":"created"}`
	form := "payload=" + url.QueryEscape(json)
	got, err := Payload("application/x-www-form-urlencoded", []byte(form))
	if err != nil || string(got) != json {
		t.Fatalf("form payload = %q, %v", got, err)
	}
	got, err = Payload("application/json", []byte(json))
	if err != nil || string(got) != json {
		t.Fatalf("json payload = %q, %v", got, err)
	}
	if _, err := Payload("application/x-www-form-urlencoded", []byte("other=1")); err == nil {
		t.Error("form without payload accepted")
	}
}

func TestTruncateReason(t *testing.T) {
	long := strings.Repeat("é", 1100)
	got := TruncateReason(long)
	if n := len([]rune(got)); n != MaxReasonLength {
		t.Errorf("truncated to %d characters, want %d", n, MaxReasonLength)
	}
	if TruncateReason("short") != "short" {
		t.Error("short reason changed")
	}
}

func TestWebURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "https://github.com",
		"https://api.github.com/":         "https://github.com",
		"https://ghe.example.com/api/v3/": "https://ghe.example.com",
		"http://127.0.0.1:9/api/v3":       "http://127.0.0.1:9",
	} {
		if got := WebURL(in); got != want {
			t.Errorf("WebURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkParseRequestEvent parses a real created delivery, compact as
// GitHub sends it.
func BenchmarkParseRequestEvent(b *testing.B) {
	raw, err := os.ReadFile("testdata/personal_access_token_request.created.json")
	if err != nil {
		b.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		b.Fatal(err)
	}
	payload := compact.Bytes()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequestEvent(payload); err != nil {
			b.Fatal(err)
		}
	}
}
