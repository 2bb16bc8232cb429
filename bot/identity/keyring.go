package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/patbot/patbot/store"
)

// KeySize is the length of a secret key: AES-256.
const KeySize = 32

// ParseKey reads a secret key written as hex or base64 (standard or URL
// alphabet, padded or not). Its errors never quote the key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("not %d bytes in hex (64 digits) or base64 (44 characters): make one with `openssl rand -hex 32`", KeySize)
}

// Keyring seals secrets at rest with AES-256-GCM under the current key,
// and opens what the current or the previous key sealed, so that a key can
// be rotated without losing a record.
type Keyring struct {
	current  keyEntry
	previous *keyEntry
}

type keyEntry struct {
	id   string
	aead cipher.AEAD
}

// ErrUnknownKey is returned for a record sealed under a key the keyring
// does not hold.
var ErrUnknownKey = errors.New("sealed under a key patbot does not have")

// NewKeyring makes a keyring of the current key and, when rotating, the
// previous one (nil otherwise).
func NewKeyring(current, previous []byte) (*Keyring, error) {
	cur, err := newKeyEntry(current)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	k := &Keyring{current: cur}
	if previous != nil {
		prev, err := newKeyEntry(previous)
		if err != nil {
			return nil, fmt.Errorf("previous secret key: %w", err)
		}
		if prev.id == cur.id {
			return nil, errors.New("the previous secret key is the current one")
		}
		k.previous = &prev
	}
	return k, nil
}

func newKeyEntry(key []byte) (keyEntry, error) {
	if len(key) != KeySize {
		return keyEntry{}, fmt.Errorf("%d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return keyEntry{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return keyEntry{}, err
	}
	return keyEntry{id: KeyID(key), aead: aead}, nil
}

// KeyID names a key without giving it away: the start of a hash of it.
func KeyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("patbot secret key id\x00"), key...))
	return hex.EncodeToString(sum[:6])
}

// CurrentID is the id of the key that seals.
func (k *Keyring) CurrentID() string { return k.current.id }

// Seal encrypts plain under the current key with a fresh random nonce.
// additional is bound to the result: opening needs the same values, so
// that a sealed record moved to another record does not open.
func (k *Keyring) Seal(plain []byte, additional ...string) (store.Sealed, error) {
	nonce := make([]byte, k.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return store.Sealed{}, err
	}
	return store.Sealed{KeyID: k.current.id, Nonce: nonce, Data: k.current.aead.Seal(nil, nonce, plain, aad(additional))}, nil
}

// Open decrypts s, and reports whether it was sealed under the current
// key (if not, seal it again). A key the keyring lacks gives ErrUnknownKey;
// a record that was altered, or opened with other additional data, an
// error that says so.
func (k *Keyring) Open(s store.Sealed, additional ...string) (plain []byte, current bool, err error) {
	e := k.current
	switch {
	case s.KeyID == k.current.id:
	case k.previous != nil && s.KeyID == k.previous.id:
		e = *k.previous
	default:
		return nil, false, fmt.Errorf("key %q: %w", s.KeyID, ErrUnknownKey)
	}
	if len(s.Nonce) != e.aead.NonceSize() {
		return nil, false, errors.New("sealed record: malformed nonce")
	}
	plain, err = e.aead.Open(nil, s.Nonce, s.Data, aad(additional))
	if err != nil {
		return nil, false, errors.New("sealed record does not open: altered, or moved from another record")
	}
	return plain, e.id == k.current.id, nil
}

// aad joins the additional data unambiguously.
func aad(parts []string) []byte {
	var b []byte
	for _, p := range parts {
		b = fmt.Appendf(b, "%d:%s;", len(p), p)
	}
	return b
}
