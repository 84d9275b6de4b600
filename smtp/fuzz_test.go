package smtp

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fuzzServers are started once per process and configuration.
var fuzzServers sync.Map // map[bool]*fuzzServer

type fuzzServer struct {
	h    *recHandler
	addr string
}

func getFuzzServer(t *testing.T, cfg Config, proxy bool) *fuzzServer {
	if fs, ok := fuzzServers.Load(proxy); ok {
		return fs.(*fuzzServer)
	}
	cfg.CommandTimeout = 2 * time.Second
	cfg.DataTimeout = 2 * time.Second
	cfg.MaxConnsPerIP = 1000
	cfg.MaxMessageBytes = 64 << 10
	h := &recHandler{}
	s, err := NewServer(cfg, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(context.Background()) }() // lives as long as the fuzzing process
	fs := &fuzzServer{h: h, addr: s.Addrs()[0].String()}
	actual, _ := fuzzServers.LoadOrStore(proxy, fs)
	return actual.(*fuzzServer)
}

// fuzzServerInput sends in as the client's whole input from a trusted
// address and reads until the server closes. It fails if the server
// accepted a message containing a bare CR, bare LF or NUL, or if the
// connection is not closed in time (a hang).
func fuzzServerInput(t *testing.T, cfg Config, proxy bool, in []byte) {
	fs := getFuzzServer(t, cfg, proxy)
	c, err := net.DialTimeout("tcp", fs.addr, 2*time.Second)
	if err != nil {
		t.Skipf("dial: %v", err) // resource exhaustion on the fuzzing host, not a finding
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		_, _ = c.Write(in)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	if _, err := io.Copy(io.Discard, c); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("server did not close the connection within 10s")
		}
	}
	for _, m := range fs.h.allMsgs() {
		if m.err != nil {
			continue
		}
		if bytes.Contains(m.data, []byte{0}) || hasBareNewline(m.data) {
			t.Fatalf("accepted a message with a bare CR/LF or NUL: %q", m.data)
		}
	}
	fs.h.mu.Lock()
	fs.h.msgs = nil // keep memory bounded across iterations
	fs.h.connects, fs.h.mails, fs.h.rcpts = nil, nil, nil
	fs.h.mu.Unlock()
}

func hasBareNewline(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
		if c == '\r' && (i+1 >= len(b) || b[i+1] != '\n') {
			return true
		}
	}
	return false
}

// FuzzSession drives the front end and go-smtp with arbitrary client
// input from a trusted peer (XCLIENT allowed, so its parser is reached).
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO a\r\nXCLIENT ADDR=192.0.2.1 NAME=x.example HELO=h PROTO=ESMTP PORT=25\r\nEHLO b\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@corp.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
		"EHLO a\r\nXCLIENT ADDR=IPV6:2001:db8::1 NAME=[UNAVAILABLE]\r\nXCLIENT HELO=+5B+5D\r\n",
		"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@corp.example>\r\nBDAT 5\r\nab\ncdBDAT 3 LAST\r\nx\r\n",
		"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@corp.example>\r\nDATA\r\na\r\n.\rMAIL FROM:<x@y>\r\n.\r\n",
		"EHLO a\r\nSTARTTLS\r\nXCLIENT ADDR=1.2.3.4\r\nAUTH PLAIN\r\nRCPT TO:<postmaster>\r\n",
		"HELO a\r\nMAIL FROM:<\"a b\"@c> SMTPUTF8 BODY=8BITMIME SIZE=10\r\nRCPT TO:<@x:y@z>\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	cfg := testConfig()
	cfg.TrustedProxies = prefixes("127.0.0.0/8")
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzServerInput(t, cfg, false, in)
	})
}

// FuzzXCLIENT checks the XCLIENT argument parser alone.
func FuzzXCLIENT(f *testing.F) {
	for _, s := range []string{"ADDR=192.0.2.1 NAME=x.example", "ADDR=IPV6:::1 PORT=65535", "HELO=+41+42", "NAME=[TEMPUNAVAIL] PROTO=smtp", "LOGIN=x", "ADDR="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseXCLIENT(s)
		if err != nil {
			if xe, ok := err.(*xclientError); !ok || !bytes.HasPrefix([]byte(xe.text), []byte("501 5.5.4 ")) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if a.helo != nil && !printableASCII(*a.helo) && *a.helo != "" {
			t.Fatalf("HELO %q accepted", *a.helo)
		}
		if a.name != nil && *a.name != "" {
			if _, ok := domainASCII(*a.name); !ok {
				t.Fatalf("NAME %q accepted", *a.name)
			}
		}
		if a.addr != nil && a.addr.IsValid() && a.addr.Zone() != "" {
			t.Fatalf("ADDR with zone %v accepted", *a.addr)
		}
	})
}
