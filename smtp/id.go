package smtp

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// idAlphabet is Crockford's base32 in lower case. Its characters are in
// ASCII order, so IDs sort by time as plain strings.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// IDLen is the length of an ID from NewID.
const IDLen = 20

// NewID returns a new transaction ID: 20 URL-safe characters, the first 10
// encoding the Unix time in milliseconds (so IDs sort by creation time) and
// the last 10 carrying 50 random bits (so IDs made on several nodes in the
// same millisecond do not collide in practice).
func NewID() string {
	return newIDAt(time.Now())
}

func newIDAt(t time.Time) string {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		// crypto/rand does not fail on supported platforms (Go ≥ 1.24
		// panics inside Read instead); keep the ID well-formed regardless.
		binary.BigEndian.PutUint64(rnd[:], uint64(time.Now().UnixNano()))
	}
	ms := uint64(t.UnixMilli()) & (1<<50 - 1)
	r := binary.BigEndian.Uint64(rnd[:]) & (1<<50 - 1)
	var b [IDLen]byte
	for i := 9; i >= 0; i-- {
		b[i] = idAlphabet[ms&31]
		ms >>= 5
	}
	for i := 19; i >= 10; i-- {
		b[i] = idAlphabet[r&31]
		r >>= 5
	}
	return string(b[:])
}
