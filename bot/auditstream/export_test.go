package auditstream

// Flush writes every event after the stream's place, as Run does between
// waits.
func Flush(s *Stream) {
	for {
		if n, err := s.flush(); err != nil || n < batch {
			return
		}
	}
}
