package store

import (
	"errors"
	"time"
)

// Links are the ties between Slack users and the GitHub accounts they
// proved, by signing in to GitHub, to be theirs; and the sign-ins in
// progress. One Slack user has at most one link, and one GitHub account
// belongs to at most one Slack user.
type Links interface {
	// Link returns the link of a Slack user, or ErrNotFound.
	Link(slackUser string) (Link, error)
	// Links returns every link, ordered by Slack user.
	Links() ([]Link, error)
	// PutLink records l, replacing the Slack user's link to the same
	// GitHub account. It returns ErrConflict, and changes nothing, when
	// the account is linked to another Slack user or the Slack user to
	// another account.
	PutLink(l Link) error
	// UpdateLink reads a Slack user's link, lets change modify it, and
	// writes it back, atomically: concurrent updates of one link are
	// serialized. It returns ErrNotFound when there is none. An error from
	// change aborts without writing. change may run more than once and
	// must not do I/O; it may not change the GitHub account.
	UpdateLink(slackUser string, change func(l *Link) error) (Link, error)
	// DeleteLink removes a Slack user's link and returns what it was
	// (ErrNotFound when there was none).
	DeleteLink(slackUser string) (Link, error)

	// PutSignIn records a sign-in in progress under its key.
	PutSignIn(s SignIn) error
	// TakeSignIn returns the sign-in stored under key and removes it, at
	// once: a key works once. ErrNotFound when there is none.
	TakeSignIn(key string) (SignIn, error)
	// PruneSignIns deletes up to max sign-ins that expired before cutoff.
	PruneSignIns(cutoff time.Time, max int) (int, error)
}

// ErrConflict is returned when a write would break a rule that ties
// records together (one GitHub account per Slack user and back).
var ErrConflict = errors.New("conflicts with another record")

// Link ties a Slack user to a GitHub account, with the user's token for
// acting on their behalf, sealed.
type Link struct {
	SlackUser   string    `json:"slack_user"`
	SlackTeam   string    `json:"slack_team,omitempty"`
	GitHubID    int64     `json:"github_id"` // the account: logins can be renamed
	GitHubLogin string    `json:"github_login"`
	LinkedAt    time.Time `json:"linked_at"`
	// Token is the access and refresh token pair, encrypted; its expiry
	// times are in the clear, so that a refresh can be planned without
	// the key.
	Token          Sealed    `json:"token"`
	TokenExpires   time.Time `json:"token_expires,omitzero"`   // zero: the token does not expire
	RefreshExpires time.Time `json:"refresh_expires,omitzero"` // zero: no refresh token, or it does not expire
	// RefreshingUntil and RefreshingBy say that a refresh is under way,
	// so that the token, whose refresh token works once, is refreshed by
	// one patbot at a time.
	RefreshingUntil time.Time `json:"refreshing_until,omitzero"`
	RefreshingBy    string    `json:"refreshing_by,omitempty"`
	// Broken says why the token can no longer be used (GitHub refused
	// its refresh): the user has to sign in again.
	Broken string `json:"broken,omitempty"`
}

// Sealed is a secret encrypted under the key named KeyID.
type Sealed struct {
	KeyID string `json:"key_id"`
	Nonce []byte `json:"nonce"`
	Data  []byte `json:"data"`
}

// SignIn is a GitHub sign-in in progress, stored under the hash of a
// value only the browser holds: first the OAuth state (Stage authorize),
// then the confirmation page's form token (Stage confirm).
type SignIn struct {
	Key       string    `json:"key"`
	Stage     string    `json:"stage"`
	SlackUser string    `json:"slack_user"`
	SlackName string    `json:"slack_name,omitempty"` // as Slack sent it with the command
	SlackTeam string    `json:"slack_team,omitempty"` // the workspace's domain
	Expires   time.Time `json:"expires"`
	// Secret is what the next step needs, sealed: the PKCE verifier, or
	// the user's token pair awaiting confirmation.
	Secret Sealed `json:"secret"`
	// Browser is the hash of the cookie that ties a confirmation to the
	// browser that signed in.
	Browser        string    `json:"browser,omitempty"`
	GitHubID       int64     `json:"github_id,omitempty"`
	GitHubLogin    string    `json:"github_login,omitempty"`
	TokenExpires   time.Time `json:"token_expires,omitzero"`
	RefreshExpires time.Time `json:"refresh_expires,omitzero"`
}
