package slacktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// socket is the fake's Socket Mode side: apps.connections.open hands out
// its URL, and tests send envelopes through it as Slack would.
type socket struct {
	appToken string
	mu       sync.Mutex
	conn     *websocket.Conn
	acks     map[string]chan json.RawMessage
	opened   int
	seq      int
	writeMu  sync.Mutex
}

// EnableSocketMode makes the fake accept Socket Mode connections opened
// with the app-level token appToken.
func (s *Server) EnableSocketMode(appToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.socket = &socket{appToken: appToken, acks: map[string]chan json.RawMessage{}}
}

// openConnection answers apps.connections.open.
func (s *Server) openConnection(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sock := s.socket
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if sock == nil || strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") != sock.appToken {
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	sock.mu.Lock()
	sock.opened++
	sock.mu.Unlock()
	url := "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/socket"
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "url": url})
}

// upgrader accepts the Origin slack-go sends (https://api.slack.com), as
// Slack's own endpoint does.
var upgrader = websocket.Upgrader{CheckOrigin: func(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || o == "https://api.slack.com"
}}

// serveSocket holds one Socket Mode connection: it says hello, then
// collects acknowledgements.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sock := s.socket
	s.mu.Unlock()
	if sock == nil {
		http.Error(w, "socket mode off", http.StatusNotFound)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	// Registered before the hello, after which the client counts itself
	// connected.
	sock.mu.Lock()
	sock.conn = conn
	sock.mu.Unlock()
	defer func() {
		sock.mu.Lock()
		if sock.conn == conn {
			sock.conn = nil
		}
		sock.mu.Unlock()
	}()
	sock.writeMu.Lock()
	err = conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1,
		"debug_info": map[string]any{"host": "slacktest", "approximate_connection_time": 3600}, "connection_info": map[string]any{"app_id": "A0PATBOT"}})
	sock.writeMu.Unlock()
	if err != nil {
		return
	}
	for {
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := conn.ReadJSON(&ack); err != nil {
			return
		}
		sock.mu.Lock()
		ch := sock.acks[ack.EnvelopeID]
		delete(sock.acks, ack.EnvelopeID)
		sock.mu.Unlock()
		if ch != nil {
			ch <- ack.Payload
		}
	}
}

// SocketConnected reports whether a client holds a Socket Mode connection.
func (s *Server) SocketConnected() bool {
	s.mu.Lock()
	sock := s.socket
	s.mu.Unlock()
	if sock == nil {
		return false
	}
	sock.mu.Lock()
	defer sock.mu.Unlock()
	return sock.conn != nil
}

// SendEnvelope sends an envelope of type typ ("interactive" or
// "slash_commands") with payload over the Socket Mode connection, as Slack
// does, and returns the payload of the client's acknowledgement (null when
// it acknowledged without one). It fails if no acknowledgement comes within
// 3 seconds, Slack's deadline.
func (s *Server) SendEnvelope(typ string, payload any) (json.RawMessage, error) {
	s.mu.Lock()
	sock := s.socket
	s.mu.Unlock()
	if sock == nil {
		return nil, errors.New("slacktest: socket mode is off")
	}
	sock.mu.Lock()
	conn := sock.conn
	sock.seq++
	id := fmt.Sprintf("envelope-%d", sock.seq)
	ch := make(chan json.RawMessage, 1)
	sock.acks[id] = ch
	sock.mu.Unlock()
	if conn == nil {
		return nil, errors.New("slacktest: no socket mode connection")
	}
	sock.writeMu.Lock()
	err := conn.WriteJSON(map[string]any{"envelope_id": id, "type": typ, "payload": payload, "accepts_response_payload": true, "retry_attempt": 0, "retry_reason": ""})
	sock.writeMu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-ch:
		return ack, nil
	case <-time.After(3 * time.Second):
		return nil, fmt.Errorf("slacktest: envelope %s not acknowledged within 3 s", id)
	}
}

// InteractionPayload returns the JSON object inside a form built by
// BlockActionPayload or ViewSubmissionPayload: what Socket Mode carries.
func InteractionPayload(form map[string][]string) json.RawMessage {
	return json.RawMessage(form["payload"][0])
}

// SlashCommandPayload is the payload of a slash_commands envelope.
func SlashCommandPayload(user, command, text, channel, responseURL string) map[string]any {
	form := SlashCommandForm(user, command, text, channel, responseURL)
	p := map[string]any{}
	for k, v := range form {
		p[k] = v[0]
	}
	return p
}
