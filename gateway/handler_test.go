package gateway

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadHead: readHead returns what io.ReadAll of the first max bytes
// would, whatever size the client declared and however the stream is cut.
func TestReadHead(t *testing.T) {
	const max = 128<<10 + 1
	for _, n := range []int{0, 1, 511, 16 << 10, 16<<10 + 1, 100 << 10, max - 1, max, max + 1, 3 * max} {
		data := bytes.Repeat([]byte("0123456789abcdef\r\n"), n/18+1)[:n]
		want := data[:min(n, max)]
		for _, declared := range []int64{0, 1, int64(n) - 100, int64(n), int64(n) + 5000, 1 << 40, -1} {
			for name, r := range map[string]io.Reader{
				"whole":    bytes.NewReader(data),
				"one byte": iotest.OneByteReader(bytes.NewReader(data)),
				"half":     iotest.HalfReader(bytes.NewReader(data)),
			} {
				got, err := readHead(r, declared, max)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("n=%d declared=%d %s: %d bytes, %v; want %d", n, declared, name, len(got), err, len(want))
				}
			}
		}
	}
	boom := errors.New("bare LF")
	if _, err := readHead(io.MultiReader(bytes.NewReader([]byte("abc")), iotest.ErrReader(boom)), 0, max); !errors.Is(err, boom) {
		t.Fatalf("stream error: %v", err)
	}
}

func BenchmarkReadHead(b *testing.B) {
	data := bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n"), 1300)
	b.Run("readHead", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			readHead(bytes.NewReader(data), 0, captureMax+1)
		}
	})
	b.Run("ReadAll", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			io.ReadAll(io.LimitReader(bytes.NewReader(data), captureMax+1))
		}
	})
}
