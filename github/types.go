package github

import "time"

// User is the part of GitHub's simple-user that patbot uses.
type User struct {
	Login   string `json:"login"`
	ID      int64  `json:"id"`
	Type    string `json:"type,omitempty"`
	HTMLURL string `json:"html_url,omitempty"`
}

// Permissions are a token's permissions as GitHub groups them, each a map of
// permission name to access level ("contents": "write").
type Permissions struct {
	Organization map[string]string `json:"organization,omitempty"`
	Repository   map[string]string `json:"repository,omitempty"`
	Other        map[string]string `json:"other,omitempty"`
}

// Repository is a repository a token may access.
type Repository struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	FullName string `json:"full_name"`
	Private  bool   `json:"private"`
}

// Repository selections.
const (
	SelectionNone   = "none"
	SelectionAll    = "all"
	SelectionSubset = "subset"
)

// PendingRequest is one item of "list requests to access organization
// resources with fine-grained personal access tokens". Unlike the webhook it
// carries the requester's reason.
type PendingRequest struct {
	ID                  int64       `json:"id"`
	Reason              string      `json:"reason"` // "" when none was given (GitHub sends null)
	Owner               User        `json:"owner"`
	RepositorySelection string      `json:"repository_selection"`
	RepositoriesURL     string      `json:"repositories_url"`
	Permissions         Permissions `json:"permissions"`
	CreatedAt           time.Time   `json:"created_at"`
	TokenID             int64       `json:"token_id"`
	TokenName           string      `json:"token_name"`
	TokenExpired        bool        `json:"token_expired"`
	TokenExpiresAt      *time.Time  `json:"token_expires_at"`
	TokenLastUsedAt     *time.Time  `json:"token_last_used_at"`
}

// Grant is one fine-grained token approved to access an organization. ID is
// the pat_id that revoking takes; it is not the token's ID.
type Grant struct {
	ID                  int64       `json:"id"`
	Owner               User        `json:"owner"`
	RepositorySelection string      `json:"repository_selection"`
	RepositoriesURL     string      `json:"repositories_url"`
	Permissions         Permissions `json:"permissions"`
	AccessGrantedAt     time.Time   `json:"access_granted_at"`
	TokenID             int64       `json:"token_id"`
	TokenName           string      `json:"token_name"`
	TokenExpired        bool        `json:"token_expired"`
	TokenExpiresAt      *time.Time  `json:"token_expires_at"`
	TokenLastUsedAt     *time.Time  `json:"token_last_used_at"`
}

// Review actions.
const (
	ActionApprove = "approve"
	ActionDeny    = "deny"
)

// MaxReasonLength is GitHub's limit on a review reason, in characters.
const MaxReasonLength = 1024

// Review is a decision on a pending request.
type Review struct {
	Action string // ActionApprove or ActionDeny
	Reason string // optional; GitHub emails it to the requester
}

// Membership is a user's membership of an organization or a team.
type Membership struct {
	Role  string // organization: admin, member, billing_manager; team: member, maintainer
	State string // active or pending
}

// Active reports whether the membership has been accepted.
func (m Membership) Active() bool { return m.State == "active" }

// ActiveOwner reports whether an organization membership makes its user an
// owner now: role admin and state active.
func (m Membership) ActiveOwner() bool { return m.Role == "admin" && m.State == "active" }

// Installation is the App's installation on one organization.
type Installation struct {
	ID          int64             `json:"id"`
	AppID       int64             `json:"app_id"`
	Permissions map[string]string `json:"permissions"`
	Events      []string          `json:"events"`
}
