package attach

import (
	"bytes"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// refBase64 is the reading base64Reader must give, written the slow way:
// white space dropped, junk dropped, each piece ended by padding decoded
// on its own, a dangling character dropped.
func refBase64(in []byte) (out []byte, junk, tail, midPad bool) {
	var piece []byte
	padded := false
	end := func() {
		if len(piece)%4 == 1 {
			tail = true
			piece = piece[:len(piece)-1]
		}
		d, err := base64.RawStdEncoding.DecodeString(string(piece))
		if err != nil {
			panic(err)
		}
		out = append(out, d...)
		piece = piece[:0]
	}
	for _, c := range in {
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		case c == '=':
			if len(piece)%4 != 0 {
				end()
				padded = true
			}
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/':
			if padded {
				midPad, padded = true, false
			}
			piece = append(piece, c)
		case c == '-' || c == '_':
			if padded {
				midPad, padded = true, false
			}
			piece = append(piece, map[byte]byte{'-': '+', '_': '/'}[c])
		default:
			junk = true
		}
	}
	end()
	return out, junk, tail, midPad
}

func readB64(t testing.TB, r io.Reader) ([]byte, *base64Reader) {
	b := newBase64Reader(r)
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return got, b
}

func TestBase64ReaderWrapped(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 57, 100, 48 << 10, 200 << 10} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		enc := base64.StdEncoding.EncodeToString(data)
		var wrapped bytes.Buffer
		for len(enc) > 76 {
			wrapped.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		wrapped.WriteString(enc + "\r\n")
		for name, r := range map[string]io.Reader{
			"whole":   bytes.NewReader(wrapped.Bytes()),
			"onebyte": iotest.OneByteReader(bytes.NewReader(wrapped.Bytes())),
			"half":    iotest.HalfReader(bytes.NewReader(wrapped.Bytes())),
		} {
			got, b := readB64(t, r)
			if !bytes.Equal(got, data) {
				t.Fatalf("%d bytes, %s: decoded %d bytes, not the input", n, name, len(got))
			}
			if b.junk > 0 || b.tail || b.midPad {
				t.Fatalf("%d bytes, %s: defects reported on clean base64: junk=%d tail=%v midPad=%v", n, name, b.junk, b.tail, b.midPad)
			}
		}
	}
}

// Two encodings pasted together: "hello" then an executable's start. A
// reader that skips the '=' would shift every later byte and miss "MZ".
func TestBase64ReaderPaddingInside(t *testing.T) {
	in := base64.StdEncoding.EncodeToString([]byte("hello")) + "\r\n" +
		base64.StdEncoding.EncodeToString([]byte("MZ\x90\x00payload"))
	for _, r := range []io.Reader{bytes.NewReader([]byte(in)), iotest.OneByteReader(bytes.NewReader([]byte(in)))} {
		got, b := readB64(t, r)
		if string(got) != "helloMZ\x90\x00payload" {
			t.Fatalf("decoded %q", got)
		}
		if !b.midPad {
			t.Fatal("padding inside the data not reported")
		}
	}
	// Extra padding after whole groups changes nothing and is no defect.
	_, b := readB64(t, bytes.NewReader([]byte("aGVsbG8h==\r\nd29ybGQh")))
	if b.midPad {
		t.Fatal("padding after a whole group reported as a piece end")
	}
}

func TestBase64ReaderDefects(t *testing.T) {
	for _, c := range []struct {
		in              string
		want            string
		junk, tail, mid bool
	}{
		{"aGVs*bG8=", "hello", true, false, false},
		{"aGVsbG8", "hello", false, false, false},
		{"aGVsbG8hA", "hello!", false, true, false},
		{"aGVsbA==aGVsbA==", "hellhell", false, false, true},
		{"aGVsbG8=\n=\n", "hello", false, false, false},
		{"=aGVs", "hel", false, false, false},
		{"aGVsbG8_-A==", "hello?\xf8", false, false, false},
	} {
		got, b := readB64(t, bytes.NewReader([]byte(c.in)))
		if string(got) != c.want || (b.junk > 0) != c.junk || b.tail != c.tail || b.midPad != c.mid {
			t.Errorf("%q: got %q junk=%d tail=%v mid=%v; want %q junk=%v tail=%v mid=%v",
				c.in, got, b.junk, b.tail, b.midPad, c.want, c.junk, c.tail, c.mid)
		}
	}
}

// FuzzBase64Reader holds the bulk decoder to the slow reading, whole and
// one byte at a time.
func FuzzBase64Reader(f *testing.F) {
	for _, s := range []string{"aGVsbG8=", "aGVsbA==TVo=", "a*b=c\r\nd", "=", "QUJD\nREVG==\n=R0g", "_-_-"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want, junk, tail, mid := refBase64(in)
		for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in))} {
			got, b := readB64(t, r)
			if !bytes.Equal(got, want) || (b.junk > 0) != junk || b.tail != tail || b.midPad != mid {
				t.Fatalf("%q: got %q junk=%d tail=%v mid=%v; want %q junk=%v tail=%v mid=%v",
					in, got, b.junk, b.tail, b.midPad, want, junk, tail, mid)
			}
		}
	})
}
