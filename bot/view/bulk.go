package view

import (
	"fmt"
	"strconv"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/store"
)

// The bulk decision dialog: its callback, its paging buttons, and its
// blocks.
const (
	CallbackBulk       = "pat_bulk"
	ActionBulkPage     = "pat_bulk_page" // + _prev or _next
	BulkAllBlock       = "bulk_all"
	BulkAllInput       = "bulk_all_input"
	BulkPickBlock      = "bulk_pick_" // + group number
	BulkPickInput      = "bulk_pick_input"
	BulkDecisionBlock  = "bulk_decision"
	BulkDecisionInput  = "bulk_decision_input"
	BulkReasonBlock    = "bulk_reason"
	BulkReasonInput    = "bulk_reason_input"
	bulkPerGroup       = 10 // Slack's limit of checkbox options
	BulkPerPage        = 50
	bulkGroupsPerPage  = BulkPerPage / bulkPerGroup
	bulkOptionTextSize = 75
)

// BulkModal is one page of the dialog that decides several requests of org
// at once: checkboxes for this page's requests (ticked when in picked),
// "select all", paging, the decision and one reason. meta travels with it.
func BulkModal(org string, all []store.Request, page int, picked map[int64]bool, allTicked bool, now time.Time, meta string) slack.ModalViewRequest {
	page, pages, onPage := Paged(all, page, BulkPerPage)
	allOption := slack.NewOptionBlockObject("all", Plain(fmt.Sprintf("All %d requests listed (every page)", len(all))), nil)
	allBox := slack.NewCheckboxGroupsBlockElement(BulkAllInput, allOption)
	if allTicked {
		allBox.InitialOptions = []*slack.OptionBlockObject{allOption}
	}
	allInput := slack.NewInputBlock(BulkAllBlock, Plain("Select all"), nil, allBox)
	allInput.Optional = true
	blocks := []slack.Block{
		slack.NewSectionBlock(Mrkdwn(fmt.Sprintf("Decide pending requests of *%s* together, oldest first. Your own requests, and those a rule asks two approvers for or would deny, are not listed.", Escape(org))), nil, nil),
		allInput,
	}
	for g := 0; g*bulkPerGroup < len(onPage); g++ {
		group := onPage[g*bulkPerGroup : min((g+1)*bulkPerGroup, len(onPage))]
		var options, initial []*slack.OptionBlockObject
		for _, r := range group {
			o := slack.NewOptionBlockObject(strconv.FormatInt(r.ID, 10),
				Plain(Truncate(fmt.Sprintf("%s for %s · waiting %s", TokenName(r), r.Owner, Waited(now.Sub(r.CreatedAt))), bulkOptionTextSize)), nil)
			options = append(options, o)
			if picked[r.ID] {
				initial = append(initial, o)
			}
		}
		box := slack.NewCheckboxGroupsBlockElement(BulkPickInput, options...)
		box.InitialOptions = initial
		label := "Requests"
		if pages > 1 {
			label = fmt.Sprintf("Requests (page %d of %d)", page+1, pages)
		}
		in := slack.NewInputBlock(fmt.Sprintf("%s%d_%d", BulkPickBlock, page, g), Plain(label), nil, box)
		in.Optional = true
		blocks = append(blocks, in)
	}
	if nav := pageButtons("bulk_nav", ActionBulkPage, page, pages, strconv.Itoa); nav != nil {
		blocks = append(blocks, nav)
	}
	approve := slack.NewOptionBlockObject("approve", Plain("Approve them"), nil)
	deny := slack.NewOptionBlockObject("deny", Plain("Deny them"), nil)
	decision := slack.NewRadioButtonsBlockElement(BulkDecisionInput, approve, deny)
	reason := slack.NewPlainTextInputBlockElement(Plain("Sent to every requester with a denial"), BulkReasonInput)
	reason.Multiline = true
	reason.MaxLength = 1024
	reasonInput := slack.NewInputBlock(BulkReasonBlock, Plain("Reason"), nil, reason)
	reasonInput.Optional = true
	blocks = append(blocks, slack.NewInputBlock(BulkDecisionBlock, Plain("Decision"), nil, decision), reasonInput)
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      CallbackBulk,
		Title:           Plain("Review requests"),
		Submit:          Plain("Decide"),
		Close:           Plain("Cancel"),
		PrivateMetadata: meta,
		Blocks:          slack.Blocks{BlockSet: blocks},
	}
}
