package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

func newTestRelay(t *testing.T, addr string, opts RelayOptions) *Relay {
	t.Helper()
	if opts.Hostname == "" {
		opts.Hostname = "mx.test.example"
	}
	if opts.CommandTimeout == 0 {
		opts.CommandTimeout = 10 * time.Second
	}
	r, err := NewRelay(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func deliver(t *testing.T, tr Transport, m Outgoing, data []byte) []RcptResult {
	t.Helper()
	m.Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := tr.Deliver(ctx, m, bytes.NewReader(data))
	if len(res) != len(m.Rcpts) {
		t.Fatalf("%d results for %d recipients: %+v", len(res), len(m.Rcpts), res)
	}
	return res
}

func TestRelayToSmtpSink(t *testing.T) {
	dir := t.TempDir()
	addr := smtpSink(t, dir)
	r := newTestRelay(t, addr, RelayOptions{})
	data := testMessage("to sink")
	res := deliver(t, r, Outgoing{ID: "m1", MailFrom: "alice@sender.example", Rcpts: []string{"bob@corp.example", "carol@corp.example"}}, data)
	for _, x := range res {
		if !x.Delivered() || x.Remote != "127.0.0.1" {
			t.Errorf("result %+v", x)
		}
	}
	dumps := sinkDumps(t, dir)
	if len(dumps) != 1 {
		t.Fatalf("smtp-sink got %d transactions", len(dumps))
	}
	d := dumps[0]
	for _, want := range []string{"X-Helo-Args: mx.test.example", "X-Mail-Args: <alice@sender.example> BODY=8BITMIME",
		"X-Rcpt-Args: <bob@corp.example>", "X-Rcpt-Args: <carol@corp.example>", "Subject: to sink", "\n.leading dot\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("smtp-sink dump lacks %q:\n%s", want, d)
		}
	}
}

func TestRelayToSmtpSinkRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []string
		code int
		perm bool
	}{
		{"rcpt 4xx", []string{"-r", "RCPT"}, 450, false},
		{"rcpt 5xx", []string{"-f", "RCPT"}, 500, true},
		{"mail 5xx", []string{"-f", "MAIL"}, 500, true},
		{"data 4xx", []string{"-r", "."}, 450, false},
		{"421 at MAIL", []string{"-Q", "MAIL"}, 421, false},
		{"ehlo 5xx", []string{"-f", "EHLO,HELO"}, 451, false}, // a session refusal is never a bounce
		{"drop at DATA", []string{"-q", "DATA"}, 451, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := smtpSink(t, t.TempDir(), tc.opts...)
			r := newTestRelay(t, addr, RelayOptions{})
			res := deliver(t, r, Outgoing{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example", "c@corp.example"}}, testMessage("x"))
			for _, x := range res {
				if x.Code != tc.code || x.Perm != tc.perm {
					t.Errorf("result %+v, want code %d perm %v", x, tc.code, tc.perm)
				}
			}
		})
	}
}

func TestRelayDownstreamDown(t *testing.T) {
	r := newTestRelay(t, "127.0.0.1:"+itoa(freePort(t)), RelayOptions{})
	res := deliver(t, r, Outgoing{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"}}, testMessage("x"))
	if res[0].Code != 451 || res[0].Enhanced != [3]int{4, 4, 1} || res[0].Perm || res[0].Detail == "" || strings.Contains(res[0].Text, "127.0.0.1") {
		t.Errorf("result %+v", res[0])
	}
}

func TestRelayPartialAndTooManyRecipients(t *testing.T) {
	ds := startDownstream(t, nil, func(s *gosmtp.Server) { s.MaxRecipients = 2 })
	ds.rcptErr = func(rcpt string) error {
		switch rcpt {
		case "gone@corp.example":
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case "full@corp.example":
			return &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		return nil
	}
	r := newTestRelay(t, ds.addr, RelayOptions{})
	rcpts := []string{"a@corp.example", "gone@corp.example", "b@corp.example", "full@corp.example", "c@corp.example", "d@corp.example"}
	res := deliver(t, r, Outgoing{ID: "m", MailFrom: "x@sender.example", Rcpts: rcpts}, testMessage("partial"))
	want := map[string]int{"a@corp.example": 250, "gone@corp.example": 550, "b@corp.example": 250, "full@corp.example": 452, "c@corp.example": 250, "d@corp.example": 250}
	for _, x := range res {
		if x.Code != want[x.Rcpt] {
			t.Errorf("%s: %+v, want %d", x.Rcpt, x, want[x.Rcpt])
		}
	}
	if res[1].Perm != true || res[1].Enhanced != [3]int{5, 1, 1} || res[3].Perm || res[3].Enhanced != [3]int{4, 2, 2} {
		t.Errorf("classification: %+v / %+v", res[1], res[3])
	}
	msgs := ds.messages()
	var got []string
	for _, m := range msgs {
		got = append(got, m.rcpts...)
	}
	if len(msgs) < 2 || strings.Join(got, ",") != "a@corp.example,b@corp.example,c@corp.example,d@corp.example" {
		t.Errorf("downstream transactions %d with %v", len(msgs), got)
	}
}

func TestRelayOpportunisticTLS(t *testing.T) {
	cert, _, certPEM, _ := testCert(t, "localhost")
	ds := startDownstream(t, &tls.Config{Certificates: []tls.Certificate{cert}}, nil)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newTestRelay(t, ds.addr, RelayOptions{CAFile: caFile, TLSConfig: &tls.Config{ServerName: "localhost"}})
	res := deliver(t, r, Outgoing{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"}}, testMessage("tls"))
	if !res[0].Delivered() {
		t.Fatalf("result %+v", res[0])
	}
	msgs := ds.messages()
	if len(msgs) != 1 || !msgs[0].tls {
		t.Fatalf("not delivered over TLS: %+v", msgs)
	}
	// Both EHLOs (before and after STARTTLS) carry our name, not "localhost".
	if h := ds.helloNames(); len(h) != 2 || h[0] != "mx.test.example" || h[1] != "mx.test.example" {
		t.Errorf("EHLO names %q", h)
	}
}

func TestRelayTLSPolicies(t *testing.T) {
	cert, _, _, _ := testCert(t, "localhost")
	withTLS := startDownstream(t, &tls.Config{Certificates: []tls.Certificate{cert}}, nil)
	plain := startDownstream(t, nil, nil)
	msg := Outgoing{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"}}
	check := func(name string, ds *downstream, opts RelayOptions, wantCode int, wantEnh [3]int, wantTLS bool) {
		t.Helper()
		before := len(ds.messages())
		res := deliver(t, newTestRelay(t, ds.addr, opts), msg, testMessage(name))
		if res[0].Code != wantCode || wantEnh != [3]int{} && res[0].Enhanced != wantEnh {
			t.Errorf("%s: %+v, want %d %v", name, res[0], wantCode, wantEnh)
			return
		}
		if msgs := ds.messages(); wantCode == 250 && (len(msgs) != before+1 || msgs[len(msgs)-1].tls != wantTLS) {
			t.Errorf("%s: delivered with tls=%v, want %v", name, msgs[len(msgs)-1].tls, wantTLS)
		}
	}
	check("required, offered", withTLS, RelayOptions{TLS: TLSRequired, InsecureSkipVerify: true}, 250, [3]int{}, true)
	check("required, not offered", plain, RelayOptions{TLS: TLSRequired}, 451, [3]int{4, 7, 10}, false)
	check("opportunistic, not offered", plain, RelayOptions{}, 250, [3]int{}, false)
	check("opportunistic, bad certificate", withTLS, RelayOptions{}, 451, [3]int{4, 7, 5}, false)
	check("opportunistic, bad certificate, fallback", withTLS, RelayOptions{PlainOnTLSFailure: true}, 250, [3]int{}, false)
	check("off", withTLS, RelayOptions{TLS: TLSOff}, 250, [3]int{}, false)
}

func TestRelaySMTPUTF8(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	res := deliver(t, newTestRelay(t, ds.addr, RelayOptions{}), Outgoing{ID: "m", MailFrom: "ålice@sender.example", Rcpts: []string{"böb@corp.example"}}, testMessage("utf8"))
	if !res[0].Delivered() {
		t.Fatalf("%+v", res[0])
	}
	if m := ds.messages()[0]; !m.utf8 || m.from != "ålice@sender.example" {
		t.Errorf("downstream got %+v", m)
	}
	noUTF8 := startDownstream(t, nil, func(s *gosmtp.Server) { s.EnableSMTPUTF8 = false })
	for _, m := range []Outgoing{
		{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"böb@corp.example"}},
		{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"}, SMTPUTF8: true},
	} {
		res = deliver(t, newTestRelay(t, noUTF8.addr, RelayOptions{}), m, testMessage("utf8"))
		if res[0].Code != 553 || !res[0].Perm || res[0].Enhanced != [3]int{5, 6, 7} {
			t.Errorf("SMTPUTF8 message to a server without it: %+v", res[0])
		}
	}
	if n := len(noUTF8.messages()); n != 0 {
		t.Errorf("%d messages sent without SMTPUTF8", n)
	}
}

func TestRelayNormalizesLineEnds(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	data := []byte("Subject: x\r\n\r\nbare\rcr\nbare lf\r\n.dot\r\nend\r")
	res := deliver(t, newTestRelay(t, ds.addr, RelayOptions{}), Outgoing{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"}}, data)
	if !res[0].Delivered() {
		t.Fatal(res[0])
	}
	if got, want := string(ds.messages()[0].data), "Subject: x\r\n\r\nbare\r\ncr\r\nbare lf\r\n.dot\r\nend\r\n"; got != want {
		t.Errorf("downstream got %q, want %q", got, want)
	}
}

func TestRelayCancel(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	ds.rcptErr = func(string) error { time.Sleep(2 * time.Second); return nil }
	r := newTestRelay(t, ds.addr, RelayOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	data := testMessage("x")
	res := r.Deliver(ctx, Outgoing{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"},
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}, bytes.NewReader(data))
	if time.Since(start) > 1800*time.Millisecond || res[0].Delivered() || res[0].Perm {
		t.Errorf("cancelled delivery: %+v after %v", res[0], time.Since(start))
	}
}

func TestCRLFReader(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\nb":    "a\r\nb",
		"a\nb\n":    "a\r\nb\r\n",
		"a\rb":      "a\r\nb",
		"a\r\r\nb":  "a\r\n\r\nb",
		"a\r":       "a\r\n",
		"\n\r\n\r":  "\r\n\r\n\r\n",
		"plain":     "plain",
		"":          "",
		"x\r\n\r\n": "x\r\n\r\n",
	} {
		// One byte at a time, to cross every boundary.
		got, err := io.ReadAll(&crlfReader{r: &oneByteReader{s: in}})
		if err != nil || string(got) != want {
			t.Errorf("crlfReader(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

type oneByteReader struct{ s string }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if o.s == "" {
		return 0, io.EOF
	}
	p[0] = o.s[0]
	o.s = o.s[1:]
	return 1, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, strings.Repeat("x", min(len(p), f.n)))
	f.n -= n
	return n, nil
}

func TestRelayBodyReadErrorSendsNothing(t *testing.T) {
	ds := startDownstream(t, nil, nil)
	r := newTestRelay(t, ds.addr, RelayOptions{})
	start := time.Now()
	res := r.Deliver(context.Background(), Outgoing{ID: "m", MailFrom: "a@sender.example", Rcpts: []string{"b@corp.example"}}, &failingReader{n: 5000})
	if res[0].Delivered() || res[0].Perm || time.Since(start) > 3*time.Second {
		t.Errorf("result %+v after %v", res[0], time.Since(start))
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(ds.messages()); n != 0 {
		t.Errorf("downstream accepted %d truncated messages", n)
	}
}

// crlfRef is the byte-at-a-time conversion crlfReader's convert replaced:
// the oracle for FuzzCRLFReader.
func crlfRef(in []byte) []byte {
	var out []byte
	cr := false
	for _, b := range in {
		switch {
		case b == '\n' && !cr:
			out = append(out, '\r', '\n')
		case cr && b != '\n':
			out = append(out, '\n', b)
		default:
			out = append(out, b)
		}
		cr = b == '\r'
	}
	if cr {
		out = append(out, '\n')
	}
	return out
}

// FuzzCRLFReader: crlfReader agrees with the byte-at-a-time conversion
// however the body is cut into reads.
func FuzzCRLFReader(f *testing.F) {
	for _, s := range []string{"a\r\nb", "a\nb\n", "a\rb", "a\r\r\nb", "a\r", "\n\r\n\r", "\r\n.\r\n", strings.Repeat("line\r\n", 2000) + "bare\rcr\nlf"} {
		f.Add([]byte(s), uint64(1), uint16(1))
		f.Add([]byte(s), uint64(2), uint16(5000))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, maxChunk uint16) {
		got, err := io.ReadAll(&crlfReader{r: newChunkReader(in, seed, int(maxChunk)+1)})
		if err != nil {
			t.Fatal(err)
		}
		if want := crlfRef(in); !bytes.Equal(got, want) {
			t.Fatalf("crlfReader(%q) = %q, want %q", in, got, want)
		}
	})
}
