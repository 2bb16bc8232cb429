// Package logtest collects what patbot logs, for tests to read while the
// code they drive goes on writing.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is a log destination safe for concurrent writers and readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
