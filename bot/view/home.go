package view

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/store"
)

// ActionHomePage turns the Home tab's page (+ _prev or _next).
const ActionHomePage = "pat_home_page"

// maxHomeBlocks keeps a Home tab page inside Slack's 100 blocks, with room
// for the paging buttons.
const maxHomeBlocks = 95

// HomeView is what a user's Home tab shows.
type HomeView struct {
	// Link says how patbot knows the user (mrkdwn); "" when linking is
	// off.
	Link string
	// Decide are the orgs whose requests the user may decide, with them.
	Decide []HomeOrg
	// Mine are the user's own requests awaiting a decision.
	Mine []store.Request
	// Grants are the user's tokens, with expiry and last use.
	Grants []GrantEntry
	// Notes are what could not be shown (mrkdwn, escaped).
	Notes []string
	Now   time.Time
	Page  int
}

// HomeOrg is one org's pending requests the user may decide.
type HomeOrg struct {
	Org      string
	Requests []store.Request
}

// Home renders the Home tab: a page of it, when it is longer than Slack
// allows one view.
func Home(v HomeView) slack.HomeTabViewRequest {
	blocks := []slack.Block{slack.NewHeaderBlock(Plain("patbot"))}
	if v.Link != "" {
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(v.Link), nil, nil))
	}
	for _, o := range v.Decide {
		blocks = append(blocks, slack.NewDividerBlock(),
			slack.NewSectionBlock(Mrkdwn(fmt.Sprintf("*Requests you may decide in %s* (%d)", Escape(o.Org), len(o.Requests))), nil, nil))
		if len(o.Requests) == 0 {
			blocks = append(blocks, slack.NewContextBlock("", Mrkdwn("None waits for a decision.")))
		}
		for _, r := range o.Requests {
			blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(homeRequestText(r, v.Now)), nil, nil))
			if r.State == store.StatePending {
				blocks = append(blocks, CardView{Req: r, OrgLogin: o.Org, Now: v.Now}.buttons())
			}
		}
	}
	blocks = append(blocks, slack.NewDividerBlock(), slack.NewSectionBlock(Mrkdwn(fmt.Sprintf("*Your requests awaiting a decision* (%d)", len(v.Mine))), nil, nil))
	for _, r := range v.Mine {
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(homeRequestText(r, v.Now)), nil, nil))
	}
	blocks = append(blocks, slack.NewDividerBlock(), slack.NewSectionBlock(Mrkdwn(fmt.Sprintf("*Your fine-grained tokens* (%d)", len(v.Grants))), nil, nil))
	for _, e := range v.Grants {
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(grantText(e, v.Now, false)), nil, nil))
	}
	if len(v.Notes) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", Mrkdwn(Truncate(strings.Join(v.Notes, "\n"), 2000))))
	}
	page, pages, shown := Paged(blocks, v.Page, maxHomeBlocks)
	if nav := pageButtons("home_nav", ActionHomePage, page, pages, strconv.Itoa); nav != nil {
		shown = append(shown, slack.NewContextBlock("", Mrkdwn(fmt.Sprintf("Page %d of %d", page+1, pages))), nav)
	}
	return slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: shown}}
}

func homeRequestText(r store.Request, now time.Time) string {
	s := fmt.Sprintf("`%s` for *%s* · waiting %s", Escape(TokenName(r)), Escape(r.Owner), Waited(now.Sub(r.CreatedAt)))
	if p := r.Policy; p != nil && len(p.Flags) > 0 {
		var flags []string
		for _, f := range p.Flags {
			flags = append(flags, "`"+f.Name+"`")
		}
		s += " · :triangular_flag_on_post: " + strings.Join(flags, " ")
	}
	if r.State == store.StateDeciding && r.Decision != nil {
		s += " · " + Decider(r.Decision) + " is deciding"
	}
	return s
}
