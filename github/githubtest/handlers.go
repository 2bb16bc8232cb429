package githubtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patbot/patbot/github"
)

func (s *Server) listRequests(w http.ResponseWriter, r *http.Request, o *org) {
	q := r.URL.Query()
	owners, tokenIDs := q["owner[]"], q["token_id[]"]
	if len(owners) > 10 || len(tokenIDs) > 50 {
		writeValidationError(w, "owner", "too many filter values")
		return
	}
	tokens := make(map[int64]bool, len(tokenIDs)) // compared as numbers: the list can be long
	for _, t := range tokenIDs {
		id, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			writeValidationError(w, "token_id", "not an integer")
			return
		}
		tokens[id] = true
	}
	s.mu.Lock()
	var items []any
	for _, pr := range o.requests {
		if (len(tokens) == 0 || tokens[pr.TokenID]) && matches(owners, pr.Owner.Login) {
			items = append(items, s.wireRequest(o, pr))
		}
	}
	s.mu.Unlock()
	s.paginate(w, r, o, "personal-access-token-requests", items)
}

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request, o *org) {
	q := r.URL.Query()
	owners, tokenIDs := q["owner[]"], q["token_id[]"]
	if len(owners) > 10 || len(tokenIDs) > 50 {
		writeValidationError(w, "owner", "too many filter values")
		return
	}
	var before, after time.Time
	for name, into := range map[string]*time.Time{"last_used_before": &before, "last_used_after": &after} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeValidationError(w, name, "not a date-time")
				return
			}
			*into = t
		}
	}
	s.mu.Lock()
	var items []any
	for _, g := range o.grants {
		used := g.TokenLastUsedAt
		switch {
		case !matches(owners, g.Owner.Login):
		case len(tokenIDs) > 0 && !slices.Contains(tokenIDs, strconv.FormatInt(g.TokenID, 10)):
		case q.Get("repository") != "" && !s.grantReaches(o, g, q.Get("repository")):
		case !before.IsZero() && (used == nil || !used.Before(before)):
		case !after.IsZero() && (used == nil || !used.After(after)):
		default:
			items = append(items, s.wireGrant(o, g))
		}
	}
	s.mu.Unlock()
	s.paginate(w, r, o, "personal-access-tokens", items)
}

// grantReaches reports whether a grant may access the repository named
// name. s.mu must be held.
func (s *Server) grantReaches(o *org, g github.Grant, name string) bool {
	switch g.RepositorySelection {
	case github.SelectionAll:
		return true
	case github.SelectionSubset:
		return slices.ContainsFunc(o.grantRepos[g.ID], func(r github.Repository) bool { return strings.EqualFold(r.Name, name) })
	}
	return false
}

func matches(filter []string, v string) bool {
	return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
}

// paginate serves one page of items with GitHub's Link header, whose URLs
// name the org by ID as GitHub's do.
func (s *Server) paginate(w http.ResponseWriter, r *http.Request, o *org, resource string, items []any) {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	last := max((len(items)+per-1)/per, 1)
	from := min((page-1)*per, len(items))
	to := min(from+per, len(items))

	link := func(p int, rel string) string {
		q.Set("page", strconv.Itoa(p))
		return fmt.Sprintf(`<%s%s/organizations/%d/%s?%s>; rel="%s"`, s.srv.URL, Prefix, o.id, resource, q.Encode(), rel)
	}
	var links []string
	if page > 1 {
		links = append(links, link(page-1, "prev"), link(1, "first"))
	}
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	writeJSON(w, http.StatusOK, append([]any{}, items[from:to]...))
}

func (s *Server) reviewRequest(w http.ResponseWriter, r *http.Request, o *org) {
	var body struct {
		Action string  `json:"action"`
		Reason *string `json:"reason"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	reason, ok := checkReview(w, body.Action, body.Reason)
	if !ok {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.review(o, id, body.Action, reason, actingUser(r)) {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// reviewRequests is the bulk review: 1 to 100 pending requests, answered
// 202. A request that is not pending makes it 422, and nothing is done.
func (s *Server) reviewRequests(w http.ResponseWriter, r *http.Request, o *org) {
	var body struct {
		IDs    []int64 `json:"pat_request_ids"`
		Action string  `json:"action"`
		Reason *string `json:"reason"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	reason, ok := checkReview(w, body.Action, body.Reason)
	if !ok {
		return
	}
	if len(body.IDs) == 0 || len(body.IDs) > 100 {
		writeValidationError(w, "pat_request_ids", "pat_request_ids must hold 1 to 100 ids")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range body.IDs {
		if !slices.ContainsFunc(o.requests, func(pr github.PendingRequest) bool { return pr.ID == id }) {
			writeValidationError(w, "pat_request_ids", fmt.Sprintf("request %d is not pending", id))
			return
		}
	}
	for _, id := range body.IDs {
		s.review(o, id, body.Action, reason, actingUser(r))
	}
	writeJSON(w, http.StatusAccepted, map[string]any{})
}

// checkReview checks a review's action and reason as GitHub does,
// answering itself when they are wrong.
func checkReview(w http.ResponseWriter, action string, reasonPtr *string) (string, bool) {
	if action != github.ActionApprove && action != github.ActionDeny {
		writeValidationError(w, "action", "action must be approve or deny")
		return "", false
	}
	reason := ""
	if reasonPtr != nil {
		reason = *reasonPtr
	}
	if utf8.RuneCountInString(reason) > github.MaxReasonLength {
		writeValidationError(w, "reason", "reason is too long (maximum is 1024 characters)")
		return "", false
	}
	return reason, true
}

// review takes one pending request off the list with a decision; an
// approval makes a grant. It reports false when the request is not
// pending. s.mu must be held.
func (s *Server) review(o *org, id int64, action, reason, by string) bool {
	i := slices.IndexFunc(o.requests, func(pr github.PendingRequest) bool { return pr.ID == id })
	if i < 0 {
		return false
	}
	pr := o.requests[i]
	o.requests = slices.Delete(o.requests, i, i+1)
	o.reviews[id] = Decision{Action: action, Reason: reason, At: time.Now(), By: by}
	if action == github.ActionApprove {
		s.nextID++
		o.grants = append(o.grants, github.Grant{
			ID: s.nextID, Owner: pr.Owner, RepositorySelection: pr.RepositorySelection,
			Permissions: pr.Permissions, AccessGrantedAt: time.Now().UTC().Truncate(time.Second),
			TokenID: pr.TokenID, TokenName: pr.TokenName, TokenExpired: pr.TokenExpired,
			TokenExpiresAt: pr.TokenExpiresAt, TokenLastUsedAt: pr.TokenLastUsedAt,
		})
	}
	return true
}

func (s *Server) revokeGrant(w http.ResponseWriter, r *http.Request, o *org) {
	var body struct {
		Action string `json:"action"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	if body.Action != "revoke" {
		writeValidationError(w, "action", "action must be revoke")
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(o.grants, func(g github.Grant) bool { return g.ID == id })
	if i < 0 {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	o.grants = slices.Delete(o.grants, i, i+1)
	w.WriteHeader(http.StatusNoContent)
}

// revokeGrants is the bulk revoke: 1 to 100 pat_ids, answered 202; the
// revocation is done by the time the answer leaves (GitHub's may take
// longer).
func (s *Server) revokeGrants(w http.ResponseWriter, r *http.Request, o *org) {
	var body struct {
		Action string  `json:"action"`
		PatIDs []int64 `json:"pat_ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	if body.Action != "revoke" {
		writeValidationError(w, "action", "action must be revoke")
		return
	}
	if len(body.PatIDs) == 0 || len(body.PatIDs) > 100 {
		writeValidationError(w, "pat_ids", "pat_ids must hold 1 to 100 ids")
		return
	}
	s.mu.Lock()
	o.grants = slices.DeleteFunc(o.grants, func(g github.Grant) bool { return slices.Contains(body.PatIDs, g.ID) })
	s.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]any{})
}

func (s *Server) listGrantRepositories(w http.ResponseWriter, r *http.Request, o *org) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	exists := slices.ContainsFunc(o.grants, func(g github.Grant) bool { return g.ID == id })
	repos := o.grantRepos[id]
	s.mu.Unlock()
	s.listRepositories(w, r, o, exists, repos, fmt.Sprintf("personal-access-tokens/%d/repositories", id))
}

func (s *Server) listRequestRepositories(w http.ResponseWriter, r *http.Request, o *org) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	exists := slices.ContainsFunc(o.requests, func(pr github.PendingRequest) bool { return pr.ID == id })
	repos := o.requestRepos[id]
	s.mu.Unlock()
	s.listRepositories(w, r, o, exists, repos, fmt.Sprintf("personal-access-token-requests/%d/repositories", id))
}

// listRepositories serves a page of minimal-repository items, or 404 when
// what they belong to does not exist.
func (s *Server) listRepositories(w http.ResponseWriter, r *http.Request, o *org, exists bool, repos []github.Repository, resource string) {
	if !exists {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.mu.Lock()
	var items []any
	for _, repo := range repos {
		items = append(items, s.wireRepository(o, repo))
	}
	s.mu.Unlock()
	s.paginate(w, r, o, resource, items)
}

// wireRepository renders minimal-repository with its required fields.
func (s *Server) wireRepository(o *org, repo github.Repository) map[string]any {
	api := fmt.Sprintf("%srepos/%s", s.URL, repo.FullName)
	out := map[string]any{
		"id": repo.ID, "node_id": "R_" + strconv.FormatInt(repo.ID, 10), "name": repo.Name, "full_name": repo.FullName,
		"owner": s.wireUser(github.User{Login: o.login, ID: o.id, Type: "Organization"}), "private": repo.Private,
		"html_url": "https://github.com/" + repo.FullName, "description": nil, "fork": false, "url": api,
	}
	for _, k := range []string{"archive_url", "assignees_url", "blobs_url", "branches_url", "collaborators_url", "comments_url",
		"commits_url", "compare_url", "contents_url", "contributors_url", "deployments_url", "downloads_url", "events_url",
		"forks_url", "git_commits_url", "git_refs_url", "git_tags_url", "hooks_url", "issue_comment_url", "issue_events_url",
		"issues_url", "keys_url", "labels_url", "languages_url", "merges_url", "milestones_url", "notifications_url",
		"pulls_url", "releases_url", "stargazers_url", "statuses_url", "subscribers_url", "subscription_url", "tags_url",
		"teams_url", "trees_url"} {
		out[k] = api + "/" + strings.TrimSuffix(k, "_url")
	}
	return out
}

func (s *Server) getMembership(w http.ResponseWriter, r *http.Request, o *org) {
	login := r.PathValue("user")
	s.mu.Lock()
	m, ok := o.members[strings.ToLower(login)]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	orgURL := fmt.Sprintf("%sorgs/%s", s.URL, o.login)
	writeJSON(w, http.StatusOK, map[string]any{
		"url":              fmt.Sprintf("%s/memberships/%s", orgURL, login),
		"state":            m.State,
		"role":             m.Role,
		"organization_url": orgURL,
		"organization":     map[string]any{"login": o.login, "id": o.id, "url": orgURL},
		"user":             s.wireUser(github.User{Login: login, ID: 1}),
	})
}

func (s *Server) getTeamMembership(w http.ResponseWriter, r *http.Request, o *org) {
	login, slug := r.PathValue("user"), r.PathValue("team")
	s.mu.Lock()
	team, teamOK := o.teams[slug]
	m, ok := team[strings.ToLower(login)]
	s.mu.Unlock()
	if !teamOK || !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"url":   fmt.Sprintf("%sorgs/%s/teams/%s/memberships/%s", s.URL, o.login, slug, login),
		"role":  m.Role,
		"state": m.State,
	})
}

// wireUser renders GitHub's simple-user with all its required fields.
func (s *Server) wireUser(u github.User) map[string]any {
	api := strings.TrimSuffix(s.URL, "/") + "/users/" + url.PathEscape(u.Login)
	html := u.HTMLURL
	if html == "" {
		html = "https://github.com/" + u.Login
	}
	typ := u.Type
	if typ == "" {
		typ = "User"
	}
	return map[string]any{
		"login": u.Login, "id": u.ID, "node_id": "U_" + strconv.FormatInt(u.ID, 10),
		"avatar_url": "https://avatars.githubusercontent.com/u/" + strconv.FormatInt(u.ID, 10), "gravatar_id": "",
		"url": api, "html_url": html,
		"followers_url": api + "/followers", "following_url": api + "/following{/other_user}",
		"gists_url": api + "/gists{/gist_id}", "starred_url": api + "/starred{/owner}{/repo}",
		"subscriptions_url": api + "/subscriptions", "organizations_url": api + "/orgs",
		"repos_url": api + "/repos", "events_url": api + "/events{/privacy}",
		"received_events_url": api + "/received_events", "type": typ, "site_admin": false,
	}
}

// wireRequest renders organization-programmatic-access-grant-request.
func (s *Server) wireRequest(o *org, pr github.PendingRequest) map[string]any {
	var reason any
	if pr.Reason != "" {
		reason = pr.Reason
	}
	return map[string]any{
		"id": pr.ID, "reason": reason, "owner": s.wireUser(pr.Owner),
		"repository_selection": pr.RepositorySelection,
		"repositories_url":     fmt.Sprintf("%sorganizations/%d/personal-access-token-requests/%d/repositories", s.URL, o.id, pr.ID),
		"permissions":          wirePermissions(pr.Permissions),
		"created_at":           pr.CreatedAt.Format(time.RFC3339),
		"token_id":             pr.TokenID, "token_name": pr.TokenName, "token_expired": pr.TokenExpired,
		"token_expires_at": wireTime(pr.TokenExpiresAt), "token_last_used_at": wireTime(pr.TokenLastUsedAt),
	}
}

// wireGrant renders organization-programmatic-access-grant.
func (s *Server) wireGrant(o *org, g github.Grant) map[string]any {
	return map[string]any{
		"id": g.ID, "owner": s.wireUser(g.Owner),
		"repository_selection": g.RepositorySelection,
		"repositories_url":     fmt.Sprintf("%sorganizations/%d/personal-access-tokens/%d/repositories", s.URL, o.id, g.ID),
		"permissions":          wirePermissions(g.Permissions),
		"access_granted_at":    g.AccessGrantedAt.Format(time.RFC3339),
		"token_id":             g.TokenID, "token_name": g.TokenName, "token_expired": g.TokenExpired,
		"token_expires_at": wireTime(g.TokenExpiresAt), "token_last_used_at": wireTime(g.TokenLastUsedAt),
	}
}

func wirePermissions(p github.Permissions) map[string]any {
	out := map[string]any{}
	for k, v := range map[string]map[string]string{"organization": p.Organization, "repository": p.Repository, "other": p.Other} {
		if len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

func wireTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Format(time.RFC3339)
}
