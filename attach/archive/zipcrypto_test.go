package archive

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/sha1"
	"testing"
)

// TestPBKDF2SHA1Block: each block alone equals that slice of the whole key.
func TestPBKDF2SHA1Block(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, iter := range []int{1, 2, 1000} {
		dk, err := pbkdf2.Key(sha1.New, "infected", salt, iter, 4*sha1.Size)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			got := pbkdf2SHA1Block([]byte("infected"), salt, iter, uint32(i+1))
			if !bytes.Equal(got[:], dk[i*sha1.Size:(i+1)*sha1.Size]) {
				t.Errorf("iter %d block %d = %x, want %x", iter, i+1, got, dk[i*sha1.Size:(i+1)*sha1.Size])
			}
		}
	}
}
