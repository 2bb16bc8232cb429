package github

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
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
	_, err := VerifySignatureReader(secret, bytes.NewReader(body), header)
	return err
}

// VerifySignatureReader checks the signature over everything body yields,
// holding none of it: for deliveries whose content patbot does not need.
// It returns how many bytes it read, and a read error as it is (not
// ErrBadSignature).
func VerifySignatureReader(secret []byte, body io.Reader, header string) (int64, error) {
	mac := hmac.New(sha256.New, secret)
	n, err := io.Copy(mac, body)
	if err != nil {
		return n, err
	}
	want, err := parseSignature(header)
	if err != nil {
		return n, err
	}
	if !hmac.Equal(want, mac.Sum(nil)) {
		return n, ErrBadSignature
	}
	return n, nil
}

// parseSignature reads an X-Hub-Signature-256 header: "sha256=" and the
// hex digest.
func parseSignature(header string) ([]byte, error) {
	if header == "" {
		return nil, ErrNoSignature
	}
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return nil, ErrBadSignature
	}
	sum, err := hex.DecodeString(hexSum)
	if err != nil {
		return nil, ErrBadSignature
	}
	return sum, nil
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

// EncodeEvent is the compact form of ev that patbot keeps as the input of
// its work: about a sixth of GitHub's payload.
func EncodeEvent(ev *RequestEvent) ([]byte, error) { return jsonv2.Marshal(ev) }

// DecodeEvent reads what EncodeEvent wrote.
func DecodeEvent(compact []byte) (*RequestEvent, error) {
	var ev RequestEvent
	if err := jsonv2.Unmarshal(compact, &ev); err != nil {
		return nil, err
	}
	if ev.Request.ID == 0 {
		return nil, errors.New("event lacks a request id")
	}
	return &ev, nil
}

// requestEventWire is the part of GitHub's payload patbot reads.
type requestEventWire struct {
	Action       string           `json:"action"`
	Request      WebhookRequest   `json:"personal_access_token_request"`
	Organization organizationWire `json:"organization"`
	Sender       User             `json:"sender"`
	Installation installationWire `json:"installation"`
}

type organizationWire struct {
	Login string `json:"login"`
}

type installationWire struct {
	ID int64 `json:"id"`
}

// ParseRequestEvent decodes a personal_access_token_request payload. Only the
// fields patbot cannot work without are required: action,
// personal_access_token_request.id and organization.login.
func ParseRequestEvent(payload []byte) (*RequestEvent, error) {
	var wire requestEventWire
	if err := jsonv2.Unmarshal(payload, &wire); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	var missing []string
	if wire.Action == "" {
		missing = append(missing, "action")
	}
	if wire.Request.ID == 0 {
		missing = append(missing, "personal_access_token_request.id")
	}
	if wire.Organization.Login == "" {
		missing = append(missing, "organization.login")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("payload lacks %s", strings.Join(missing, ", "))
	}
	return &RequestEvent{
		Action:         wire.Action,
		Org:            wire.Organization.Login,
		Sender:         wire.Sender,
		InstallationID: wire.Installation.ID,
		Request:        wire.Request,
	}, nil
}
