package bot

import (
	"context"
	"net/http"
	"time"

	"github.com/patbot/patbot/github"
)

// What patbot knows of the App's credentials: checked once at start, with
// the App's JWT, until GitHub gives a clear answer.
const (
	appAuthUnknown int32 = iota
	appAuthOK
	appAuthRefused // GitHub answered 401: the App ID or key is wrong
)

// appAuthTimeout bounds one check; appAuthMaxBackoff caps the wait between
// checks while GitHub cannot be asked.
const (
	appAuthTimeout    = 10 * time.Second
	appAuthMaxBackoff = 5 * time.Minute
)

// checkAppAuth asks GitHub whether it accepts the App's credentials, until
// it answers yes or no. A no (401) makes patbot unready: nothing it does
// with GitHub can work. No answer (a network error, a 5xx) leaves readiness
// alone, since restarting patbot would not help, and is reported in the
// patbot_github_auth_ok gauge and the logs.
func (b *Bot) checkAppAuth(ctx context.Context) {
	backoff := time.Second
	for {
		cctx, cancel := context.WithTimeout(ctx, appAuthTimeout)
		_, err := b.gh.App(cctx)
		cancel()
		switch {
		case err == nil:
			b.appAuth.Store(appAuthOK)
			b.log.Info("GitHub accepts the App's credentials")
			return
		case github.StatusCode(err) == http.StatusUnauthorized:
			b.appAuth.Store(appAuthRefused)
			b.log.Error("GitHub refuses the App's credentials (401 to the App's JWT): check GITHUB_APP_ID and the private key; patbot reports itself not ready", "err", err)
			return
		case ctx.Err() != nil:
			return
		}
		b.log.Warn("cannot check the App's credentials with GitHub; will try again", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-b.clock.After(backoff):
		}
		backoff = min(2*backoff, appAuthMaxBackoff)
	}
}
