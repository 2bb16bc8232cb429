package view

import "github.com/slack-go/slack"

// ActionLinkGitHub is the button that opens GitHub's sign-in. It is a
// link: Slack opens the URL, and the click it reports needs no answer.
const ActionLinkGitHub = "pat_link_github"

// LinkPrompt is the ephemeral message that sends a Slack user to GitHub to
// sign in: why (mrkdwn), and the button. The URL works once, for
// minutes, for this user only.
func LinkPrompt(why, signInURL string) ([]slack.Block, string) {
	button := slack.NewButtonBlockElement(ActionLinkGitHub, "", Plain("Sign in to GitHub"))
	button.URL = signInURL
	button.Style = slack.StylePrimary
	return []slack.Block{
		slack.NewSectionBlock(Mrkdwn(why), nil, nil),
		slack.NewActionBlock("pat_link", button),
		slack.NewContextBlock("", Mrkdwn("The link works once, for 10 minutes, for you only. patbot links nothing until you confirm on its page which accounts to link.")),
	}, why
}
