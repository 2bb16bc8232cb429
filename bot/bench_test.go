package bot_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store/bolt"
)

// BenchmarkWebhookIntake measures what GitHub waits for: verifying the
// signature, parsing, and the fsynced commit of delivery and job (shared
// by concurrent deliveries). The workers do not run.
func BenchmarkWebhookIntake(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "patbot.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	sl := slacktest.New("xoxb-bench")
	defer sl.Close()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	client, _ := github.New(github.Config{AppID: 1, PrivateKey: keyPEM, BaseURL: "http://127.0.0.1:9/"}) // never called
	bt, err := bot.New(bot.Deps{Store: db, GitHub: client, Slack: bot.NewSlackClient(bot.SlackConfig{BotToken: "xoxb-bench", APIURL: sl.URL}),
		Config: policy, WebhookSecret: []byte(secret), SlackSigningSecret: signingSecret, QueueSize: 10_000_000})
	if err != nil {
		b.Fatal(err)
	}
	handler := bt.WebhookHandler()
	body, err := os.ReadFile("../github/testdata/personal_access_token_request.created.json")
	if err != nil {
		b.Fatal(err)
	}
	sig := github.Sign([]byte(secret), body)
	var seq atomic.Int64
	b.SetParallelism(16)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/github/webhook", bytes.NewReader(body))
			req.Header.Set(github.HeaderEvent, github.EventPATRequest)
			req.Header.Set(github.HeaderDelivery, fmt.Sprintf("bench-%d", seq.Add(1)))
			req.Header.Set(github.HeaderSignature, sig)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				b.Errorf("status %d", rec.Code)
			}
		}
	})
}
