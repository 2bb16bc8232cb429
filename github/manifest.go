package github

import (
	"context"
	"fmt"
	"net/http"

	gh "github.com/google/go-github/v60/github"
)

// AppManifest is a GitHub App manifest: what GitHub needs to create the App
// patbot runs as, in one step.
type AppManifest struct {
	Name           string         `json:"name"`
	URL            string         `json:"url"` // homepage, required
	Description    string         `json:"description,omitempty"`
	HookAttributes HookAttributes `json:"hook_attributes"`
	RedirectURL    string         `json:"redirect_url"`
	// CallbackURLs are where GitHub may send a user who signed in to
	// patbot (at most 10).
	CallbackURLs       []string          `json:"callback_urls,omitempty"`
	Public             bool              `json:"public"`
	DefaultPermissions map[string]string `json:"default_permissions"`
	DefaultEvents      []string          `json:"default_events"`
}

// HookAttributes configure the App's webhook.
type HookAttributes struct {
	URL    string `json:"url"`
	Active bool   `json:"active"`
}

// AppCredentials are what GitHub returns once it has created an App from a
// manifest. ClientSecret, WebhookSecret and PEM are secrets.
type AppCredentials struct {
	ID            int64
	Slug          string
	HTMLURL       string
	ClientID      string
	ClientSecret  string
	WebhookSecret string
	PEM           string
}

// CompleteAppManifest exchanges the code GitHub hands back after creating
// an App from a manifest for the App's credentials (POST
// /app-manifests/{code}/conversions, unauthenticated). It must happen within
// an hour of the code being issued.
func CompleteAppManifest(ctx context.Context, baseURL, code string) (AppCredentials, error) {
	base, err := NormalizeBaseURL(baseURL)
	if err != nil {
		return AppCredentials{}, fmt.Errorf("github: base URL: %w", err)
	}
	c := gh.NewClient(&http.Client{Timeout: DefaultTimeout})
	c.BaseURL = base
	c.UserAgent = "patbot"
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	cfg, resp, err := c.Apps.CompleteAppManifest(ctx, code)
	if err := wrapError("convert the app manifest", resp, err); err != nil {
		return AppCredentials{}, err
	}
	return AppCredentials{ID: cfg.GetID(), Slug: cfg.GetSlug(), HTMLURL: cfg.GetHTMLURL(),
		ClientID: cfg.GetClientID(), ClientSecret: cfg.GetClientSecret(), WebhookSecret: cfg.GetWebhookSecret(), PEM: cfg.GetPEM()}, nil
}
