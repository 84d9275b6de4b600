package smtp

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func xclientConfig() Config {
	cfg := testConfig()
	cfg.TrustedProxies = prefixes("127.0.0.1/32")
	cfg.InternalNetworks = prefixes("10.0.0.0/8")
	return cfg
}

func TestXCLIENTFromTrusted(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, xclientConfig(), h)
	c := dialFrom(t, addrs[0], "127.0.0.1")
	text := c.hello("proxy.example")
	if !strings.Contains(text, "250-XCLIENT ADDR NAME PORT PROTO HELO") {
		t.Errorf("XCLIENT not advertised to a trusted peer:\n%s", text)
	}
	greet := c.cmdExpect("XCLIENT ADDR=10.1.2.3 PORT=4000 NAME=Mail.Sender.Example HELO=helo.sender.example PROTO=ESMTP", 220)
	if greet != "220 mx.test.example ESMTP Service Ready" {
		t.Errorf("XCLIENT reply %q, want the greeting", greet)
	}
	// The session restarts: EHLO first.
	c.cmdExpect("MAIL FROM:<a@corp.example>", 503)
	c.cmdExpect("EHLO proxy-again.example", 250)
	c.cmdExpect("MAIL FROM:<a@corp.example>", 250)
	c.cmdExpect("RCPT TO:<x@elsewhere.example>", 250) // 10.1.2.3 is internal
	env := h.lastMail()
	want := ConnInfo{
		ID: env.Conn.ID, RemoteIP: netip.MustParseAddr("10.1.2.3"), RemotePort: 4000, LocalAddr: env.Conn.LocalAddr,
		Hostname: "mail.sender.example", HELO: "helo.sender.example", Proxied: true, Internal: true,
	}
	if env.Conn != want {
		t.Errorf("envelope conn\n got %+v\nwant %+v", env.Conn, want)
	}
	if ci := h.lastConnect(); ci.RemoteIP != want.RemoteIP || len(h.connects) != 2 {
		t.Errorf("Connect not called again with the new identity: %+v (%d calls)", ci, len(h.connects))
	}
	c.cmdExpect("RSET", 250)

	// A second XCLIENT, IPv6 and unknown values. Without HELO the HELO
	// identity is reset, and the next EHLO names it.
	c.cmdExpect("XCLIENT ADDR=IPV6:2001:db8::7 NAME=[UNAVAILABLE]", 220)
	c.cmdExpect("EHLO again.example", 250)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<x@elsewhere.example>", 550) // no longer internal
	env = h.lastMail()
	if env.Conn.RemoteIP != netip.MustParseAddr("2001:db8::7") || env.Conn.Hostname != "" || env.Conn.HELO != "again.example" || env.Conn.Internal {
		t.Errorf("after second XCLIENT: %+v", env.Conn)
	}
	c.cmdExpect("RSET", 250)
	c.cmdExpect("XCLIENT ADDR=[TEMPUNAVAIL] HELO=[UNAVAILABLE]", 220)
	c.cmdExpect("HELO x.example", 250)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	if env := h.lastMail(); env.Conn.RemoteIP.IsValid() || env.Conn.HELO != "" {
		t.Errorf("unavailable values: %+v", env.Conn)
	}
}

func TestXCLIENTHeloFromEHLOWhenNotGiven(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, xclientConfig(), h)
	c := dialFrom(t, addrs[0], "127.0.0.1")
	c.hello("proxy.example")
	c.cmdExpect("XCLIENT ADDR=198.51.100.9", 220)
	c.cmdExpect("EHLO real-client.example", 250)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	if env := h.lastMail(); env.Conn.HELO != "real-client.example" || env.Conn.RemoteIP != netip.MustParseAddr("198.51.100.9") {
		t.Errorf("conn %+v", env.Conn)
	}
}

func TestXCLIENTErrors(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, xclientConfig(), h)
	c := dialFrom(t, addrs[0], "127.0.0.1")
	c.hello("proxy.example")
	for _, tc := range []struct {
		cmd  string
		want string
	}{
		{"XCLIENT", "501 5.5.4 Syntax"},
		{"XCLIENT ADDR", "501 5.5.4 Syntax"},
		{"XCLIENT LOGIN=bob", "501 5.5.4 Bad XCLIENT attribute name: LOGIN"},
		{"XCLIENT ADDR=300.1.1.1", "501 5.5.4 Bad XCLIENT ADDR"},
		{"XCLIENT ADDR=IPV6:1.2.3.4", "501 5.5.4 Bad XCLIENT ADDR"},
		{"XCLIENT ADDR=fe80::1%eth0", "501 5.5.4 Bad XCLIENT ADDR"},
		{"XCLIENT PORT=70000", "501 5.5.4 Bad XCLIENT PORT"},
		{"XCLIENT NAME=bad_name!", "501 5.5.4 Bad XCLIENT NAME"},
		{"XCLIENT PROTO=HTTP", "501 5.5.4 Bad XCLIENT PROTO"},
		{"XCLIENT HELO=a+2", "501 5.5.4 Bad XCLIENT attribute value"},
		{"XCLIENT HELO=a+0D+0Ab", "501 5.5.4 Bad XCLIENT HELO"},
	} {
		_, text := c.cmd(tc.cmd)
		if !strings.HasPrefix(text, tc.want) {
			t.Errorf("%s: %q, want %q", tc.cmd, text, tc.want)
		}
	}
	// Not during a transaction.
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("XCLIENT ADDR=10.0.0.1", 503)
	c.cmdExpect("RCPT TO:<x@elsewhere.example>", 550) // identity unchanged
}

func TestXCLIENTFromUntrustedRefused(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, xclientConfig(), h)
	c := dialFrom(t, addrs[0], "127.0.0.2")
	text := c.hello("client.example")
	if strings.Contains(text, "XCLIENT") {
		t.Errorf("XCLIENT advertised to an untrusted peer")
	}
	text = c.cmdExpect("XCLIENT ADDR=10.1.2.3 HELO=trusted.example", 550)
	if !strings.HasPrefix(text, "550 5.7.0 ") {
		t.Errorf("reply %q", text)
	}
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<x@elsewhere.example>", 550)
	if env := h.lastMail(); env.Conn.RemoteIP != netip.MustParseAddr("127.0.0.2") || env.Conn.Proxied || env.Conn.HELO != "client.example" {
		t.Errorf("identity changed: %+v", env.Conn)
	}
}

func TestXCLIENTPerIPLimit(t *testing.T) {
	cfg := xclientConfig()
	cfg.MaxConnsPerIP = 1
	_, addrs := startServer(t, cfg, &recHandler{})
	a := dialFrom(t, addrs[0], "127.0.0.1")
	a.hello("proxy.example")
	a.cmdExpect("XCLIENT ADDR=198.51.100.1", 220)
	// The proxy's own slot is free again: a second connection works and may
	// not become the same client.
	b := dialFrom(t, addrs[0], "127.0.0.1")
	b.hello("proxy.example")
	b.cmdExpect("XCLIENT ADDR=198.51.100.1", 421)
}

func tlsConfig(t *testing.T) (*tls.Config, *x509.CertPool) {
	cert, pool, _, _ := testCert(t, "mx.test.example")
	return &tls.Config{Certificates: []tls.Certificate{cert}}, pool
}

// startTLS upgrades a raw client after "220 Ready".
func (c *client) startTLS(pool *x509.CertPool) *tls.ConnectionState {
	c.t.Helper()
	tc := tls.Client(c.c, &tls.Config{ServerName: "mx.test.example", RootCAs: pool})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.c = tc
	c.br = bufio.NewReader(tc)
	st := tc.ConnectionState()
	return &st
}

func TestSTARTTLS(t *testing.T) {
	cfg := xclientConfig()
	var pool *x509.CertPool
	cfg.TLS, pool = tlsConfig(t)
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dialFrom(t, addrs[0], "127.0.0.1")
	c.hello("client.example")
	c.cmdExpect("STARTTLS now", 501)
	c.cmdExpect("STARTTLS", 220)
	c.startTLS(pool)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 503) // EHLO again first
	text := c.cmdExpect("EHLO client.example", 250)
	if strings.Contains(text, "STARTTLS") {
		t.Errorf("STARTTLS offered again over TLS")
	}
	if !strings.Contains(text, "XCLIENT") {
		t.Errorf("XCLIENT not offered over TLS to a trusted peer")
	}
	c.cmdExpect("STARTTLS", 554)
	// XCLIENT works over TLS too (the front end sees cleartext).
	c.cmdExpect("XCLIENT ADDR=198.51.100.3", 220)
	c.cmdExpect("EHLO client.example", 250)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<b@corp.example>", 250)
	c.cmdExpect("DATA", 354)
	c.send("over tls\r\n.\r\n")
	c.expect(250)
	msgs := h.accepted()
	if len(msgs) != 1 || msgs[0].env.Conn.TLS == nil || msgs[0].env.Conn.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("TLS state not in the envelope: %+v", msgs)
	}
	if msgs[0].env.Conn.RemoteIP != netip.MustParseAddr("198.51.100.3") {
		t.Errorf("XCLIENT over TLS ignored")
	}
}

func TestSTARTTLSInjectionDiscarded(t *testing.T) {
	cfg := testConfig()
	cert, pool, _, _ := testCert(t, "mx.test.example")
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dial(t, addrs[0])
	c.hello("client.example")
	// CVE-2011-0411: commands sent with STARTTLS, before the handshake.
	c.send("STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
	c.expect(220)
	c.startTLS(pool)
	text := c.cmdExpect("EHLO client.example", 250)
	if !strings.HasPrefix(text, "250-") {
		t.Errorf("first reply after TLS is not ours: %q", text)
	}
	c.cmdExpect("NOOP", 250)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.mails) != 0 {
		t.Errorf("injected MAIL FROM executed: %+v", h.mails)
	}
}

func TestSTARTTLSNotConfiguredOrInTransaction(t *testing.T) {
	_, addrs := startServer(t, testConfig(), &recHandler{})
	c := dial(t, addrs[0])
	text := c.hello("client.example")
	if strings.Contains(text, "STARTTLS") {
		t.Errorf("STARTTLS advertised without TLS")
	}
	c.cmdExpect("STARTTLS", 502)

	cfg := testConfig()
	cfg.TLS, _ = tlsConfig(t)
	_, addrs = startServer(t, cfg, &recHandler{})
	c = dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("STARTTLS", 503)
	c.cmdExpect("RSET", 250)
	c.cmdExpect("STARTTLS", 220)
	c.send("this is not a TLS client hello\r\n")
	if !c.closed() {
		t.Error("connection open after a failed handshake")
	}
}

func TestImplicitTLSAndReload(t *testing.T) {
	dir := t.TempDir()
	_, pool1, cert1, key1 := testCert(t, "mx.test.example")
	cf, kf := writeCertFiles(t, dir, cert1, key1)
	cfg := testConfig()
	cfg.CertFile, cfg.KeyFile = cf, kf
	cfg.Listen = []Listener{{Addr: "127.0.0.1:0", ImplicitTLS: true}}
	h := &recHandler{}
	s, addrs := startServer(t, cfg, h)

	handshake := func(pool *x509.CertPool) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addrs[0], &tls.Config{ServerName: "mx.test.example", RootCAs: pool})
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "220 ") {
			t.Errorf("greeting over implicit TLS: %q", line)
		}
		return err
	}
	if err := handshake(pool1); err != nil {
		t.Fatalf("implicit TLS: %v", err)
	}
	if ci := h.lastConnect(); ci.TLS == nil {
		t.Error("Connect did not see the TLS state")
	}
	_, pool2, cert2, key2 := testCert(t, "mx.test.example")
	if err := os.WriteFile(cf, cert2, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, key2, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if err := handshake(pool2); err != nil {
		t.Errorf("after reload, new certificate: %v", err)
	}
	if err := handshake(pool1); err == nil {
		t.Error("after reload, the old certificate is still served")
	}
	if err := os.WriteFile(kf, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadTLS(); err == nil {
		t.Error("ReloadTLS accepted a broken key")
	}
	if err := handshake(pool2); err != nil {
		t.Errorf("a failed reload dropped the working certificate: %v", err)
	}
}
