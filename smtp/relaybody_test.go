package smtp

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"strings"
	"testing"
)

// viaDotWriter is what go-smtp sent before writeBody: the body through
// crlfReader and net/textproto's dot writer.
func viaDotWriter(in []byte) []byte {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	dw := textproto.NewWriter(bw).DotWriter()
	if _, err := io.Copy(dw, &crlfReader{r: bytes.NewReader(in)}); err != nil {
		panic(err)
	}
	dw.Close()
	return buf.Bytes()
}

// viaWriteBody is writeBody as the relay uses it: the body straight to the
// connection, the held line end and the final dot through the dot writer,
// which writes to the same connection through its own buffer.
func viaWriteBody(t *testing.T, body io.Reader) []byte {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	dw := textproto.NewWriter(bw).DotWriter()
	if err := writeBody(dw, &buf, body); err != nil {
		t.Fatal(err)
	}
	if err := dw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteBody(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "\r\n.\r\n",
		"a\r\n":                   "a\r\n.\r\n",
		"a":                       "a\r\n.\r\n",
		".":                       "..\r\n.\r\n",
		".\r\n":                   "..\r\n.\r\n",
		"a\r\n.\r\nb\r\n":         "a\r\n..\r\nb\r\n.\r\n",
		"a\n.b\n":                 "a\r\n..b\r\n.\r\n",
		"a\r.b":                   "a\r\n..b\r\n.\r\n",
		"x\r\n\r\n":               "x\r\n\r\n.\r\n",
		"x\r":                     "x\r\n.\r\n",
		"a.\r\n..\r\n":            "a.\r\n...\r\n.\r\n",
		"Subject: s\r\n\r\nb\r\n": "Subject: s\r\n\r\nb\r\n.\r\n",
	} {
		if got := viaWriteBody(t, &oneByteReader{s: in}); string(got) != want {
			t.Errorf("writeBody(%q) one byte at a time = %q, want %q", in, got, want)
		}
		if got := viaWriteBody(t, strings.NewReader(in)); string(got) != want {
			t.Errorf("writeBody(%q) = %q, want %q", in, got, want)
		}
		if got := viaDotWriter([]byte(in)); string(got) != want {
			t.Errorf("the dot writer gives %q for %q, want %q", got, in, want)
		}
	}
}

// FuzzWriteBody: writeBody puts on the wire exactly what net/textproto's
// dot writer did, however the body is cut into reads.
func FuzzWriteBody(f *testing.F) {
	for _, s := range []string{"", "a\r\n", ".\r\n", "a\r\n.\r\n", "a\n.\n", "a\r.b\r", "x\r\n\r\n", strings.Repeat(".line\r\n", 5000)} {
		f.Add([]byte(s), uint64(1), uint16(0))
		f.Add([]byte(s), uint64(2), uint16(40000))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, maxChunk uint16) {
		got := viaWriteBody(t, newChunkReader(in, seed, int(maxChunk)+1))
		if want := viaDotWriter(in); !bytes.Equal(got, want) {
			t.Fatalf("writeBody(%q) = %q, want %q", in, got, want)
		}
	})
}

func BenchmarkWriteBody(b *testing.B) {
	body := []byte(strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n", 1300))
	bw := bufio.NewWriter(io.Discard)
	b.Run("writeBody", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			dw := textproto.NewWriter(bw).DotWriter()
			if err := writeBody(dw, io.Discard, bytes.NewReader(body)); err != nil {
				b.Fatal(err)
			}
			dw.Close()
		}
	})
	b.Run("dotWriter", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			dw := textproto.NewWriter(bw).DotWriter()
			if _, err := io.Copy(dw, &crlfReader{r: bytes.NewReader(body)}); err != nil {
				b.Fatal(err)
			}
			dw.Close()
		}
	})
}
