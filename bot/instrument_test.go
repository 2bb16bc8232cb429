package bot

import (
	"net/http"
	"testing"
)

func TestOperationNames(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.github.com/orgs/acme/personal-access-token-requests/42": "POST /orgs/*/personal-access-token-requests/*",
		"http://h/api/v3/orgs/acme/memberships/alice":                        "POST /orgs/*/memberships/*",
		"http://h/api/v3/organizations/123/personal-access-tokens?page=2":    "POST /organizations/*/personal-access-tokens",
		"http://h/api/v3/app/installations/99/access_tokens":                 "POST /app/installations/*/access_tokens",
		"http://h/api/v3/orgs/acme/teams/sec/memberships/bob":                "POST /orgs/*/teams/*/memberships/*",
	} {
		r, _ := http.NewRequest("POST", in, nil)
		if got := operation("github", r); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
	r, _ := http.NewRequest("POST", "https://slack.com/api/chat.postMessage", nil)
	if got := operation("slack", r); got != "chat.postMessage" {
		t.Error(got)
	}
}
