package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// Limits GitHub sets on list filters.
const (
	maxOwnersPerList   = 10
	maxTokenIDsPerList = 50
	perPage            = 100
	// maxPages bounds one listing (100,000 items) so that a server that
	// never stops sending "next" links cannot keep patbot looping.
	maxPages = 1000
)

// RequestFilter narrows a listing of pending requests. Empty fields do not
// filter.
type RequestFilter struct {
	Owners   []string // requester logins, at most 10
	TokenIDs []int64  // at most 50
}

// ListRequests returns every pending PAT request of org that matches f,
// following the Link header through all pages.
func (c *Client) ListRequests(ctx context.Context, org string, f RequestFilter) ([]PendingRequest, error) {
	if len(f.Owners) > maxOwnersPerList || len(f.TokenIDs) > maxTokenIDsPerList {
		return nil, fmt.Errorf("github: list requests of %s: at most %d owners and %d token ids", org, maxOwnersPerList, maxTokenIDsPerList)
	}
	q := url.Values{}
	for _, o := range f.Owners {
		q.Add("owner[]", o)
	}
	for _, id := range f.TokenIDs {
		q.Add("token_id[]", strconv.FormatInt(id, 10))
	}
	return listAll[PendingRequest](ctx, c, org, "list requests of "+org, "orgs/"+url.PathEscape(org)+"/personal-access-token-requests", q)
}

// ListGrants returns every fine-grained token approved to access org, of the
// given owners (at most 10; none lists everyone's), through all pages.
func (c *Client) ListGrants(ctx context.Context, org string, owners ...string) ([]Grant, error) {
	return c.QueryGrants(ctx, org, GrantFilter{Owners: owners})
}

// GrantFilter narrows a listing of grants, as GitHub filters it. Zero
// fields do not filter.
type GrantFilter struct {
	Owners     []string // logins, at most 10
	Repository string   // a repository's name: tokens that may access it
	// LastUsedBefore and LastUsedAfter bound the tokens' last use; a token
	// never used has none, and matches neither.
	LastUsedBefore, LastUsedAfter time.Time
	TokenIDs                      []int64 // at most 50
}

// QueryGrants returns the grants of org that f selects, through all pages.
func (c *Client) QueryGrants(ctx context.Context, org string, f GrantFilter) ([]Grant, error) {
	if len(f.Owners) > maxOwnersPerList || len(f.TokenIDs) > maxTokenIDsPerList {
		return nil, fmt.Errorf("github: list grants of %s: at most %d owners and %d token ids", org, maxOwnersPerList, maxTokenIDsPerList)
	}
	q := url.Values{}
	for _, o := range f.Owners {
		q.Add("owner[]", o)
	}
	if f.Repository != "" {
		q.Set("repository", f.Repository)
	}
	if !f.LastUsedBefore.IsZero() {
		q.Set("last_used_before", f.LastUsedBefore.UTC().Format(time.RFC3339))
	}
	if !f.LastUsedAfter.IsZero() {
		q.Set("last_used_after", f.LastUsedAfter.UTC().Format(time.RFC3339))
	}
	for _, id := range f.TokenIDs {
		q.Add("token_id[]", strconv.FormatInt(id, 10))
	}
	return listAll[Grant](ctx, c, org, "list grants of "+org, "orgs/"+url.PathEscape(org)+"/personal-access-tokens", q)
}

// ReviewRequest approves or denies one pending request, as the App or, with
// a user token, as that user (who must be an owner of org). GitHub answers
// 204; a request that is no longer pending gives an APIError (404 or 422).
func (c *Client) ReviewRequest(ctx context.Context, org string, requestID int64, r Review, as UserToken) error {
	if r.Action != ActionApprove && r.Action != ActionDeny {
		return fmt.Errorf("github: review request %s/%d: unknown action %q", org, requestID, r.Action)
	}
	opts := gh.ReviewPersonalAccessTokenRequestOptions{Action: r.Action}
	if r.Reason != "" {
		reason := TruncateReason(r.Reason)
		opts.Reason = &reason
	}
	op := fmt.Sprintf("review request %s/%d", org, requestID)
	g, err := c.clientFor(ctx, org, as)
	if err != nil {
		return err
	}
	_, err = c.retry(ctx, false, func(ctx context.Context) (*gh.Response, error) {
		return g.Organizations.ReviewPersonalAccessTokenRequest(ctx, org, requestID, opts)
	}, op)
	return err
}

// TruncateReason cuts a reason to GitHub's limit of 1024 characters.
func TruncateReason(s string) string {
	r := []rune(s)
	if len(r) <= MaxReasonLength {
		return s
	}
	return string(r[:MaxReasonLength])
}

// RevokeGrant revokes one token's access to org, as the App or, with a
// user token, as that user; patID is Grant.ID.
func (c *Client) RevokeGrant(ctx context.Context, org string, patID int64, as UserToken) error {
	g, err := c.clientFor(ctx, org, as)
	if err != nil {
		return err
	}
	return c.do(ctx, g, fmt.Sprintf("revoke grant %s/%d", org, patID), http.MethodPost,
		fmt.Sprintf("orgs/%s/personal-access-tokens/%d", url.PathEscape(org), patID),
		map[string]string{"action": "revoke"}, nil)
}

// OrgMembership returns login's membership of org. A user who is not a
// member gives an error matching ErrNotFound.
func (c *Client) OrgMembership(ctx context.Context, org, login string) (Membership, error) {
	var m gh.Membership
	err := c.call(ctx, org, fmt.Sprintf("membership of %s in %s", login, org), http.MethodGet,
		fmt.Sprintf("orgs/%s/memberships/%s", url.PathEscape(org), url.PathEscape(login)), nil, &m)
	if err != nil {
		return Membership{}, err
	}
	return Membership{Role: m.GetRole(), State: m.GetState()}, nil
}

// TeamMembership returns login's membership of the team slug in org
// (members of child teams included). No membership gives an error matching
// ErrNotFound.
func (c *Client) TeamMembership(ctx context.Context, org, team, login string) (Membership, error) {
	var m gh.Membership
	err := c.call(ctx, org, fmt.Sprintf("membership of %s in team %s/%s", login, org, team), http.MethodGet,
		fmt.Sprintf("orgs/%s/teams/%s/memberships/%s", url.PathEscape(org), url.PathEscape(team), url.PathEscape(login)), nil, &m)
	if err != nil {
		return Membership{}, err
	}
	return Membership{Role: m.GetRole(), State: m.GetState()}, nil
}

// listAll fetches path and every page its Link header names next.
func listAll[T any](ctx context.Context, c *Client, org, op, path string, q url.Values) ([]T, error) {
	g, err := c.forOrg(ctx, org)
	if err != nil {
		return nil, err
	}
	q.Set("per_page", strconv.Itoa(perPage))
	next := path + "?" + q.Encode()
	var all []T
	for range maxPages {
		var page []T
		resp, err := c.get(ctx, g, op, next, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		next, err = c.nextPage(resp)
		if err != nil {
			return nil, fmt.Errorf("github: %s: %w", op, err)
		}
		if next == "" {
			return all, nil
		}
	}
	return nil, fmt.Errorf("github: %s: more than %d pages", op, maxPages)
}

func (c *Client) get(ctx context.Context, g *gh.Client, op, urlStr string, out any) (*gh.Response, error) {
	return c.retry(ctx, true, func(ctx context.Context) (*gh.Response, error) {
		req, err := g.NewRequest(http.MethodGet, urlStr, nil)
		if err != nil {
			return nil, err
		}
		return g.Do(ctx, req, out)
	}, op)
}

// nextPage returns the rel="next" URL of a response's Link header, or "" on
// the last page. The installation token goes wherever that URL points, so
// it must be on the configured API host.
func (c *Client) nextPage(resp *gh.Response) (string, error) {
	for _, link := range strings.Split(resp.Header.Get("Link"), ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(link), ";")
		if !ok || !strings.Contains(params, `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err != nil {
			return "", fmt.Errorf("malformed Link header: %w", err)
		}
		u = c.baseURL.ResolveReference(u)
		if u.Scheme != c.baseURL.Scheme || u.Host != c.baseURL.Host {
			return "", errors.New("next page link points away from the API host " + c.baseURL.Host)
		}
		return u.String(), nil
	}
	return "", nil
}

// ListGrantRepositories returns the repositories a grant may access (for a
// grant whose RepositorySelection is subset), through all pages.
func (c *Client) ListGrantRepositories(ctx context.Context, org string, patID int64) ([]Repository, error) {
	return listAll[Repository](ctx, c, org, fmt.Sprintf("list repositories of grant %s/%d", org, patID),
		fmt.Sprintf("orgs/%s/personal-access-tokens/%d/repositories", url.PathEscape(org), patID), url.Values{})
}

// ListRequestRepositories returns the repositories a pending request asks
// for (for a request whose RepositorySelection is subset), through all pages.
func (c *Client) ListRequestRepositories(ctx context.Context, org string, requestID int64) ([]Repository, error) {
	return listAll[Repository](ctx, c, org, fmt.Sprintf("list repositories of request %s/%d", org, requestID),
		fmt.Sprintf("orgs/%s/personal-access-token-requests/%d/repositories", url.PathEscape(org), requestID), url.Values{})
}

// RevokeGrants revokes up to 100 grants of org in one call (GitHub's bulk
// revoke), as the App or, with a user token, as that user. GitHub answers
// 202 and works asynchronously: list the grants again to learn the outcome.
func (c *Client) RevokeGrants(ctx context.Context, org string, patIDs []int64, as UserToken) error {
	if len(patIDs) == 0 || len(patIDs) > maxBulk {
		return fmt.Errorf("github: revoke grants of %s: 1 to %d at a time, not %d", org, maxBulk, len(patIDs))
	}
	g, err := c.clientFor(ctx, org, as)
	if err != nil {
		return err
	}
	return c.do(ctx, g, fmt.Sprintf("revoke %d grants of %s", len(patIDs), org), http.MethodPost,
		"orgs/"+url.PathEscape(org)+"/personal-access-tokens", map[string]any{"action": "revoke", "pat_ids": patIDs}, nil)
}

// maxBulk is how many ids GitHub's bulk endpoints take at a time.
const maxBulk = 100

// ReviewRequests approves or denies up to 100 pending requests of org in
// one call (GitHub's bulk review), as the App or, with a user token, as
// that user. GitHub answers 202 and works asynchronously: list the pending
// requests again to learn each outcome.
func (c *Client) ReviewRequests(ctx context.Context, org string, requestIDs []int64, r Review, as UserToken) error {
	if r.Action != ActionApprove && r.Action != ActionDeny {
		return fmt.Errorf("github: review requests of %s: unknown action %q", org, r.Action)
	}
	if len(requestIDs) == 0 || len(requestIDs) > maxBulk {
		return fmt.Errorf("github: review requests of %s: 1 to %d at a time, not %d", org, maxBulk, len(requestIDs))
	}
	body := map[string]any{"pat_request_ids": requestIDs, "action": r.Action}
	if r.Reason != "" {
		body["reason"] = TruncateReason(r.Reason)
	}
	g, err := c.clientFor(ctx, org, as)
	if err != nil {
		return err
	}
	return c.do(ctx, g, fmt.Sprintf("review %d requests of %s", len(requestIDs), org), http.MethodPost,
		"orgs/"+url.PathEscape(org)+"/personal-access-token-requests", body, nil)
}
