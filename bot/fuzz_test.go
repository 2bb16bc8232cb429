package bot

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/view"
)

// FuzzSlashCommandArgs feeds /pat arguments: parsing never panics, and a
// query it accepts names a valid login and a configured org.
func FuzzSlashCommandArgs(f *testing.F) {
	for _, seed := range []string{"grants", "grants <@U0HAL|halain987>", "grants <@U0HAL>", "grants octocat --org acme",
		"grants --org=acme @octocat", "grants --org", "grants <!channel>", "requests", "help", "grants a b", "grants -x"} {
		f.Add(seed)
	}
	b := &Bot{}
	b.SetConfig(Config{Orgs: map[string]Org{"acme": {Login: "Acme", Channel: "C1"}}, Users: map[string]string{"U0HAL": "halain987"}})
	f.Fuzz(func(t *testing.T, text string) {
		args := strings.Fields(text)
		if len(args) > 0 {
			args = args[1:]
		}
		q, problem := b.parseGrantsArgs(args)
		if problem != "" {
			return
		}
		if q.Login != "" && !loginRE.MatchString(q.Login) {
			t.Fatalf("accepted login %q", q.Login)
		}
		if q.Org != "" && q.Org != "Acme" {
			t.Fatalf("accepted org %q", q.Org)
		}
	})
}

// FuzzInteractionPayload feeds interaction payloads through the parsing
// patbot does before any work: the payload JSON, button values and the
// deny dialog's metadata.
func FuzzInteractionPayload(f *testing.F) {
	f.Add(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"pat_approve","value":"acme/42"}]}`)
	f.Add(`{"type":"block_actions","actions":[{"action_id":"pat_revoke","value":"{\"o\":\"acme\",\"g\":7,\"q\":{\"l\":\"x\"}}"}]}`)
	f.Add(`{"type":"view_submission","view":{"callback_id":"pat_deny","private_metadata":"{\"org\":\"acme\",\"id\":1}","state":{"values":{"reason":{"reason_input":{"value":"no"}}}}}}`)
	f.Fuzz(func(t *testing.T, payload string) {
		var ic slack.InteractionCallback
		if json.Unmarshal([]byte(payload), &ic) != nil {
			return
		}
		for _, a := range ic.ActionCallback.BlockActions {
			if org, id, ok := view.ParseRequestKey(a.Value); ok && (org == "" || id <= 0) {
				t.Fatalf("accepted %q", a.Value)
			}
			var rv view.RevokeValue
			_ = json.Unmarshal([]byte(a.Value), &rv)
		}
		var meta denyMetadata
		_ = json.Unmarshal([]byte(ic.View.PrivateMetadata), &meta)
	})
}
