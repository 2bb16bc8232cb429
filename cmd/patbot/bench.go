package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store/postgres"
)

// benchOptions are patbot bench's flags.
type benchOptions struct {
	n, concurrency, rounds, samples int
	binary                          string
	db                              string // PATBOT_DB for patbot; "" is a new bbolt file

	flood                              bool
	floodPosts, floodSize, floodSigned int
}

// bench is the load tool: it runs patbot serve as a child process against
// in-process fakes of GitHub and Slack that answer at once, and measures
// intake against a baseline receiver, the latency from webhook to card and
// from click to review, and patbot's memory and store.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o benchOptions
	fs := commandFlags("bench", stderr)
	fs.IntVar(&o.n, "n", 2000, "webhooks for the throughput comparison")
	fs.IntVar(&o.concurrency, "c", 64, "webhooks in flight at once")
	fs.IntVar(&o.rounds, "rounds", 4, "rounds, alternating patbot and the baseline")
	fs.IntVar(&o.samples, "samples", 200, "requests sent one at a time, when patbot is idle, for the latency measurements")
	exe, _ := os.Executable()
	fs.StringVar(&o.binary, "binary", exe, "the patbot binary to measure")
	baselineAddr := fs.String("baseline-server", "", "serve the baseline receiver on this address (used by bench itself)")
	fs.StringVar(&o.db, "db", "", "the store patbot runs on: a postgres:// URL (an empty database), or a bbolt file (default: a new file in a temporary folder)")
	fs.BoolVar(&o.flood, "flood", false, "instead: flood patbot with large unsigned webhooks while signed ones arrive from another address, and measure its memory")
	fs.IntVar(&o.floodPosts, "flood-posts", 256, "with -flood: unsigned posts in all, -c at a time")
	fs.IntVar(&o.floodSize, "flood-size", 25<<20, "with -flood: bytes in each unsigned post")
	fs.IntVar(&o.floodSigned, "flood-signed", 100, "with -flood: signed webhooks sent during the flood")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *baselineAddr != "" {
		// The baseline runs in a process of its own, as patbot does, so
		// that both are measured across the same process boundary.
		srv := &http.Server{Addr: *baselineAddr, Handler: baselineReceiver([]byte(os.Getenv("BASELINE_SECRET"))), ReadHeaderTimeout: 10 * time.Second}
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(stderr, "patbot bench: baseline: %v\n", err)
			return exitFailed
		}
		return exitOK
	}
	if o.flood {
		if o.floodPosts < 1 || o.floodSize < 1 || o.floodSigned < 1 || o.concurrency < 1 {
			fmt.Fprintln(stderr, "patbot bench: -flood-posts, -flood-size, -flood-signed and -c must be at least 1")
			return exitUsage
		}
		ok, err := runFlood(ctx, o, stdout)
		return benchExit(stderr, ok, err)
	}
	if o.n < o.rounds || o.concurrency < 1 || o.rounds < 1 || o.samples < 1 {
		fmt.Fprintln(stderr, "patbot bench: -n must be at least -rounds, and -c, -rounds and -samples at least 1")
		return exitUsage
	}
	// Cards are posted after a burst (jobs yield to intake), so a burst
	// larger than the queue would be refused in part.
	if burst := o.n - o.n/o.rounds*(o.rounds-1); burst > bot.DefaultQueueSize {
		fmt.Fprintf(stderr, "patbot bench: a burst of %d webhooks exceeds patbot's queue of %d unfinished jobs; use more -rounds\n", burst, bot.DefaultQueueSize)
		return exitUsage
	}
	ok, err := runBench(ctx, o, stdout)
	return benchExit(stderr, ok, err)
}

// benchExit turns a measurement's result into bench's exit status: it
// fails when the measurement could not be made or missed a target.
func benchExit(stderr io.Writer, ok bool, err error) int {
	if err != nil {
		fmt.Fprintf(stderr, "patbot bench: %v\n", err)
		return exitFailed
	}
	if !ok {
		return exitFailed
	}
	return exitOK
}

// okMark shows whether a measure met its target.
func okMark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

const benchOrg, benchChannel = "acme", "C0BENCH"

type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(int(float64(len(s))*p), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// benchRig is patbot serve, a child process, against fakes of GitHub and
// Slack in this process, with requests pending in GitHub.
type benchRig struct {
	gh              *githubtest.Server
	sl              *slacktest.Server
	child           *exec.Cmd
	dir             string
	patbot          string // base URL
	secret, signing string
	client          *http.Client
}

// startBenchRig starts patbot with requests pending requests (IDs from
// 10,000) and waits until it is ready. Close stops everything.
func startBenchRig(ctx context.Context, binary, db string, requests, concurrency int) (*benchRig, error) {
	rig := &benchRig{secret: randomSecret(), signing: randomSecret()}
	var err error
	if rig.gh, err = githubtest.New(githubtest.Options{}); err != nil {
		return nil, err
	}
	rig.gh.AddOrg(benchOrg, 1)
	rig.gh.SetMembership(benchOrg, "alice", "admin", "active")
	for i := range requests {
		id := int64(10_000 + i)
		rig.gh.AddRequest(benchOrg, github.PendingRequest{ID: id, Owner: github.User{Login: fmt.Sprintf("dev%d", id), ID: id},
			TokenID: id, TokenName: fmt.Sprintf("token-%d", id), Reason: "benchmark", RepositorySelection: "all"})
	}
	rig.sl = slacktest.New("xoxb-bench")
	if rig.dir, err = os.MkdirTemp("", "patbot-bench-"); err != nil {
		rig.Close()
		return nil, err
	}
	write := func(name, content string) string {
		path := filepath.Join(rig.dir, name)
		os.WriteFile(path, []byte(content), 0o600)
		return path
	}
	addr, err := freeLocalAddr()
	if err != nil {
		rig.Close()
		return nil, err
	}
	if db == "" {
		db = filepath.Join(rig.dir, "patbot.db")
	}
	env := []string{
		"GITHUB_APP_ID=" + strconv.FormatInt(rig.gh.AppID, 10), "GITHUB_APP_PRIVATE_KEY_FILE=" + write("app.pem", string(rig.gh.PrivateKeyPEM)),
		"GITHUB_WEBHOOK_SECRET=" + rig.secret, "GITHUB_API_URL=" + rig.gh.URL, "SLACK_BOT_TOKEN=xoxb-bench", "SLACK_SIGNING_SECRET=" + rig.signing,
		"SLACK_API_URL=" + rig.sl.URL, "PATBOT_ADDR=" + addr, "PATBOT_DB=" + db, "PATBOT_ADMIN_SOCKET=" + filepath.Join(rig.dir, "patbot.sock"), "PATBOT_RECONCILE_INTERVAL=0",
		"PATBOT_CONFIG=" + write("patbot.yaml", "orgs:\n  acme: {channel: "+benchChannel+"}\nusers: {U0ALICE: alice}\n"),
	}
	logFile, err := os.Create(filepath.Join(rig.dir, "patbot.log"))
	if err != nil {
		rig.Close()
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	rig.child = exec.Command(binary, "serve")
	rig.child.Env, rig.child.Stdout, rig.child.Stderr = env, logFile, logFile
	if err := rig.child.Start(); err != nil {
		rig.child = nil
		rig.Close()
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	rig.patbot = "http://" + addr
	rig.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	if err := waitUntil(ctx, func() bool {
		resp, err := rig.client.Get(rig.patbot + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}); err != nil {
		rig.Close()
		return nil, fmt.Errorf("patbot did not become ready: %w", err)
	}
	return rig, nil
}

// stop asks patbot to stop and waits for it.
func (rig *benchRig) stop() {
	if rig.child != nil {
		rig.child.Process.Signal(os.Interrupt)
		rig.child.Wait()
		rig.child = nil
	}
}

func (rig *benchRig) Close() {
	if rig.child != nil {
		rig.child.Process.Kill()
		rig.child.Wait()
	}
	if rig.sl != nil {
		rig.sl.Close()
	}
	if rig.gh != nil {
		rig.gh.Close()
	}
	if rig.dir != "" {
		os.RemoveAll(rig.dir)
	}
}

func runBench(ctx context.Context, o benchOptions, out io.Writer) (bool, error) {
	total := o.n + o.samples
	rig, err := startBenchRig(ctx, o.binary, o.db, total, o.concurrency)
	if err != nil {
		return false, err
	}
	defer rig.Close()
	gh, sl, child, dir, patbot, secret, signing, client := rig.gh, rig.sl, rig.child, rig.dir, rig.patbot, rig.secret, rig.signing, rig.client

	baselineAddr, err := freeLocalAddr()
	if err != nil {
		return false, err
	}
	baselineProc := exec.Command(o.binary, "bench", "-baseline-server", baselineAddr)
	baselineProc.Env = []string{"BASELINE_SECRET=" + secret}
	if err := baselineProc.Start(); err != nil {
		return false, err
	}
	defer func() { baselineProc.Process.Kill(); baselineProc.Wait() }()
	baseline := "http://" + baselineAddr
	if err := waitUntil(ctx, func() bool {
		c, err := net.Dial("tcp", baselineAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return false, err
	}

	fmt.Fprintf(out, "patbot bench: %d webhooks at concurrency %d in %d rounds, alternating with a baseline receiver\n"+
		"(the baseline, a process of its own like patbot, caps the body, verifies the signature, decodes the JSON and\n"+
		"answers 202; patbot also commits each delivery and its work to %s, durably, before answering).\n"+
		"Webhooks are shaped like GitHub's (about 3 KB, random delivery GUIDs) and signed before each burst; each\n"+
		"burst starts with patbot idle. Fakes of GitHub and Slack, in this process, answer at once.\n\n",
		o.n, o.concurrency, o.rounds, map[bool]string{true: "PostgreSQL", false: "bbolt"}[postgres.IsURL(o.db)])

	// Throughput, alternating. Every burst starts with patbot idle (the
	// previous burst's cards all posted), so that neither receiver pays for
	// the other's work; patbot's own burst does include its card work.
	cardsFor := func() map[string]slacktest.Message { return cardsByRequest(sl, benchChannel) }
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	idle := func(cards int) error {
		if err := waitUntil(wctx, func() bool { return sl.Count(benchChannel) >= cards }); err != nil {
			return fmt.Errorf("only %d of %d cards: %w", len(cardsFor()), cards, err)
		}
		return nil
	}
	results := map[string]*burstResult{patbot: {}, baseline: {}}
	var roundRatios []float64 // each round's patbot rate over the baseline's: the spread shows the machine's noise
	pids := map[string]int{patbot: child.Process.Pid, baseline: baselineProc.Process.Pid}
	sent := 0 // webhooks sent to patbot, each of which brings a card
	per := o.n / o.rounds
	for round := range o.rounds {
		count := per
		if round == o.rounds-1 {
			count = o.n - per*(o.rounds-1)
		}
		hooks := make([]signedWebhook, count)
		for i := range hooks {
			hooks[i] = newSignedWebhook(secret, int64(10_000+sent+i))
		}
		rates := map[string]float64{}
		for _, target := range []string{patbot, baseline} {
			if err := idle(sent); err != nil {
				return false, err
			}
			cpu := procCPU(pids[target])
			lat, took, err := burst(ctx, client, target, hooks, o.concurrency)
			if err != nil {
				return false, err
			}
			r := results[target]
			r.lat, r.took, r.cpu = append(r.lat, lat...), r.took+took, r.cpu+procCPU(pids[target])-cpu
			rates[target] = float64(count) / took.Seconds()
			if target == patbot {
				sent += count
			}
		}
		roundRatios = append(roundRatios, rates[patbot]/rates[baseline])
	}
	base, pb := results[baseline], results[patbot]
	ratio := pb.rate() / base.rate()
	fmt.Fprintf(out, "%-34s %12s %10s %10s %14s\n", "intake", "throughput", "p50", "p99", "CPU/webhook")
	for _, row := range []struct {
		name string
		r    *burstResult
	}{{"baseline receiver", base}, {"patbot (durable, fsynced)", pb}} {
		fmt.Fprintf(out, "%-34s %10.0f/s %10s %10s %11.0f µs\n", row.name, row.r.rate(), ms(row.r.lat.pct(.5)), ms(row.r.lat.pct(.99)),
			float64(row.r.cpu.Microseconds())/float64(len(row.r.lat)))
	}
	fmt.Fprintf(out, "%-34s %12.2f   target ≥ 0.80 %s   (rounds %.2f–%.2f)\n\n", "ratio", ratio, okMark(ratio >= 0.8),
		slices.Min(roundRatios), slices.Max(roundRatios))
	if err := idle(o.n); err != nil {
		return false, fmt.Errorf("after the bursts: %w", err)
	}

	// Latency, one request at a time, with patbot idle.
	var toCard, ack, toReview latencies
	for i := range o.samples {
		id := int64(10_000 + sent + i)
		key := fmt.Sprintf("%s/%d", benchOrg, id)
		// Polled through the fakes' cheap lookups: a scan of every message
		// or call under their locks would hold patbot up.
		before := sl.Count(benchChannel)
		start := time.Now()
		if code, err := postSigned(ctx, client, patbot, newSignedWebhook(secret, id)); err != nil || code != http.StatusAccepted {
			return false, fmt.Errorf("webhook %d: %d %v", id, code, err)
		}
		var card slacktest.Message
		if err := waitUntil(wctx, func() bool {
			if sl.Count(benchChannel) == before {
				return false
			}
			var ok bool
			card, ok = sl.FindMetadata(benchChannel, `"request":"`+key+`"`) // the newest message
			return ok
		}); err != nil {
			return false, fmt.Errorf("no card for %s", key)
		}
		toCard = append(toCard, card.Posted.Sub(start))
		time.Sleep(5 * time.Millisecond) // idle again: the card's record is written

		click := slacktest.SignedRequest(signing, patbot+"/slack/interactions", time.Now(),
			slacktest.BlockActionPayload("U0ALICE", benchChannel, card.TS, "pat_approve", key))
		click.RequestURI = ""
		start = time.Now()
		resp, err := client.Do(click.WithContext(ctx))
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		ack = append(ack, time.Since(start))
		var review githubtest.Decision
		if err := waitUntil(wctx, func() bool {
			var ok bool
			review, ok = gh.Review(benchOrg, id)
			return ok
		}); err != nil {
			return false, fmt.Errorf("no review for %s", key)
		}
		toReview = append(toReview, review.At.Sub(start))
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Fprintf(out, "%-34s %10s %10s\n", fmt.Sprintf("latency, idle (%d samples)", o.samples), "p50", "p99")
	fmt.Fprintf(out, "%-34s %10s %10s   target p99 ≤ 20 ms %s\n", "webhook → card posted", ms(toCard.pct(.5)), ms(toCard.pct(.99)), okMark(toCard.pct(.99) <= 20*time.Millisecond))
	fmt.Fprintf(out, "%-34s %10s %10s   target p99 ≤ 10 ms %s\n", "click → acknowledged", ms(ack.pct(.5)), ms(ack.pct(.99)), okMark(ack.pct(.99) <= 10*time.Millisecond))
	fmt.Fprintf(out, "%-34s %10s %10s   target p99 ≤ 25 ms %s\n\n", "click → review sent to GitHub", ms(toReview.pct(.5)), ms(toReview.pct(.99)), okMark(toReview.pct(.99) <= 25*time.Millisecond))

	rss := peakRSS(child.Process.Pid)
	rig.stop()
	fmt.Fprintf(out, "%-34s %10.1f MB   target ≤ 50 MB %s\n", "peak RSS of patbot", float64(rss)/(1<<20), okMark(rss > 0 && rss <= 50<<20))
	if o.db == "" { // a bbolt file: its size
		fi, err := os.Stat(filepath.Join(dir, "patbot.db"))
		if err != nil {
			return false, err
		}
		fmt.Fprintf(out, "%-34s %10.1f KB   (%d requests, %.1f MB file; pruning keeps it bounded)\n",
			"store per request", float64(fi.Size())/float64(total)/1024, total, float64(fi.Size())/(1<<20))
	}

	cards := cardsFor()
	exact := len(cards) == total
	for key := range cards {
		if strings.HasSuffix(key, " (again)") {
			exact = false
		}
	}
	fmt.Fprintf(out, "%-34s %10d        want %d, one each %s\n", "cards posted", len(sl.Messages(benchChannel)), total, okMark(exact))
	return exact, nil
}

// runFlood sends -flood-posts unsigned webhooks of -flood-size bytes, -c
// at a time, claiming to be personal_access_token_request deliveries (whose
// bodies patbot must read whole), while -flood-signed real, signed
// deliveries arrive one at a time from another loopback address. It
// reports how the flood was answered, whether every signed delivery was
// accepted and carded, and patbot's peak memory.
func runFlood(ctx context.Context, o benchOptions, out io.Writer) (bool, error) {
	rig, err := startBenchRig(ctx, o.binary, o.db, o.floodSigned, o.concurrency)
	if err != nil {
		return false, err
	}
	defer rig.Close()
	fmt.Fprintf(out, "patbot bench -flood: %d unsigned posts of %.1f MiB, %d at a time, while %d signed webhooks arrive from 127.0.0.2\n\n",
		o.floodPosts, float64(o.floodSize)/(1<<20), o.concurrency, o.floodSigned)

	junk := bytes.Repeat([]byte("x"), o.floodSize)
	floodClient := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxConnsPerHost: o.concurrency, MaxIdleConnsPerHost: o.concurrency}}
	signedClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}).DialContext}}

	var mu sync.Mutex
	answers := map[string]int{}
	count := func(code int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			answers["error"]++
			return
		}
		answers[strconv.Itoa(code)]++
	}
	floodDone := make(chan struct{})
	var wg sync.WaitGroup
	work := make(chan int)
	for range o.concurrency {
		wg.Go(func() {
			for range work {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, rig.patbot+"/github/webhook", bytes.NewReader(junk))
				if err != nil {
					count(0, err)
					continue
				}
				req.Header.Set(github.HeaderEvent, github.EventPATRequest)
				req.Header.Set(github.HeaderDelivery, deliveryGUID())
				req.Header.Set(github.HeaderSignature, "sha256="+strings.Repeat("0", 64))
				resp, err := floodClient.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					count(resp.StatusCode, nil)
				} else {
					count(0, err)
				}
			}
		})
	}
	go func() {
		for i := range o.floodPosts {
			work <- i
		}
		close(work)
		wg.Wait()
		close(floodDone)
	}()

	accepted := 0
	for i := range o.floodSigned {
		code, err := postSigned(ctx, signedClient, rig.patbot, newSignedWebhook(rig.secret, int64(10_000+i)))
		if err == nil && code == http.StatusAccepted {
			accepted++
		}
	}
	select {
	case <-floodDone:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	waitUntil(wctx, func() bool { return rig.sl.Count(benchChannel) >= o.floodSigned })
	rss := peakRSS(rig.child.Process.Pid)
	rig.stop()

	codes := slices.Sorted(maps.Keys(answers))
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s: %d", c, answers[c]))
	}
	refusedAll := answers["202"] == 0 && answers["200"] == 0
	cards := len(cardsByRequest(rig.sl, benchChannel))
	fmt.Fprintf(out, "%-34s %s   (401 read and refused, 503 refused unread) %s\n", "unsigned posts answered", strings.Join(parts, ", "), okMark(refusedAll))
	fmt.Fprintf(out, "%-34s %d of %d %s\n", "signed webhooks accepted", accepted, o.floodSigned, okMark(accepted == o.floodSigned))
	fmt.Fprintf(out, "%-34s %d of %d %s\n", "cards posted", cards, o.floodSigned, okMark(cards == o.floodSigned))
	fmt.Fprintf(out, "%-34s %.1f MB   target < 100 MB %s\n", "peak RSS of patbot", float64(rss)/(1<<20), okMark(rss > 0 && rss < 100<<20))
	return refusedAll && accepted == o.floodSigned && cards == o.floodSigned && rss > 0 && rss < 100<<20, nil
}

// cardsByRequest maps each card in channel to the request its metadata
// names; a second card for a request is listed under "KEY (again)".
func cardsByRequest(sl *slacktest.Server, channel string) map[string]slacktest.Message {
	cards := map[string]slacktest.Message{}
	for _, m := range sl.Messages(channel) {
		var meta struct {
			EventPayload struct {
				Request string `json:"request"`
			} `json:"event_payload"`
		}
		json.Unmarshal(m.Metadata, &meta)
		key := meta.EventPayload.Request
		if _, dup := cards[key]; dup {
			key += " (again)"
		}
		cards[key] = m
	}
	return cards
}

func freeLocalAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// baselineReceiver does what every webhook receiver must, and nothing more.
func baselineReceiver(secret []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, github.MaxPayloadBytes))
		if err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		if github.VerifySignature(secret, body, r.Header.Get(github.HeaderSignature)) != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		var v map[string]any
		if json.Unmarshal(body, &v) != nil {
			http.Error(w, "malformed", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// webhookBody is a created webhook for request id, shaped and sized like a
// real delivery (github/testdata/personal_access_token_request.created.json,
// compact, as GitHub sends it): the user, organization, enterprise and
// installation objects come in full.
func webhookBody(id int64) []byte {
	login := fmt.Sprintf("dev%d", id)
	user := fmt.Sprintf(`{"login":%[1]q,"id":%[2]d,"node_id":"MDQ6VXNlcjE4MDI5Mzgy","avatar_url":"https://avatars.githubusercontent.com/u/%[2]d?v=4",`+
		`"gravatar_id":"","url":"https://api.github.com/users/%[1]s","html_url":"https://github.com/%[1]s",`+
		`"followers_url":"https://api.github.com/users/%[1]s/followers","following_url":"https://api.github.com/users/%[1]s/following{/other_user}",`+
		`"gists_url":"https://api.github.com/users/%[1]s/gists{/gist_id}","starred_url":"https://api.github.com/users/%[1]s/starred{/owner}{/repo}",`+
		`"subscriptions_url":"https://api.github.com/users/%[1]s/subscriptions","organizations_url":"https://api.github.com/users/%[1]s/orgs",`+
		`"repos_url":"https://api.github.com/users/%[1]s/repos","events_url":"https://api.github.com/users/%[1]s/events{/privacy}",`+
		`"received_events_url":"https://api.github.com/users/%[1]s/received_events","type":"User","site_admin":false}`, login, id)
	org := fmt.Sprintf(`{"login":%[1]q,"id":1,"node_id":"MDEyOk9yZ2FuaXphdGlvbjcxMDE4NzI4","url":"https://api.github.com/orgs/%[1]s",`+
		`"repos_url":"https://api.github.com/orgs/%[1]s/repos","events_url":"https://api.github.com/orgs/%[1]s/events",`+
		`"hooks_url":"https://api.github.com/orgs/%[1]s/hooks","issues_url":"https://api.github.com/orgs/%[1]s/issues",`+
		`"members_url":"https://api.github.com/orgs/%[1]s/members{/member}","public_members_url":"https://api.github.com/orgs/%[1]s/public_members{/member}",`+
		`"avatar_url":"https://avatars.githubusercontent.com/u/1?v=4","description":null}`, benchOrg)
	now := time.Now().UTC()
	return []byte(fmt.Sprintf(`{"action":"created","personal_access_token_request":{"id":%d,"owner":%s,"repository_selection":"all",`+
		`"repository_count":null,"repositories":null,"permissions_added":{},"permissions_upgraded":{},"permissions_result":{},`+
		`"created_at":%q,"token_id":%d,"token_name":"token-%d","token_expired":false,"token_expires_at":%q,"token_last_used_at":null},`+
		`"organization":%s,"enterprise":{"id":118,"slug":"octodemo","name":"Octodemo","node_id":"MDEwOkVudGVycHJpc2UxMTg=",`+
		`"avatar_url":"https://avatars.githubusercontent.com/b/118?v=4","description":"","website_url":"",`+
		`"html_url":"https://github.com/enterprises/octodemo","created_at":"2019-05-06T13:13:38Z","updated_at":"2024-03-26T10:37:51Z"},`+
		`"sender":%s,"installation":{"id":1,"node_id":"MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDk5NTY5MDI="}}`,
		id, user, now.Format(time.RFC3339), id, id, now.AddDate(0, 0, 30).Format(time.RFC3339), org, user))
}

// signedWebhook is a webhook ready to send: load is generated from
// requests signed beforehand, so that the generator spends little CPU.
type signedWebhook struct {
	delivery, signature string
	body                []byte
}

func newSignedWebhook(secret string, id int64) signedWebhook {
	body := webhookBody(id)
	return signedWebhook{delivery: deliveryGUID(), signature: github.Sign([]byte(secret), body), body: body}
}

// deliveryGUID is a random GUID, as GitHub's X-GitHub-Delivery values are:
// they land anywhere in the store's index, not in order.
func deliveryGUID() string {
	b := []byte(randomSecret())
	return fmt.Sprintf("%s-%s-%s-%s-%s", b[0:8], b[8:12], b[12:16], b[16:20], b[20:32])
}

func postSigned(ctx context.Context, client *http.Client, base string, hook signedWebhook) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/github/webhook", bytes.NewReader(hook.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(github.HeaderEvent, github.EventPATRequest)
	req.Header.Set(github.HeaderDelivery, hook.delivery)
	req.Header.Set(github.HeaderSignature, hook.signature)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// burstResult sums one receiver's bursts.
type burstResult struct {
	lat  latencies
	took time.Duration
	cpu  time.Duration // the receiver's CPU time, user and system
}

func (r *burstResult) rate() float64 { return float64(len(r.lat)) / r.took.Seconds() }

// burst sends every webhook, concurrency at a time, and returns each one's
// latency and the wall time.
func burst(ctx context.Context, client *http.Client, base string, hooks []signedWebhook, concurrency int) (latencies, time.Duration, error) {
	lat := make(latencies, len(hooks))
	errs := make(chan error, len(hooks))
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for i := range work {
				t := time.Now()
				code, err := postSigned(ctx, client, base, hooks[i])
				lat[i] = time.Since(t)
				if err == nil && code != http.StatusAccepted {
					err = fmt.Errorf("%s answered %d", base, code)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range hooks {
		work <- i
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	close(errs)
	return lat, took, <-errs
}

// peakRSS reads a process's peak resident set size (VmHWM) on Linux; 0
// elsewhere.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// procCPU reads the CPU time (user and system) a process has used so far,
// on Linux; 0 elsewhere.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}
