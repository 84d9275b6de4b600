package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
)

// Options that change what the sandbox analyses, and so take part in the
// cache key. A ZIP analysed without its password says nothing about what the
// password reveals (cape-api.md §8.2: cache by (sha256, password)).
const (
	OptionPassword = "password" // archive or Office password
	OptionFile     = "file"     // member of an archive to run
)

// Key returns the cache and dedupe key for content sha256 analysed with opts:
// sha256 itself when opts carry no password or archive member, otherwise
// sha256 + "+" + 16 hex digits of a hash over those options (the password is
// never part of the key in clear).
func Key(sha256Hex string, opts map[string]string) string {
	pw, file := opts[OptionPassword], opts[OptionFile]
	if pw == "" && file == "" {
		return sha256Hex
	}
	h := sha256.New()
	h.Write([]byte("file="))
	h.Write([]byte(file))
	h.Write([]byte{0})
	h.Write([]byte("password="))
	h.Write([]byte(pw))
	return sha256Hex + "+" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Key returns the cache and dedupe key of f (see the Key function).
func (f File) Key() string { return Key(f.SHA256, f.Options) }

// ValidSHA256 reports whether s is a lowercase hex SHA-256.
func ValidSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
