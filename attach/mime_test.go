package attach

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/mailguard/mailguard/reason"
)

func sjis(s string) string {
	b, err := japanese.ShiftJIS.NewEncoder().String(s)
	if err != nil {
		panic(err)
	}
	return b
}

func iso2022jp(s string) string {
	b, err := japanese.ISO2022JP.NewEncoder().String(s)
	if err != nil {
		panic(err)
	}
	return b
}

func pct(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

func TestFilenameDecoding(t *testing.T) {
	const want = "請求書.zip"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name   string
		header string
		want   string
	}{
		{"rfc2231 utf-8", "Content-Type: application/zip\r\nContent-Disposition: attachment; filename*=UTF-8''" + pct(want) + "\r\n", want},
		{"rfc2231 continuations", "Content-Type: application/zip\r\nContent-Disposition: attachment;\r\n filename*0*=UTF-8''" + pct("請求") + ";\r\n filename*1*=" + pct("書") + ";\r\n filename*2=\".zip\"\r\n", want},
		{"rfc2231 iso-2022-jp", "Content-Type: application/zip\r\nContent-Disposition: attachment; filename*=ISO-2022-JP'ja'" + pct(iso2022jp("請求書")) + ".zip\r\n", want},
		{"rfc2231 shift_jis", "Content-Type: application/zip\r\nContent-Disposition: attachment; filename*=shift_jis''" + pct(sjis(want)) + "\r\n", want},
		{"rfc2047 iso-2022-jp", "Content-Type: application/zip; name=\"=?ISO-2022-JP?B?" + b64(iso2022jp("請求書")) + "?=.zip\"\r\nContent-Disposition: attachment\r\n", want},
		{"rfc2047 shift_jis", "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=\"=?Shift_JIS?B?" + b64(sjis(want)) + "?=\"\r\n", want},
		{"raw shift_jis", "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=\"" + sjis(want) + "\"\r\n", want},
		{"raw utf-8", "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=\"" + want + "\"\r\n", want},
		{"name only", "Content-Type: application/octet-stream; name=\"" + want + "\"\r\n", want},
		{"rfc2047 q", "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.zip?=\"\r\n", "résumé.zip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := mkMessage("x", part{header: c.header + "Content-Transfer-Encoding: base64\r\n", body: b64("data")})
			res := walk(t, raw, Options{})
			if len(res.Files) != 1 || res.Files[0].Name != c.want {
				var names []string
				for _, f := range res.Files {
					names = append(names, f.Name)
				}
				t.Errorf("names %q, want %q", names, c.want)
			}
		})
	}
}

func TestSubjectDecoding(t *testing.T) {
	subj := "=?ISO-2022-JP?B?" + base64.StdEncoding.EncodeToString([]byte(iso2022jp("見積書送付の件"))) + "?="
	raw := []byte("From: =?UTF-8?B?5bGx55Sw?= <a@example.jp>\r\nSubject: " + subj + "\r\n\r\nbody\r\n")
	res := walk(t, raw, Options{})
	if res.Header.Subject != "見積書送付の件" {
		t.Errorf("subject %q", res.Header.Subject)
	}
	if len(res.Header.From) != 1 || res.Header.From[0].Name != "山田" {
		t.Errorf("from %+v", res.Header.From)
	}
	// Raw 8-bit Shift_JIS subject.
	raw = []byte("From: a@example.jp\r\nSubject: " + sjis("請求書のご送付") + "\r\n\r\nbody\r\n")
	if got := walk(t, raw, Options{}).Header.Subject; got != "請求書のご送付" {
		t.Errorf("raw sjis subject %q", got)
	}
}

func TestNestedMessage(t *testing.T) {
	inner := bytes.ReplaceAll(mkMessage("inner", textPart("inner body"), attachment("payload.js", "application/javascript", []byte("WScript.Shell"))),
		[]byte("BOUNDARY"), []byte("INNER"))
	raw := mkMessage("outer", textPart("fwd"), part{
		header: "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n",
		body:   string(inner),
	})
	res := walk(t, raw, Options{})
	eml := file(t, res, "fwd.eml")
	if eml.Type != typeEML {
		t.Errorf("eml type %q", eml.Type)
	}
	js := file(t, res, "fwd.eml/payload.js")
	if js.Depth != 1 {
		t.Errorf("depth %d", js.Depth)
	}
	wantTag(t, js.Findings, reason.ExecAttachment)
	if len(res.Bodies) != 2 {
		t.Errorf("bodies %d, want 2 (outer and inner)", len(res.Bodies))
	}
	// A base64-encoded message/rfc822 (not allowed by RFC 2046, seen in attacks).
	raw = mkMessage("outer", part{
		header: "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n",
		body:   wrap76(base64.StdEncoding.EncodeToString(inner)),
	})
	res = walk(t, raw, Options{})
	file(t, res, "part1.eml/payload.js")
}

func TestUUEncode(t *testing.T) {
	uu := "begin 644 dropper.exe\r\n" + uuencode(minimalPE()) + "`\r\nend\r\n"
	raw := mkMessage("x", textPart("see below\r\n\r\n"+uu))
	res := walk(t, raw, Options{})
	f := file(t, res, "dropper.exe")
	if !bytes.Equal(content(t, f), minimalPE()) {
		t.Error("uudecoded content differs")
	}
	wantTag(t, f.Findings, reason.ExecAttachment)
	// Content-Transfer-Encoding: x-uuencode.
	raw = mkMessage("x", part{header: "Content-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: x-uuencode\r\n",
		body: "begin 644 a.bin\r\n" + uuencode([]byte("hello uu")) + "`\r\nend"})
	if got := string(content(t, file(t, walk(t, raw, Options{}), "a.bin"))); got != "hello uu" {
		t.Errorf("x-uuencode content %q", got)
	}
}

func uuencode(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		n := min(45, len(b))
		line := b[:n]
		b = b[n:]
		s.WriteByte(byte(' ' + n))
		for i := 0; i < len(line); i += 3 {
			var c [3]byte
			copy(c[:], line[i:])
			for _, v := range []byte{c[0] >> 2, (c[0]<<4 | c[1]>>4) & 0x3f, (c[1]<<2 | c[2]>>6) & 0x3f, c[2] & 0x3f} {
				if v == 0 {
					s.WriteByte('`')
				} else {
					s.WriteByte(' ' + v)
				}
			}
		}
		s.WriteString("\r\n")
	}
	return s.String()
}

func TestMalformedMIME(t *testing.T) {
	t.Run("bad base64 keeps content", func(t *testing.T) {
		body := base64.StdEncoding.EncodeToString(minimalPE())
		body = body[:40] + "!!**~~" + body[40:] + "Q"
		raw := mkMessage("x", part{header: "Content-Type: application/octet-stream; name=x.exe\r\nContent-Transfer-Encoding: base64\r\n", body: body})
		res := walk(t, raw, Options{})
		f := file(t, res, "x.exe")
		wantTag(t, f.Findings, reason.MalformedMIME)
		if f.Size < 500 {
			t.Errorf("size %d: content lost", f.Size)
		}
	})
	t.Run("unclosed boundary", func(t *testing.T) {
		raw := mkMessage("x", attachment("a.exe", "application/octet-stream", minimalPE()))
		raw = bytes.TrimSuffix(raw, []byte("--BOUNDARY--\r\n"))
		res := walk(t, raw, Options{})
		wantTag(t, res.Findings, reason.MalformedMIME)
		file(t, res, "a.exe")
	})
	t.Run("multipart without boundary", func(t *testing.T) {
		raw := []byte("From: a@b\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n")
		res := walk(t, raw, Options{})
		wantTag(t, res.Findings, reason.MalformedMIME)
		if len(res.Files) != 1 {
			t.Errorf("files %d: the part must not vanish", len(res.Files))
		}
	})
	t.Run("garbage header in part", func(t *testing.T) {
		raw := mkMessage("x", part{header: "Content-Type: application/octet-stream; name=a.exe\r\nthis is not a header\r\nContent-Transfer-Encoding: base64\r\n",
			body: base64.StdEncoding.EncodeToString(minimalPE())})
		res := walk(t, raw, Options{})
		wantTag(t, res.Findings, reason.MalformedMIME)
		f := file(t, res, "a.exe")
		wantTag(t, f.Findings, reason.ExecAttachment)
	})
	t.Run("header runs into boundary", func(t *testing.T) {
		raw := []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n--b\r\nContent-Type: application/octet-stream; name=z.bin\r\n\r\nzz\r\n--b--\r\n")
		res := walk(t, raw, Options{})
		wantTag(t, res.Findings, reason.MalformedMIME)
		file(t, res, "z.bin")
	})
}

// nested builds a message with n levels of multipart nesting.
func nested(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@b\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i-1, i)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: application/octet-stream; name=deep.bin\r\n\r\ndeep\r\n", n-1)
	for i := n - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.Bytes()
}

func TestMIMEBounds(t *testing.T) {
	check := func(name string, raw []byte, wantComplete bool, budget time.Duration) *Result {
		t.Helper()
		start := time.Now()
		res := walk(t, raw, Options{})
		if d := time.Since(start); d > budget {
			t.Errorf("%s: took %v (budget %v)", name, d, budget)
		}
		if res.Complete != wantComplete {
			t.Errorf("%s: complete=%v, want %v (%+v)", name, res.Complete, wantComplete, res.Findings)
		}
		return res
	}
	res := check("40 levels", nested(40), true, 2*time.Second)
	if len(res.Files) != 1 {
		t.Errorf("40 levels: %d files", len(res.Files))
	}
	res = check("200 levels", nested(200), false, 2*time.Second)
	wantTag(t, res.Findings, reason.MalformedMIME)
	if len(res.Files) == 0 {
		t.Error("200 levels: the opaque remainder must stay visible as a file")
	}
	res = check("10000 levels", nested(10000), false, 5*time.Second)
	wantTag(t, res.Findings, reason.MalformedMIME)

	var many []part
	for i := 0; i < 5000; i++ {
		many = append(many, part{header: fmt.Sprintf("Content-Type: application/octet-stream; name=f%d.bin\r\n", i), body: "x"})
	}
	res = check("5000 parts", mkMessage("x", many...), false, 5*time.Second)
	wantTag(t, res.Findings, reason.MalformedMIME)
	if n := len(res.Files); n >= 1000 || n < 900 {
		t.Errorf("5000 parts: %d files kept", n)
	}
}

func TestWalkCancelled(t *testing.T) {
	raw := mkMessage("x", attachment("a.txt", "text/plain", []byte("a")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Walk(ctx, bytes.NewReader(raw), int64(len(raw)), Options{TempDir: t.TempDir()})
	if err == nil {
		t.Error("no error for a cancelled context")
	}
	if res == nil {
		t.Fatal("nil result")
	}
	res.Close()
}

// TestMalformedSeverity: defects every reader resolves alike are minor;
// those where mail clients may see something other than mailguard, or
// where mailguard could not read everything, are not.
func TestMalformedSeverity(t *testing.T) {
	pe := base64.StdEncoding.EncodeToString(minimalPE())
	unclosed := bytes.TrimSuffix(mkMessage("x", attachment("a.pdf", "application/pdf", []byte("%PDF-1.4"))), []byte("--BOUNDARY--\r\n"))
	for _, c := range []struct {
		name      string
		raw       []byte
		ambiguous bool
	}{
		{"unclosed final boundary", unclosed, false},
		{"junk in base64", mkMessage("x", part{header: "Content-Type: application/octet-stream; name=x.bin\r\nContent-Transfer-Encoding: base64\r\n", body: pe[:40] + "!!**" + pe[40:]}), false},
		{"bad qp escape", mkMessage("x", part{header: "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n", body: "100=% sure=ZZ"}), false},
		{"mbox From_ line", append([]byte("From sender@example.org Mon Jun  2 10:00:00 2025\r\n"), mkMessage("x", part{header: "Content-Type: text/plain\r\n", body: "hi"})...), false},
		{"8-bit spelling", mkMessage("x", part{header: "Content-Type: text/plain; charset=iso-2022-jp\r\nContent-Transfer-Encoding: 8-bit\r\n", body: "hi"}), false},
		{"unreadable Content-Type on a single part", mkMessage("x", part{header: "Content-Type: text/plain>\r\n", body: "hi"}), false},
		{"multipart without boundary", []byte("From: a@b\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n"), true},
		{"unreadable multipart Content-Type", []byte("From: a@b\r\nContent-Type: multipart/mixed>; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n"), true},
		{"two differing Content-Types", []byte("From: a@b\r\nContent-Type: text/plain\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: application/octet-stream; name=a.exe\r\nContent-Transfer-Encoding: base64\r\n\r\n" + pe + "\r\n--x--\r\n"), true},
		{"two differing encodings", mkMessage("x", part{header: "Content-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n", body: pe}), true},
		{"padding inside base64", mkMessage("x", part{header: "Content-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n", body: "aGVsbG8=\r\n" + pe}), true},
		{"unknown transfer encoding", mkMessage("x", part{header: "Content-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base65\r\n", body: "x"}), true},
		{"boundary in another letter case", []byte("From: a@b\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=a.exe\r\nContent-Transfer-Encoding: base64\r\n\r\n" + pe + "\r\n--b--\r\n"), true},
		{"other delimiter-like lines", []byte("From: a@b\r\nContent-Type: multipart/mixed; boundary=X_\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\nhi\r\n--X--\r\n"), true},
		{"multipart body with no delimiter at all", []byte("From: a@b\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\nHi,\r\n[Non-text part of message omitted]\r\n"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := walk(t, c.raw, Options{})
			var malformed, ambiguous bool
			for _, f := range res.AllFindings() {
				if f.Tag == reason.MalformedMIME {
					malformed = true
					ambiguous = ambiguous || !f.Minor
				}
			}
			if !malformed {
				t.Fatalf("no malformed_mime finding: %+v", res.AllFindings())
			}
			if ambiguous != c.ambiguous {
				t.Errorf("ambiguous = %v, want %v: %+v", ambiguous, c.ambiguous, res.AllFindings())
			}
		})
	}
	// The same Content-Type twice is no ambiguity, and no defect.
	res := walk(t, []byte("From: a@b\r\nContent-Type: text/plain\r\ncontent-type:  TEXT/plain\r\n\r\nhi\r\n"), Options{})
	if hasTag(res.AllFindings(), reason.MalformedMIME) {
		t.Errorf("repeated identical Content-Type reported: %+v", res.AllFindings())
	}
	// Pasted base64 pieces are read as pieces: the executable's bytes are
	// there unshifted.
	res = walk(t, mkMessage("x", part{header: "Content-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n", body: "aGVsbG8=\r\n" + pe}), Options{})
	if got := file(t, res, "a.bin").data; !bytes.Equal(got, append([]byte("hello"), minimalPE()...)) {
		t.Errorf("pasted pieces decoded to %d bytes, not hello + the executable", len(got))
	}
}

// A part declared as text that is a program is inspected as the program;
// UTF-16 text (NULs and all) stays a body.
func TestBinaryBody(t *testing.T) {
	pe := base64.StdEncoding.EncodeToString(minimalPE())
	res := walk(t, mkMessage("x", part{header: "Content-Type: text/plain\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n", body: pe}), Options{})
	wantTag(t, file(t, res, "part1.bin").Findings, reason.ExecAttachment)
	u16 := base64.StdEncoding.EncodeToString([]byte("h\x00e\x00l\x00l\x00o\x00"))
	res = walk(t, mkMessage("x", part{header: "Content-Type: text/plain; charset=utf-16le\r\nContent-Transfer-Encoding: base64\r\n", body: u16}), Options{})
	if len(res.Files) != 0 || len(res.Bodies) != 1 {
		t.Errorf("UTF-16 body: %d files, %d bodies", len(res.Files), len(res.Bodies))
	}
}
