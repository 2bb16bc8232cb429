package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestParseKey(t *testing.T) {
	k := testKey(7)
	for _, s := range []string{hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k) + "\n"} {
		got, err := ParseKey(s)
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	short := hex.EncodeToString(k[:16])
	if _, err := ParseKey(short); err == nil || strings.Contains(err.Error(), short) {
		t.Errorf("a 16-byte key: %v", err)
	}
}

// Sealed records are bound to their additional data, open under the
// current or the previous key, and name their key.
func TestKeyring(t *testing.T) {
	old, err := NewKeyring(testKey(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Seal([]byte("ghu_secret"), "link", "U1", "101")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed.Data, []byte("ghu_secret")) || sealed.KeyID != KeyID(testKey(1)) || len(sealed.Nonce) != 12 {
		t.Fatalf("sealed = %+v", sealed)
	}
	again, _ := old.Seal([]byte("ghu_secret"), "link", "U1", "101")
	if bytes.Equal(again.Nonce, sealed.Nonce) || bytes.Equal(again.Data, sealed.Data) {
		t.Error("two seals share a nonce")
	}
	if plain, current, err := old.Open(sealed, "link", "U1", "101"); err != nil || !current || string(plain) != "ghu_secret" {
		t.Fatalf("open = %q, %v, %v", plain, current, err)
	}
	if _, _, err := old.Open(sealed, "link", "U2", "101"); err == nil {
		t.Error("a record opened for another Slack user")
	}
	if _, _, err := old.Open(sealed, "link", "U1", "1", "01"); err == nil {
		t.Error("additional data split differently opened the record")
	}
	tampered := sealed
	tampered.Data = bytes.Clone(sealed.Data)
	tampered.Data[0] ^= 1
	if _, _, err := old.Open(tampered, "link", "U1", "101"); err == nil {
		t.Error("an altered record opened")
	}

	rotated, err := NewKeyring(testKey(2), testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if plain, current, err := rotated.Open(sealed, "link", "U1", "101"); err != nil || current || string(plain) != "ghu_secret" {
		t.Fatalf("open under the previous key = %q, current %v, %v", plain, current, err)
	}
	fresh, _ := rotated.Seal([]byte("x"))
	if fresh.KeyID != KeyID(testKey(2)) {
		t.Error("the rotated keyring seals under the previous key")
	}
	stranger, _ := NewKeyring(testKey(3), nil)
	if _, _, err := stranger.Open(sealed, "link", "U1", "101"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("open under an unknown key = %v, want ErrUnknownKey", err)
	}
	if _, err := NewKeyring(testKey(1), testKey(1)); err == nil {
		t.Error("the previous key may not be the current one")
	}
}
