package github

import (
	"net/url"
	"os"
	"testing"
)

// FuzzParseRequestEvent feeds webhook payloads, seeded with the real
// fixtures: parsing never panics, and what parses has the required fields.
func FuzzParseRequestEvent(f *testing.F) {
	for _, name := range []string{"personal_access_token_request.created.json", "personal_access_token_request.approved.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"action":"created","personal_access_token_request":{"id":1},"organization":{"login":"a"}}`))
	f.Add([]byte(`{"action":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := ParseRequestEvent(payload)
		if err != nil {
			return
		}
		if ev.Action == "" || ev.Request.ID == 0 || ev.Org == "" {
			t.Fatalf("parsed without required fields: %+v", ev)
		}
	})
}

// FuzzPayload feeds form-encoded and JSON bodies.
func FuzzPayload(f *testing.F) {
	f.Add("application/json", []byte(`{"a":1}`))
	f.Add("application/x-www-form-urlencoded", []byte("payload="+url.QueryEscape(`{"action":"created"}`)))
	f.Add("application/x-www-form-urlencoded; charset=utf-8", []byte("payload=%zz"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		out, err := Payload(contentType, body)
		if err == nil && out == nil {
			t.Fatal("no payload and no error")
		}
	})
}

// FuzzVerifySignature checks that only the exact signature verifies.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte("secret"), []byte("body"), "sha256=00")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		if VerifySignature(secret, body, header) == nil && header != Sign(secret, body) {
			// Upper-case hex is the same signature.
			if len(header) != len(Sign(secret, body)) {
				t.Fatalf("%q verified for a body it does not sign", header)
			}
		}
	})
}
