package view

import (
	"fmt"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/github"
)

// DenyModal is the dialog that asks an approver why they deny request id
// of org; meta travels back with the submission (a view_submission has no
// channel of its own).
func DenyModal(org string, id int64, meta string) slack.ModalViewRequest {
	input := slack.NewPlainTextInputBlockElement(Plain("Why? What would you approve instead?"), DenyReasonInput)
	input.Multiline = true
	input.MaxLength = github.MaxReasonLength
	reason := slack.NewInputBlock(DenyReasonBlock, Plain("Reason"), Plain("Optional. GitHub emails it to the requester. At most 1,024 characters."), input)
	reason.Optional = true
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      CallbackDeny,
		Title:           Plain("Deny token request"),
		Submit:          Plain("Deny"),
		Close:           Plain("Cancel"),
		PrivateMetadata: meta,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(Mrkdwn(fmt.Sprintf("Deny fine-grained PAT request %d for *%s*?", id, Escape(org))), nil, nil),
			reason,
		}},
	}
}

// RefusedModal replaces a dialog with why the approver cannot go on.
func RefusedModal(title, why string) slack.ModalViewRequest {
	return slack.ModalViewRequest{
		Type:   slack.VTModal,
		Title:  Plain(title),
		Close:  Plain("Close"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewSectionBlock(Mrkdwn(why), nil, nil)}},
	}
}
