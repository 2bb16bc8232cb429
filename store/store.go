// Package store is patbot's persistence contract: the records patbot keeps
// (webhook deliveries, pending work, PAT requests, the audit trail), the
// errors a backend returns, and the Store interface every backend
// implements. A backend lives in a package of its own beneath this one
// (store/bolt, the embedded default) and passes the behavioural suite in
// store/storetest. Nothing here knows a database.
package store

import (
	"errors"
	"time"
)

// Store is everything patbot keeps. Every method is one transaction; none
// does network I/O other than to the database; what a method returns does
// not alias the backend's memory. Times are the backend's clock unless a
// record carries its own.
type Store interface {
	Deliveries
	Jobs
	Timers
	Requests
	Audit
	Links
	// Ping reports whether the store is usable (readiness).
	Ping() error
	// Close releases the store; work waiting to be written fails.
	Close() error
}

// Deliveries deduplicate webhook deliveries and take their work durably.
type Deliveries interface {
	// AcceptDelivery records d and, when job is not nil, the job it
	// implies, at once and durably. It reports false, and changes nothing,
	// when d.ID was recorded already. An empty d.ID is an error.
	AcceptDelivery(d Delivery, job *Job) (accepted bool, jobID uint64, err error)
	// Delivery returns the marker of one delivery, or ErrNotFound.
	Delivery(id string) (Delivery, error)
	// PruneDeliveries deletes up to max markers received before cutoff,
	// oldest first, and reports how many. A pruned delivery is accepted
	// again.
	PruneDeliveries(cutoff time.Time, max int) (int, error)
	// CountDeliveries counts the markers kept.
	CountDeliveries() (int, error)
}

// Jobs is work waiting to be done, kept until it is finished.
type Jobs interface {
	// EnqueueJob records a job that no delivery brought and returns its
	// number. Numbers grow, and may skip.
	EnqueueJob(j Job) (uint64, error)
	// Job returns one job, or ErrNotFound once it is finished.
	Job(id uint64) (Job, error)
	// JobIDs lists the unfinished jobs, oldest first.
	JobIDs() ([]uint64, error)
	// FinishJob deletes a job; finishing one twice is no error.
	FinishJob(id uint64) error
	// RecordJobFailure counts a failed attempt at a job, with its cause,
	// and returns the job as it now is (ErrNotFound when it is gone).
	RecordJobFailure(id uint64, cause error) (Job, error)
	// ClaimJob takes an unfinished job for holder until lease from now,
	// so that one runner among several runs it: it returns the job, or
	// ErrNotFound once the job is finished, or ErrHeld while another
	// holder's lease runs. The holder claims again to renew. Leases are
	// measured by the store's clock (PostgreSQL's, with several replicas).
	ClaimJob(id uint64, holder string, lease time.Duration) (Job, error)
	// OrphanJobs lists, oldest first and at most max, the unfinished jobs
	// no runner holds: whose lease ran out, or that nobody claimed within
	// lease of their enqueueing (their runner stopped before it began).
	OrphanJobs(lease time.Duration, max int) ([]uint64, error)
	// CountJobs counts the unfinished jobs, whoever holds them.
	CountJobs() (int, error)
}

// ErrHeld is returned by ClaimJob for a job another runner holds.
var ErrHeld = errors.New("held by another runner")

// Export is everything a store holds, as it holds it (numbers and
// sequence included), for moving an install to another backend.
type Export struct {
	Deliveries []Delivery
	Jobs       []Job
	Timers     []Timer
	Requests   []Request
	Audit      []AuditEvent
	Cursors    map[string]uint64
	Links      []Link // sign-ins in progress are not moved: they last minutes
}

// Counts sums up an Export, to check a copy.
func (e Export) Counts() map[string]int {
	return map[string]int{"deliveries": len(e.Deliveries), "jobs": len(e.Jobs), "timers": len(e.Timers),
		"requests": len(e.Requests), "audit events": len(e.Audit), "cursors": len(e.Cursors), "links": len(e.Links)}
}

// Exporter reads a whole store, in one transaction.
type Exporter interface {
	ExportAll() (Export, error)
}

// Importer writes an Export into an empty store, in one transaction. It
// refuses, with ErrNotEmpty, a store that holds anything.
type Importer interface {
	ImportAll(Export) error
}

// ErrNotEmpty is returned by ImportAll for a store that holds records.
var ErrNotEmpty = errors.New("the store is not empty")

// Timers are durable "do Kind for Key at Due" records: reminders, digests,
// the end of a time-bound grant. A timer survives restarts, and is claimed
// by one runner at a time for a lease, so that it fires once even with
// several runners.
type Timers interface {
	// SetTimer schedules t (Kind and Due are required) and returns its ID.
	// It replaces the timer of the same Kind and Key, claimed or not: a
	// reschedule never doubles a timer.
	SetTimer(t Timer) (uint64, error)
	// CancelTimer removes the timer of kind and key; none is no error.
	CancelTimer(kind, key string) error
	// Timer returns the timer of kind and key, or ErrNotFound.
	Timer(kind, key string) (Timer, error)
	// ClaimDueTimers claims up to max timers due at now that no runner
	// holds (or whose runner's lease has lapsed), earliest first, until
	// now+lease, and returns them with their attempts counted.
	ClaimDueTimers(now time.Time, lease time.Duration, max int) ([]Timer, error)
	// NextTimerDue is when the earliest timer nobody holds is due (zero
	// when there is none).
	NextTimerDue() (time.Time, error)
	// FinishTimer removes a timer that has fired. It reports ErrNotFound
	// when the timer is gone, or was replaced meanwhile (by ID).
	FinishTimer(id uint64) error
	// RetryTimer releases a timer whose work failed, due again at due,
	// with the failure recorded. It reports ErrNotFound when the timer is
	// gone.
	RetryTimer(id uint64, due time.Time, cause error) error
}

// Timer is work due at a time.
type Timer struct {
	ID         uint64    `json:"id"`
	Kind       string    `json:"kind"` // what to do: the name a handler is registered under
	Key        string    `json:"key"`  // what for (a request, an org): one timer per Kind and Key
	Due        time.Time `json:"due"`
	Payload    []byte    `json:"payload,omitempty"`
	Attempts   int       `json:"attempts,omitempty"` // claims so far, this one included
	LastError  string    `json:"last_error,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"` // held by a runner until then
}

// Valid reports whether t can be scheduled: it needs a kind and a due time.
func (t Timer) Valid() error {
	if t.Kind == "" || t.Due.IsZero() {
		return errors.New("a timer needs a kind and a due time")
	}
	return nil
}

// ValidTimers reports the first of timers that cannot be scheduled.
func ValidTimers(timers []Timer) error {
	for _, t := range timers {
		if err := t.Valid(); err != nil {
			return err
		}
	}
	return nil
}

// Requests are patbot's records of PAT requests.
type Requests interface {
	// Request returns the record of one request, or ErrNotFound.
	Request(org string, id int64) (Request, error)
	// UpdateRequest reads a request's record (a zero Request with Org and
	// ID set when there is none), lets change modify it, and writes it
	// back, atomically: concurrent updates of one record are serialized,
	// and the one that claims a request first wins. An error from change
	// aborts without writing and is returned (wrapped). change may run
	// more than once and must not do I/O.
	UpdateRequest(org string, id int64, change func(r *Request, exists bool) error) (Request, error)
	// UpdateRequestWithTimers is UpdateRequest that also sets timers (see
	// Timers.SetTimer) in the same transaction when change succeeds, and
	// returns their IDs in order: work that must follow a change (settling
	// a claim after a crash, ending a time-bound grant) cannot be lost
	// between the two.
	UpdateRequestWithTimers(org string, id int64, timers []Timer, change func(r *Request, exists bool) error) (Request, []uint64, error)
	// Requests lists the records of one org ("" for every org) in any of
	// states (any state when none are given).
	Requests(org string, states ...State) ([]Request, error)
	// PendingStats counts the requests awaiting a decision and tells when
	// the oldest of them was created (zero when unknown or none).
	PendingStats() (n int, oldest time.Time, err error)
	// PruneRequests deletes up to max final records last changed before
	// cutoff, and reports how many.
	PruneRequests(cutoff time.Time, max int) (int, error)
}

// Audit is the append-only audit trail, and the places its readers keep.
type Audit interface {
	// AppendAudit adds an event, numbering it (Seq) in the order events
	// are appended; At defaults to now.
	AppendAudit(e AuditEvent) error
	// AuditEvents returns events in the order they happened.
	AuditEvents(f AuditFilter) ([]AuditEvent, error)
	// PruneAudit deletes up to max events older than cutoff, oldest
	// first, and reports how many.
	PruneAudit(cutoff time.Time, max int) (int, error)
	// Cursor returns how far the reader called name has read (0 before it
	// starts); SetCursor records it.
	Cursor(name string) (uint64, error)
	SetCursor(name string, v uint64) error
}

// State is where a PAT request stands.
type State string

const (
	StatePending   State = "pending"   // awaiting a decision
	StateDeciding  State = "deciding"  // a decision is being sent to GitHub
	StateApproved  State = "approved"  // GitHub approved it
	StateDenied    State = "denied"    // GitHub denied it
	StateCancelled State = "cancelled" // the requester withdrew it
	StateClosed    State = "closed"    // no longer pending on GitHub, outcome unknown
	StateFailed    State = "failed"    // patbot could not complete its work
)

// Final reports whether no further decision can change the request.
func (s State) Final() bool {
	switch s {
	case StateApproved, StateDenied, StateCancelled, StateClosed:
		return true
	}
	return false
}

// Source says where a decision or transition came from.
type Source string

const (
	SourceWebhook   Source = "webhook"   // a GitHub webhook (GitHub's UI, another tool, or a confirmation)
	SourceSlack     Source = "slack"     // an approver in Slack
	SourceReconcile Source = "reconcile" // patbot's periodic comparison with GitHub
	SourcePolicy    Source = "policy"    // a rule of the org's policy
)

// Request is patbot's record of one fine-grained PAT request.
type Request struct {
	Org string `json:"org"` // lower case
	ID  int64  `json:"id"`  // GitHub's pat_request_id

	State State `json:"state"`

	Owner          string `json:"owner"` // requester's GitHub login
	OwnerID        int64  `json:"owner_id,omitempty"`
	TokenID        int64  `json:"token_id,omitempty"`
	TokenName      string `json:"token_name,omitempty"`
	Reason         string `json:"reason,omitempty"`
	InstallationID int64  `json:"installation_id,omitempty"`

	RepositorySelection string   `json:"repository_selection,omitempty"` // none, all, subset
	RepositoryCount     int      `json:"repository_count,omitempty"`
	Repositories        []string `json:"repositories,omitempty"` // full names

	PermissionsAdded    Permissions `json:"permissions_added,omitempty"`
	PermissionsUpgraded Permissions `json:"permissions_upgraded,omitempty"`
	PermissionsResult   Permissions `json:"permissions_result,omitempty"`

	CreatedAt      time.Time  `json:"created_at,omitzero"`
	TokenExpiresAt *time.Time `json:"token_expires_at,omitempty"`

	// CardIntent is when patbot began posting the card; with no Card.TS it
	// means a post may or may not have reached Slack.
	CardIntent time.Time `json:"card_intent,omitzero"`
	Card       Card      `json:"card,omitzero"`
	// CardOutdated is set with every change the card must show and
	// cleared once Slack has the card that shows it, so that a failed
	// update is retried, even after a crash.
	CardOutdated bool `json:"card_outdated,omitempty"`
	// Decision is the decision GitHub took, or, while State is deciding,
	// the one patbot is sending.
	Decision *Decision `json:"decision,omitempty"`
	// Unconfirmed marks a claim whose review GitHub may or may not have
	// taken (it timed out, or GitHub answered 5xx): the claim stays, and no
	// other review is sent, until GitHub's word settles it.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
	// LastAttempt is the latest decision patbot sent, kept after a failure
	// so that a late confirmation from GitHub is attributed to its actor.
	LastAttempt *Decision `json:"last_attempt,omitempty"`
	// Failure describes the latest failed attempt, shown on the card until
	// the request is decided.
	Failure string `json:"failure,omitempty"`
	// Policy is what the org's rules said of the request when it arrived.
	Policy *PolicyVerdict `json:"policy,omitempty"`
	// Approvals are the approvals counted so far, when the rules ask for
	// more than one approver.
	Approvals []Approval `json:"approvals,omitempty"`
	// RemindersSent counts the reminders posted in the card's thread.
	RemindersSent int `json:"reminders_sent,omitempty"`
	// Escalation is the second card, in the escalation channel;
	// EscalationIntent is when patbot began posting it (as CardIntent).
	Escalation       Card      `json:"escalation,omitzero"`
	EscalationIntent time.Time `json:"escalation_intent,omitzero"`
	// GrantEnds is when patbot revokes the grant of a time-bound
	// approval; GrantEnded is when it did.
	GrantEnds  *time.Time `json:"grant_ends,omitempty"`
	GrantEnded *time.Time `json:"grant_ended,omitempty"`
	History    []Change   `json:"history,omitempty"`
	Updated    time.Time  `json:"updated"`
}

// PolicyVerdict is what an org's rules said of a request.
type PolicyVerdict struct {
	Mode      string        `json:"mode"`           // enforce or suggest
	Rule      string        `json:"rule,omitempty"` // "" when no rule matched
	Action    string        `json:"action"`         // approve, deny or review
	Reason    string        `json:"reason,omitempty"`
	Approvals int           `json:"approvals,omitempty"`
	GrantFor  time.Duration `json:"grant_for,omitempty"`
	Flags     []Flag        `json:"flags,omitempty"`
	// Unchecked names the rules whose facts could not be had.
	Unchecked []string `json:"unchecked,omitempty"`
}

// Flag is one risk of a request, with a short reason.
type Flag struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Approval is one approver's approval, counted toward the approvals a
// rule asks for.
type Approval struct {
	Actor     string        `json:"actor"`
	ActorID   int64         `json:"actor_id,omitempty"`
	SlackUser string        `json:"slack_user"`
	At        time.Time     `json:"at"`
	GrantFor  time.Duration `json:"grant_for,omitempty"` // the approver's choice, if any
}

// Permissions are grouped as GitHub groups them: organization, repository
// and other, each a map of permission name to access level.
type Permissions struct {
	Organization map[string]string `json:"organization,omitempty"`
	Repository   map[string]string `json:"repository,omitempty"`
	Other        map[string]string `json:"other,omitempty"`
}

// Card locates the Slack message that shows a request.
type Card struct {
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
}

// Decision is who decided a request, how, and when.
type Decision struct {
	Action    string    `json:"action"` // approve or deny
	Actor     string    `json:"actor"`  // GitHub login
	SlackUser string    `json:"slack_user,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
	Source    Source    `json:"source"`
	// Authority is why the approver could decide ("an owner of acme"), as
	// GitHub said when they clicked.
	Authority string `json:"authority,omitempty"`
	// ActorID is the approver's GitHub user id when they signed in to
	// GitHub; As is whom GitHub saw decide (AsApp or AsApprover).
	ActorID int64  `json:"actor_id,omitempty"`
	As      string `json:"as,omitempty"`
	// Rule is the policy rule that decided (Source SourcePolicy).
	Rule string `json:"rule,omitempty"`
	// GrantFor is how long the approved grant lasts (0: as the token).
	GrantFor time.Duration `json:"grant_for,omitempty"`
}

// Change is one entry in a request's history.
type Change struct {
	At     time.Time `json:"at"`
	From   State     `json:"from,omitempty"`
	To     State     `json:"to"`
	Source Source    `json:"source"`
	Actor  string    `json:"actor,omitempty"`
	Note   string    `json:"note,omitempty"`
}

// maxHistory bounds a record's history; the oldest entries after the first
// are dropped, which keeps how the request began.
const maxHistory = 50

// SetState moves the request to state to and records the change.
func (r *Request) SetState(to State, at time.Time, source Source, actor, note string) {
	r.CardOutdated = true
	r.History = append(r.History, Change{At: at, From: r.State, To: to, Source: source, Actor: actor, Note: note})
	if len(r.History) > maxHistory {
		r.History = append(r.History[:1], r.History[len(r.History)-maxHistory+1:]...)
	}
	r.State = to
}

// Delivery marks one webhook delivery as received, so that a redelivery
// (which keeps its X-GitHub-Delivery GUID) has no effect.
type Delivery struct {
	ID         string    `json:"id"` // X-GitHub-Delivery
	Event      string    `json:"event"`
	Action     string    `json:"action,omitempty"`
	Org        string    `json:"org,omitempty"`
	RequestID  int64     `json:"request_id,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	// Outcome says what patbot did with it, for example "queued" or
	// "ignored: org not configured".
	Outcome string `json:"outcome"`
	JobID   uint64 `json:"job_id,omitempty"`
}

// Job is work implied by an accepted delivery, kept until it is finished so
// that a crash never loses it.
type Job struct {
	ID         uint64    `json:"id"`
	DeliveryID string    `json:"delivery_id"`
	Event      string    `json:"event"`
	Action     string    `json:"action"`
	Org        string    `json:"org"`
	RequestID  int64     `json:"request_id"`
	Payload    []byte    `json:"-"` // the work's input (an event in patbot's compact form), stored as it is
	EnqueuedAt time.Time `json:"enqueued_at"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error,omitempty"`
	// Holder is the runner that claimed the job, until LeaseUntil.
	Holder     string    `json:"holder,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

// AuditEvent is one entry of the append-only audit trail: a decision, a
// refused or failed attempt, a revocation.
type AuditEvent struct {
	Seq       uint64    `json:"seq"`
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"` // decision, approval, refused, failed, revocation, link, unlink
	Org       string    `json:"org"`
	RequestID int64     `json:"request_id,omitempty"`
	GrantID   int64     `json:"grant_id,omitempty"`
	Action    string    `json:"action,omitempty"`   // approve, deny, revoke
	Actor     string    `json:"actor,omitempty"`    // GitHub login
	ActorID   int64     `json:"actor_id,omitempty"` // GitHub user id, when the actor signed in to GitHub
	// As is whom GitHub saw make a decision or revocation: AsApprover
	// (the actor's own token) or AsApp (the App's installation).
	As string `json:"as,omitempty"`
	// Rule is the policy rule behind an automated decision, approval count
	// or revocation.
	Rule      string `json:"rule,omitempty"`
	SlackUser string `json:"slack_user,omitempty"`
	Source    Source `json:"source,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Detail    string `json:"detail,omitempty"` // why refused, what failed
}

// Who GitHub saw act (AuditEvent.As).
const (
	AsApp      = "app"
	AsApprover = "approver"
)

// AuditFilter narrows AuditEvents. Zero fields do not filter.
type AuditFilter struct {
	Org   string
	Since time.Time
	Until time.Time
	Kinds []string // decision, refused, failed, revocation
	After uint64   // only events whose Seq is greater
	Limit int
}

// Errors the backends return (wrapped: test them with errors.Is).
var (
	// ErrNotFound is returned when a record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrLocked is returned by a backend's Open when another process holds
	// the store that only one may use.
	ErrLocked = errors.New("database is locked by another process (is another patbot running?)")
)

// ErrDamaged is returned by a backend's Open for data that is not a
// readable patbot store. patbot never overwrites it.
var ErrDamaged = errors.New("damaged database")
