// Package auditstream writes patbot's audit trail, as it grows, as JSON
// lines to a file or to standard output, for a SIEM to collect.
//
// Its place is a cursor in the store, moved only after what it wrote is
// synced, so that a restart neither skips nor repeats an event. Written to a
// file, the file itself settles the one case the cursor cannot (a stop
// between the write and the cursor's update): on start, a partly written
// last line is cut off and the last whole line's seq is the place.
// Standard output cannot be read back: there, after a crash at that
// moment, the last batch may come twice (each line has its seq).
package auditstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/patbot/patbot/store"
)

// Store is what the stream needs of patbot's store.
type Store interface {
	AuditEvents(f store.AuditFilter) ([]store.AuditEvent, error)
	Cursor(name string) (uint64, error)
	SetCursor(name string, v uint64) error
}

// Output is where the lines go: a file, or standard output.
type Output interface {
	io.Writer
	Sync() error
}

// Limits.
const (
	batch = 1000 // events a write
	// poll is how often the stream looks for events nobody told it of.
	poll = 5 * time.Second
)

// CursorName is the stream's cursor in the store.
const CursorName = "audit-stream"

// Stream copies new audit events to an output.
type Stream struct {
	store  Store
	out    Output
	floor  uint64 // the last seq the output is known to hold
	log    *slog.Logger
	after  func(time.Duration) <-chan time.Time
	notify chan struct{}
}

// New returns a stream of st's audit trail to out. floor is the last seq
// out is known to hold (see Recover), 0 when unknown. after waits by
// patbot's clock.
func New(st Store, out Output, floor uint64, log *slog.Logger, after func(time.Duration) <-chan time.Time) *Stream {
	return &Stream{store: st, out: out, floor: floor, log: log, after: after, notify: make(chan struct{}, 1)}
}

// Notify says that an event was appended: the stream writes it soon.
func (s *Stream) Notify() {
	select {
	case s.notify <- struct{}{}:
	default: // a notice is pending already
	}
}

// Run writes events until ctx ends.
func (s *Stream) Run(ctx context.Context) {
	for {
		for {
			n, err := s.flush()
			if err != nil {
				s.log.Error("audit stream: cannot write; will try again", "err", err)
				break
			}
			if n < batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.notify:
		case <-s.after(poll):
		}
	}
}

// flush writes what came after the cursor, one batch, and moves the
// cursor. It returns how many events it wrote.
func (s *Stream) flush() (int, error) {
	cursor, err := s.store.Cursor(CursorName)
	if err != nil {
		return 0, err
	}
	cursor = max(cursor, s.floor)
	events, err := s.store.AuditEvents(store.AuditFilter{After: cursor, Limit: batch})
	if err != nil || len(events) == 0 {
		return 0, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return 0, err
		}
	}
	if _, err := s.out.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	// A pipe or a terminal cannot be synced (EINVAL): nothing to do.
	if err := s.out.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return 0, err
	}
	last := events[len(events)-1].Seq
	s.floor = last
	return len(events), s.store.SetCursor(CursorName, last)
}

// Recover makes a stream file whole after a stop and returns the seq of
// its last line (0 for an empty file): a line cut short by a crash is
// removed, since the stream writes it again.
func Recover(f *os.File) (uint64, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, err
	}
	// Lines are short: the last whole one is within the last 64 KiB.
	size := fi.Size()
	start := max(0, size-64<<10)
	tail := make([]byte, size-start)
	if _, err := f.ReadAt(tail, start); err != nil {
		return 0, err
	}
	end := bytes.LastIndexByte(tail, '\n') + 1 // 0 when no whole line
	if end < len(tail) {
		if err := f.Truncate(start + int64(end)); err != nil {
			return 0, fmt.Errorf("cut the partial last line: %w", err)
		}
		tail = tail[:end]
	}
	if len(tail) == 0 {
		return 0, nil
	}
	lines := bytes.Split(bytes.TrimSuffix(tail, []byte("\n")), []byte("\n"))
	var last struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(lines[len(lines)-1], &last); err != nil {
		return 0, fmt.Errorf("the last line is not an audit event: %w", err)
	}
	return last.Seq, nil
}
