package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// SocketModeConfig turns Socket Mode on: Slack's interactions and slash
// commands arrive over a WebSocket that patbot opens, with the same
// behaviour as over HTTP, and no public Request URL is needed.
type SocketModeConfig struct {
	AppToken string // xapp- token with connections:write
	BotToken string
	APIURL   string // Web API base URL; default Slack's
}

// runSocketMode holds the Socket Mode connection (slack-go reconnects it)
// and answers every envelope until ctx is cancelled.
func (b *Bot) runSocketMode(ctx context.Context, cfg SocketModeConfig) {
	opts := []slack.Option{
		slack.OptionAppLevelToken(cfg.AppToken),
		slack.OptionHTTPClient(&http.Client{Timeout: 10 * time.Second}),
	}
	if cfg.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIURL))
	}
	client := socketmode.New(slack.New(cfg.BotToken, opts...),
		socketmode.OptionLog(slog.NewLogLogger(b.log.Handler(), slog.LevelDebug)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		// RunContext returns only with an error; context.Canceled on stop.
		if err := client.RunContext(ctx); !errors.Is(err, context.Canceled) {
			b.log.Error("Socket Mode stopped", "err", err)
		}
	}()
	defer func() { <-done }()
	for {
		select {
		case <-ctx.Done():
			return
		case evt := <-client.Events:
			b.handleSocketEvent(ctx, client, evt)
		}
	}
}

func (b *Bot) handleSocketEvent(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnected:
		b.socketConnected.Store(true)
		b.log.Info("Socket Mode connected")
	case socketmode.EventTypeConnectionError, socketmode.EventTypeDisconnect:
		b.socketConnected.Store(false)
		b.log.Warn("Socket Mode disconnected; reconnecting", "event", string(evt.Type), "detail", fmt.Sprint(evt.Data))
	case socketmode.EventTypeInvalidAuth:
		b.socketConnected.Store(false)
		b.log.Error("Socket Mode refused the app-level token (SLACK_APP_TOKEN)")
	case socketmode.EventTypeInteractive:
		ic, ok := evt.Data.(slack.InteractionCallback)
		if !ok || evt.Request == nil {
			return
		}
		ack, err := b.HandleInteraction(ctx, ic)
		if errors.Is(err, errBusy) {
			b.metrics.slackRequests.WithLabelValues("socket:interactive", "busy").Inc()
			b.tell(ctx, ic.Channel.ID, ic.User.ID, "patbot is busy; try again in a moment.")
		} else {
			b.metrics.slackRequests.WithLabelValues("socket:interactive", "ok").Inc()
		}
		b.ack(client, evt.Request, ack)
	case socketmode.EventTypeEventsAPI:
		ev, ok := evt.Data.(slackevents.EventsAPIEvent)
		if evt.Request != nil {
			b.ack(client, evt.Request, nil)
		}
		if ok {
			b.metrics.slackRequests.WithLabelValues("socket:events_api", "ok").Inc()
			b.handleEvent(ev) // acknowledged already; an error is logged, and the next open publishes the tab
		}
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok || evt.Request == nil {
			return
		}
		b.metrics.slackRequests.WithLabelValues("socket:slash_commands", "ok").Inc()
		b.ack(client, evt.Request, b.HandleCommand(slashCommand{Text: cmd.Text, UserID: cmd.UserID, UserName: cmd.UserName, ChannelID: cmd.ChannelID,
			TeamDomain: cmd.TeamDomain, ResponseURL: cmd.ResponseURL}))
	default:
		if evt.Request != nil && evt.Request.EnvelopeID != "" {
			b.ack(client, evt.Request, nil) // acknowledged, not handled
		}
	}
}

// ack acknowledges an envelope, with a payload when there is one (a
// dialog's field errors, a slash command's answer).
func (b *Bot) ack(client *socketmode.Client, req *socketmode.Request, payload any) {
	var err error
	if payload == nil {
		err = client.Ack(*req)
	} else {
		err = client.Ack(*req, payload)
	}
	if err != nil {
		b.log.Warn("cannot acknowledge a Socket Mode envelope", "err", err)
	}
}

// CheckSocketMode checks that Slack accepts the app-level token for Socket
// Mode, without holding a connection.
func CheckSocketMode(ctx context.Context, cfg SocketModeConfig) CheckResult {
	opts := []slack.Option{slack.OptionAppLevelToken(cfg.AppToken), slack.OptionHTTPClient(&http.Client{Timeout: 10 * time.Second})}
	if cfg.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIURL))
	}
	if _, _, err := slack.New(cfg.BotToken, opts...).StartSocketModeContext(ctx); err != nil {
		return CheckResult{What: "Slack Socket Mode", Detail: "the app-level token (SLACK_APP_TOKEN) does not open a connection: " + describeCheckError(err) +
			"; it needs the connections:write scope, and Socket Mode must be on in the app's settings"}
	}
	return CheckResult{OK: true, What: "Slack Socket Mode", Detail: "the app-level token opens connections"}
}
