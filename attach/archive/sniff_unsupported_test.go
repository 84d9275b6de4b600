package archive

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestUnreadableFormatsAreReported: archives no reader here handles are
// still recognised, and Walk says so, so that their content is never taken
// for an ordinary file.
func TestUnreadableFormatsAreReported(t *testing.T) {
	zoo := append([]byte("ZOO 2.10 Archive.\x1a\x00\x00"), 0xdc, 0xa7, 0xc4, 0xfd)
	cases := map[Format][]byte{
		ACE:     append([]byte{0x31, 0x2e, 0x01, 0x01, 0x00, 0x00, 0x90}, []byte("**ACE**\x14\x14\x02\x00")...),
		ALZ:     []byte("ALZ\x01\x0a\x00\x00\x00"),
		EGG:     []byte("EGGA\x00\x01\x00\x00"),
		ZOO:     zoo,
		StuffIt: []byte("SIT!\x00\x01\x00\x00rLau"),
	}
	for want, head := range cases {
		data := append(head, bytes.Repeat([]byte{0}, 64)...)
		ra := bytes.NewReader(data)
		if got := Sniff(ra, int64(len(data))); got != want {
			t.Errorf("Sniff(%s) = %q", want, got)
			continue
		}
		res, err := Walk(context.Background(), want, ra, int64(len(data)), Options{}, func(Entry, io.Reader) error { return nil })
		if err != nil || !strings.Contains(res.Unsupported, string(want)) {
			t.Errorf("Walk(%s) = %+v, %v", want, res, err)
		}
	}
}
