package bot

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/slack-go/slack"
)

// Slack is what bot needs of Slack's Web API; *slack.Client has it.
type Slack interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	OpenViewContext(ctx context.Context, triggerID string, view slack.ModalViewRequest) (*slack.ViewResponse, error)
	UpdateViewContext(ctx context.Context, view slack.ModalViewRequest, externalID, hash, viewID string) (*slack.ViewResponse, error)
	OpenConversationContext(ctx context.Context, params *slack.OpenConversationParameters) (*slack.Channel, bool, bool, error)
	GetConversationHistoryContext(ctx context.Context, params *slack.GetConversationHistoryParameters) (*slack.GetConversationHistoryResponse, error)
	PublishViewContext(ctx context.Context, req slack.PublishViewContextRequest) (*slack.ViewResponse, error)
}

var _ Slack = (*slack.Client)(nil)

// SlackConfig configures NewSlackClient.
type SlackConfig struct {
	BotToken string
	APIURL   string        // Web API base URL ending in /; default Slack's
	Timeout  time.Duration // per call; default 10s
	// Transport carries the calls (APIMetrics.Transport measures them);
	// default http.DefaultTransport.
	Transport http.RoundTripper
}

// slackRetries is how often a call rejected with 429 is retried after the
// Retry-After Slack sends. Only 429 is retried here: after a 5xx or a timeout
// a chat.postMessage may have been posted, and posting again would double
// the card.
const slackRetries = 3

// NewSlackClient returns a Slack Web API client with a timeout on every
// call.
func NewSlackClient(cfg SlackConfig) *slack.Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	opts := []slack.Option{
		slack.OptionHTTPClient(&http.Client{Timeout: cfg.Timeout, Transport: cfg.Transport}),
		slack.OptionRetry(slackRetries),
	}
	if cfg.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIURL))
	}
	return slack.New(cfg.BotToken, opts...)
}

// Retries of idempotent Slack calls (chat.update, views.update,
// conversations.open) after a 5xx, a timeout or a refused connection. 429 is
// retried by the client itself, for every method.
const (
	slackAttempts     = 3
	slackFirstBackoff = 250 * time.Millisecond
)

// retrySlack runs an idempotent call until it succeeds, fails for good, or
// the attempts run out.
func retrySlack(ctx context.Context, call func() error) error {
	backoff := slackFirstBackoff
	for attempt := 1; ; attempt++ {
		err := call()
		if err == nil || attempt == slackAttempts || !transientSlackError(err) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 2
	}
}

func transientSlackError(err error) bool {
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		return sc.Code >= 500
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// observedSlack tells its bot how each Slack call went, so that work
// waiting out a Slack outage resumes as soon as Slack answers again.
type observedSlack struct {
	Slack
	result func(error)
}

func (o observedSlack) PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error) {
	a, b, err := o.Slack.PostMessageContext(ctx, channelID, options...)
	o.result(err)
	return a, b, err
}

func (o observedSlack) UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error) {
	a, b, c, err := o.Slack.UpdateMessageContext(ctx, channelID, timestamp, options...)
	o.result(err)
	return a, b, c, err
}

func (o observedSlack) GetConversationHistoryContext(ctx context.Context, params *slack.GetConversationHistoryParameters) (*slack.GetConversationHistoryResponse, error) {
	resp, err := o.Slack.GetConversationHistoryContext(ctx, params)
	o.result(err)
	return resp, err
}

// slackResult notes how a Slack call went. The first success after a
// failure that retrying could fix wakes the jobs waiting to retry.
func (b *Bot) slackResult(err error) {
	switch {
	case err == nil:
		if b.slackFailing.Swap(false) {
			b.log.Info("Slack answers again; resuming waiting work")
			b.wakeWaiting()
		}
	case transientSlackError(err) || errors.Is(err, context.DeadlineExceeded):
		b.slackFailing.Store(true)
	}
}
