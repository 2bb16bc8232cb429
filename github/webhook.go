package github

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"
	"time"
)

// Webhook headers and events.
const (
	HeaderEvent     = "X-GitHub-Event"
	HeaderDelivery  = "X-GitHub-Delivery"
	HeaderSignature = "X-Hub-Signature-256"

	EventPing       = "ping"
	EventPATRequest = "personal_access_token_request"
)

// Actions of the personal_access_token_request event.
const (
	ActionCreated   = "created"
	ActionApproved  = "approved"
	ActionDenied    = "denied"
	ActionCancelled = "cancelled"
)

// MaxPayloadBytes is GitHub's cap on a webhook payload: larger events are
// never delivered, so a larger body is not from GitHub.
const MaxPayloadBytes = 25 << 20

var (
	// ErrNoSignature means the X-Hub-Signature-256 header is missing.
	ErrNoSignature = errors.New("missing " + HeaderSignature + " header")
	// ErrBadSignature means the signature does not match the body.
	ErrBadSignature = errors.New("invalid " + HeaderSignature + " signature")
)

// Sign returns the X-Hub-Signature-256 value GitHub sends for body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks an X-Hub-Signature-256 header against the raw body
// in constant time.
func VerifySignature(secret, body []byte, header string) error {
	if header == "" {
		return ErrNoSignature
	}
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return ErrBadSignature
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// Payload returns the JSON document of a verified webhook body. GitHub sends
// either JSON or a form whose "payload" field holds the JSON (the signature
// then covers the whole form body).
func Payload(contentType string, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("malformed form body: %w", err)
	}
	p := form.Get("payload")
	if p == "" {
		return nil, errors.New(`form body has no "payload" field`)
	}
	return []byte(p), nil
}

// RequestEvent is a personal_access_token_request webhook. Its own JSON
// form (the tags below) is a compact record of what patbot uses, much
// smaller than GitHub's payload.
type RequestEvent struct {
	Action         string         `json:"action"`
	Org            string         `json:"org"` // organization login as GitHub spells it
	Sender         User           `json:"sender"`
	InstallationID int64          `json:"installation_id,omitempty"` // 0 when the payload has none
	Request        WebhookRequest `json:"request"`
}

// WebhookRequest is the personal_access_token_request object of the webhook.
// The webhook carries no reason, and may lack the token's ID and name: they
// come from the list-requests endpoint.
type WebhookRequest struct {
	ID                  int64        `json:"id"`
	Owner               User         `json:"owner"`
	PermissionsAdded    Permissions  `json:"permissions_added"`
	PermissionsUpgraded Permissions  `json:"permissions_upgraded"`
	PermissionsResult   Permissions  `json:"permissions_result"`
	RepositorySelection string       `json:"repository_selection"`
	RepositoryCount     int          `json:"repository_count"`
	Repositories        []Repository `json:"repositories"`
	CreatedAt           time.Time    `json:"created_at"`
	TokenID             int64        `json:"token_id"`
	TokenName           string       `json:"token_name"`
	TokenExpired        bool         `json:"token_expired"`
	TokenExpiresAt      *time.Time   `json:"token_expires_at"`
	TokenLastUsedAt     *time.Time   `json:"token_last_used_at"`
}

// ParseRequestEvent decodes a personal_access_token_request payload. Only the
// fields patbot cannot work without are required: action,
// personal_access_token_request.id and organization.login.
func ParseRequestEvent(payload []byte) (*RequestEvent, error) {
	var wire struct {
		Action       *string         `json:"action"`
		Request      *WebhookRequest `json:"personal_access_token_request"`
		Organization *struct {
			Login string `json:"login"`
		} `json:"organization"`
		Sender       User `json:"sender"`
		Installation *struct {
			ID int64 `json:"id"`
		} `json:"installation"`
	}
	// One pass over the body (json.Unmarshal would scan it twice).
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&wire); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("malformed JSON: data after the payload")
	}
	var missing []string
	if wire.Action == nil || *wire.Action == "" {
		missing = append(missing, "action")
	}
	if wire.Request == nil || wire.Request.ID == 0 {
		missing = append(missing, "personal_access_token_request.id")
	}
	if wire.Organization == nil || wire.Organization.Login == "" {
		missing = append(missing, "organization.login")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("payload lacks %s", strings.Join(missing, ", "))
	}
	ev := &RequestEvent{
		Action:  *wire.Action,
		Org:     wire.Organization.Login,
		Sender:  wire.Sender,
		Request: *wire.Request,
	}
	if wire.Installation != nil {
		ev.InstallationID = wire.Installation.ID
	}
	return ev, nil
}
