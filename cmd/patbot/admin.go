package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/postgres"
)

// patbot serves admin commands (patbot audit, for now) on a local Unix
// socket while it runs: bbolt admits one process, so a second one cannot
// open the file. The socket is mode 0600, and patbot also checks that the
// peer runs as its own user (or root).

// adminSocketPath is PATBOT_ADMIN_SOCKET, or patbot.sock beside the
// database file (in the working directory for a database URL).
func adminSocketPath(getenv func(string) string, dbPath string) string {
	if p := strings.TrimSpace(getenv("PATBOT_ADMIN_SOCKET")); p != "" {
		return p
	}
	if postgres.IsURL(dbPath) {
		return "patbot.sock"
	}
	return filepath.Join(filepath.Dir(dbPath), "patbot.sock")
}

// listenAdmin listens on a Unix socket at path, readable and writable by
// patbot's user only. A socket left by a patbot that stopped is replaced;
// anything else at path is an error.
func listenAdmin(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("admin socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another patbot answers on it", path)
		}
		os.Remove(path) // left by a patbot that stopped
	}
	// The socket is created with the umask's permissions: make it private
	// from the start, not after a moment.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &peerCheckedListener{Listener: ln}, nil
}

// peerCheckedListener accepts connections only from processes of its own
// user, or root.
type peerCheckedListener struct{ net.Listener }

func (l *peerCheckedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if samePeer(c) {
			return c, nil
		}
		c.Close()
	}
}

func samePeer(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return false
	}
	return cred.Uid == uint32(os.Getuid()) || cred.Uid == 0
}

// adminStore is what the admin commands read.
type adminStore interface {
	store.Audit
	store.Requests
}

// adminHandler serves the admin commands; gh answers patbot grants.
func adminHandler(db adminStore, gh bot.GrantQuerier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /grants", func(w http.ResponseWriter, r *http.Request) {
		org, q := grantsQueryOf(r.URL.Query())
		found, err := bot.FindGrants(r.Context(), gh, org, q, time.Now())
		if err != nil {
			log.Warn("admin: cannot list grants", "org", org, "err", err)
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/jsonl")
		enc := json.NewEncoder(w)
		for _, g := range found {
			if err := enc.Encode(g); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /requests", func(w http.ResponseWriter, r *http.Request) {
		since, err := time.Parse(time.RFC3339, r.URL.Query().Get("since"))
		if err != nil {
			http.Error(w, "since must be an RFC 3339 time", http.StatusBadRequest)
			return
		}
		records, err := requestsSince(db, since)
		if err != nil {
			log.Error("admin: cannot read the requests", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(records); err != nil {
			log.Warn("admin: request listing cut short", "err", err)
		}
	})
	mux.HandleFunc("GET /audit", func(w http.ResponseWriter, r *http.Request) {
		q, problems := parseAuditQuery(r.URL.Query())
		if len(problems) > 0 {
			http.Error(w, strings.Join(problems, "; "), http.StatusBadRequest)
			return
		}
		events, err := db.AuditEvents(q.filter)
		if err != nil {
			log.Error("admin: cannot read the audit trail", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := writeAudit(w, q.format, events); err != nil {
			log.Warn("admin: audit export cut short", "err", err)
		}
	})
	return mux
}

// askAdmin runs an admin command on the patbot serving at socket, copying
// its answer to out. It reports errNoAdmin when nothing answers there.
func askAdmin(ctx context.Context, socket, path string, query url.Values, out io.Writer) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second}
			return d.DialContext(ctx, "unix", socket)
		},
		// The answer may stream for long (an audit export), but starts soon.
		ResponseHeaderTimeout: time.Minute,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://patbot"+path+"?"+query.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return errNoAdmin
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("patbot answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	_, err = io.Copy(out, resp.Body)
	return err
}

var errNoAdmin = errors.New("no patbot answers on the admin socket")

// openStoreUnserved opens the store read-only for a command that found no
// patbot answering on its admin socket.
func openStoreUnserved(ctx context.Context, dbPath, socket string) (store.Store, error) {
	db, err := openStore(ctx, dbPath, true)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%s is in use by a running patbot, which does not answer on its admin socket %s: set PATBOT_ADMIN_SOCKET as patbot has it", dbPath, socket)
	}
	return db, err
}
