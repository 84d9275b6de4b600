package smtp

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// The shapes of libraries.md §2: an end-of-data look-alike inside DATA,
// followed by a smuggled transaction and the real end of data.
var smugglingShapes = []struct{ name, seq string }{
	{"LF.LF", "\n.\n"},
	{"LF.CRLF", "\n.\r\n"},
	{"CRLF.LF", "\r\n.\n"},
	{"CR.CRLF", "\r.\r\n"},
	{"CRLF.CR", "\r\n.\r"},
	{"CR.CR", "\r.\r"},
	{"LF.CR", "\n.\r"},
	{"CRLF-NUL.CRLF", "\r\n\x00.\r\n"},
}

const smuggled = "MAIL FROM:<admin@victim.example>\r\nRCPT TO:<ceo@corp.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nSMUGGLED\r\n.\r\n"

func TestSmugglingRefused(t *testing.T) {
	for _, shape := range smugglingShapes {
		t.Run(shape.name, func(t *testing.T) {
			h := &recHandler{}
			_, addrs := startServer(t, testConfig(), h)
			c := dial(t, addrs[0])
			c.hello("client.example")
			c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
			c.cmdExpect("RCPT TO:<b@corp.example>", 250)
			c.cmdExpect("DATA", 354)
			c.send("Subject: legit\r\n\r\nlegit body" + shape.seq + smuggled)
			text := c.expect(550)
			if !strings.HasPrefix(text, "550 5.5.2 bare LF/CR") && !strings.HasPrefix(text, "550 5.6.0 NUL") {
				t.Errorf("reply %q", text)
			}
			// Exactly one reply: the session is in sync and nothing else was
			// executed.
			c.cmdExpect("NOOP", 250)
			if n := len(h.accepted()); n != 0 {
				t.Errorf("%d messages accepted", n)
			}
			if from := h.lastMail().MailFrom; from != "a@sender.example" {
				t.Errorf("a smuggled MAIL FROM reached the handler: %q", from)
			}
		})
	}
}

func TestSmugglingRefusedInBDAT(t *testing.T) {
	for _, shape := range smugglingShapes {
		t.Run(shape.name, func(t *testing.T) {
			h := &recHandler{}
			_, addrs := startServer(t, testConfig(), h)
			c := dial(t, addrs[0])
			c.hello("client.example")
			c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
			c.cmdExpect("RCPT TO:<b@corp.example>", 250)
			chunk := "legit body" + shape.seq + smuggled
			c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
			c.expect(550)
			c.cmdExpect("NOOP", 250)
			if n := len(h.accepted()); n != 0 {
				t.Errorf("%d messages accepted", n)
			}
		})
	}
}

func TestCleanDataAfterRefusedData(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, testConfig(), h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("bad\nline\r\n.\r\n")
	c.expect(550)
	// The next transaction (BDAT, then DATA) is judged on its own.
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.send("BDAT 6 LAST\r\nfine\r\n")
	c.expect(250)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("fine\r\n.\r\n")
	c.expect(250)
	if n := len(h.accepted()); n != 2 {
		t.Errorf("%d messages accepted, want 2", n)
	}
}

func TestCheckReaderChunkBoundaries(t *testing.T) {
	// A CR at the end of one read and the LF at the start of the next is a
	// proper line ending; a CR at the very end is not.
	for _, tc := range []struct {
		parts []string
		ok    bool
	}{
		{[]string{"a\r", "\nb\r\n"}, true},
		{[]string{"a\r", "b\r\n"}, false},
		{[]string{"a\r\n", "\n"}, false},
		{[]string{"a\r"}, false},
		{[]string{""}, true},
	} {
		cr := &checkReader{r: &partsReader{parts: tc.parts}, max: 1 << 20}
		_, err := readAllSmall(cr)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.parts, err, tc.ok)
		}
	}
}

type partsReader struct{ parts []string }

func (p *partsReader) Read(b []byte) (int, error) {
	if len(p.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.parts[0])
	p.parts[0] = p.parts[0][n:]
	if p.parts[0] == "" {
		p.parts = p.parts[1:]
	}
	return n, nil
}

func readAllSmall(r *checkReader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 3)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
