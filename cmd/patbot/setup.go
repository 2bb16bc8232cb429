package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/identity"
	"github.com/patbot/patbot/github"
)

// setupTimeout is how long setup waits for GitHub: a manifest's code must
// be redeemed within an hour.
const setupTimeout = time.Hour

// setup runs patbot setup's subcommands.
func setup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "github" {
		fmt.Fprintln(stderr, "usage: patbot setup github -webhook-url URL [-org ORG] [flags]")
		return exitUsage
	}
	return setupGitHub(ctx, args[1:], getenv, stdout, stderr)
}

type setupOptions struct {
	org, webhookURL, publicURL, name, envFile, keyFile, addr, apiURL string
	force                                                            bool
}

// setupGitHub creates patbot's GitHub App from a manifest: it serves a
// local page that submits the manifest to GitHub, receives the code GitHub
// redirects back with, exchanges it for the App's credentials, and writes
// them to an env file and a key file.
func setupGitHub(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var o setupOptions
	fs := commandFlags("setup github", stderr)
	fs.StringVar(&o.org, "org", "", "create the App owned by this organization (default: your user account)")
	fs.StringVar(&o.webhookURL, "webhook-url", "", "where GitHub sends webhooks: https://YOUR-HOST/github/webhook (required)")
	fs.StringVar(&o.publicURL, "public-url", "", "where browsers reach patbot, for signing in to GitHub (default: the webhook URL's scheme and host)")
	fs.StringVar(&o.name, "name", "patbot", "the App's name (unique on GitHub)")
	fs.StringVar(&o.envFile, "env-file", "patbot.env", "file to write the App's settings to (GITHUB_APP_ID, GITHUB_WEBHOOK_SECRET, GITHUB_APP_CLIENT_ID…)")
	fs.StringVar(&o.keyFile, "key-file", "patbot.pem", "file to write the App's private key to")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:3000", "local address of the setup page")
	fs.StringVar(&o.apiURL, "github-api-url", getenv("GITHUB_API_URL"), "REST base URL (GitHub Enterprise Server: https://HOST/api/v3/); env GITHUB_API_URL")
	fs.BoolVar(&o.force, "force", false, "overwrite the env and key files")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "patbot setup github: %v\n", err)
		return exitUsage
	}
	if err := o.run(ctx, stdout); err != nil {
		fmt.Fprintf(stderr, "patbot setup github: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func (o *setupOptions) validate() error {
	var problems []string
	u, err := url.Parse(o.webhookURL)
	switch {
	case o.webhookURL == "":
		problems = append(problems, "-webhook-url is required")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		problems = append(problems, fmt.Sprintf("-webhook-url %q is not an http(s) URL", o.webhookURL))
	case u.Path != "/github/webhook":
		problems = append(problems, fmt.Sprintf("-webhook-url should end in /github/webhook, where patbot receives webhooks (got %q)", u.Path))
	}
	if o.publicURL == "" && err == nil && u.Host != "" {
		o.publicURL = u.Scheme + "://" + u.Host + "/"
	}
	if p, err := url.Parse(o.publicURL); o.publicURL != "" && (err != nil || p.Host == "" || p.Scheme != "https" && p.Scheme != "http") {
		problems = append(problems, fmt.Sprintf("-public-url %q is not an http(s) URL", o.publicURL))
	} else if o.publicURL != "" && !strings.HasSuffix(o.publicURL, "/") {
		o.publicURL += "/"
	}
	if o.org != "" && !orgLoginRE.MatchString(o.org) {
		problems = append(problems, fmt.Sprintf("-org %q is not a GitHub organization login", o.org))
	}
	if o.apiURL == "" {
		o.apiURL = github.DefaultBaseURL
	}
	if _, err := github.NormalizeBaseURL(o.apiURL); err != nil {
		problems = append(problems, "-github-api-url: "+err.Error())
	}
	if !o.force {
		for _, f := range []string{o.envFile, o.keyFile} {
			if _, err := os.Stat(f); err == nil {
				problems = append(problems, f+" exists: move it away or pass -force")
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

var setupPage = template.Must(template.New("setup").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>patbot setup</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>Create patbot's GitHub App</h1>
<p>This sends GitHub a manifest for an App named <b>{{.Name}}</b> with the permissions patbot needs
(personal access token requests and personal access tokens: write; members: read), subscribed to
personal access token request events, delivering webhooks to <code>{{.Webhook}}</code>.
GitHub asks you to confirm, then comes back here.</p>
<form action="{{.Action}}" method="post">
<input type="hidden" name="manifest" value="{{.Manifest}}">
<button type="submit" style="font-size: 1.2em">Create the App on GitHub</button>
</form>
</body></html>
`))

func (o *setupOptions) run(ctx context.Context, stdout io.Writer) error {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	local := "http://" + ln.Addr().String()
	state := randomSecret()
	web := github.WebURL(o.apiURL)
	action := web + "/settings/apps/new"
	if o.org != "" {
		action = web + "/organizations/" + url.PathEscape(o.org) + "/settings/apps/new"
	}
	action += "?state=" + url.QueryEscape(state)
	hook, _ := url.Parse(o.webhookURL)
	manifest, _ := json.Marshal(github.AppManifest{
		Name: o.name, URL: hook.Scheme + "://" + hook.Host,
		Description:        "Approves fine-grained personal access token requests from Slack.",
		HookAttributes:     github.HookAttributes{URL: o.webhookURL, Active: true},
		RedirectURL:        local + "/callback",
		CallbackURLs:       []string{o.publicURL + identity.CallbackPath},
		DefaultPermissions: bot.RequiredPermissions,
		DefaultEvents:      []string{github.EventPATRequest},
	})

	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	result := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		setupPage.Execute(w, map[string]string{"Name": o.name, "Webhook": o.webhookURL, "Action": action, "Manifest": string(manifest)})
	})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 || q.Get("code") == "" {
			http.Error(w, "This is not GitHub's answer to the setup page patbot served: start again from "+local, http.StatusBadRequest)
			return
		}
		creds, err := github.CompleteAppManifest(r.Context(), o.apiURL, q.Get("code"))
		if err == nil {
			err = o.write(creds)
		}
		if err != nil {
			http.Error(w, "patbot could not finish: "+err.Error(), http.StatusBadGateway)
			select {
			case result <- err:
			default:
			}
			return
		}
		fmt.Fprintf(w, "<!doctype html><p style=\"font-family: sans-serif\">The App <b>%s</b> (ID %d) exists. Now install it on your organization: "+
			"<a href=\"%s/installations/new\">%s/installations/new</a>. You can close this page.</p>",
			template.HTMLEscapeString(creds.Slug), creds.ID, template.HTMLEscapeString(creds.HTMLURL), template.HTMLEscapeString(creds.HTMLURL))
		fmt.Fprintf(stdout, "\nCreated the GitHub App %s (ID %d).\n", creds.Slug, creds.ID)
		fmt.Fprintf(stdout, "Wrote %s and %s (mode 0600; keep them secret).\n\nNext steps:\n", o.envFile, o.keyFile)
		fmt.Fprintf(stdout, "  1. Install the App on each organization patbot serves: %s/installations/new\n", creds.HTMLURL)
		fmt.Fprintf(stdout, "  2. Require approval of fine-grained tokens in each organization's settings (Personal access tokens).\n")
		fmt.Fprintf(stdout, "  3. Load the env file (set -a; . %s; set +a), add the Slack settings, write patbot.yaml, then run: patbot check\n", o.envFile)
		result <- nil
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go srv.Serve(ln)
	defer func() {
		// Let the last page finish before stopping.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()

	fmt.Fprintf(stdout, "Open %s/ in a browser signed in to GitHub%s, and create the App.\nWaiting for GitHub (Ctrl-C to stop)…\n",
		local, map[bool]string{true: " as an owner of " + o.org, false: ""}[o.org != ""])
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("stopped before GitHub came back: %w", ctx.Err())
	}
}

// write stores the credentials: the key and the env file, both readable by
// their owner only.
func (o *setupOptions) write(c github.AppCredentials) error {
	if _, err := github.ParsePrivateKey([]byte(c.PEM)); err != nil {
		return fmt.Errorf("GitHub returned an unusable private key: %w", err)
	}
	keyPath, err := filepath.Abs(o.keyFile)
	if err != nil {
		return err
	}
	if err := writeSecretFile(keyPath, c.PEM); err != nil {
		return err
	}
	env := fmt.Sprintf("# GitHub App %s (ID %d), created by patbot setup github on %s\nGITHUB_APP_ID=%d\nGITHUB_APP_PRIVATE_KEY_FILE=%s\n",
		c.Slug, c.ID, time.Now().UTC().Format("2006-01-02"), c.ID, keyPath)
	if c.WebhookSecret != "" {
		env += "GITHUB_WEBHOOK_SECRET=" + c.WebhookSecret + "\n"
	} else {
		env += "# GitHub set no webhook secret: set one in the App's settings and here.\nGITHUB_WEBHOOK_SECRET=\n"
	}
	if o.apiURL != github.DefaultBaseURL {
		env += "GITHUB_API_URL=" + o.apiURL + "\n"
		env += "GITHUB_WEB_URL=" + github.WebURL(o.apiURL) + "/\n"
	}
	// Signing in to GitHub: approvers link their accounts (/pat link).
	key := make([]byte, identity.KeySize)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	env += fmt.Sprintf("GITHUB_APP_CLIENT_ID=%s\nGITHUB_APP_CLIENT_SECRET=%s\nPATBOT_PUBLIC_URL=%s\n"+
		"# Seals user tokens at rest. Keep it with the other secrets; losing it means everyone links again.\nPATBOT_SECRET_KEY=%s\n",
		c.ClientID, c.ClientSecret, o.publicURL, hex.EncodeToString(key))
	return writeSecretFile(o.envFile, env)
}

// writeSecretFile writes a file only its owner may read, also when it
// replaces one that others could.
func writeSecretFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}
