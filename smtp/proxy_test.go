package smtp

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

func proxyV2(t *testing.T, src, dst string) string {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func proxyConfig() Config {
	cfg := testConfig()
	cfg.Listen = []Listener{{Addr: "127.0.0.1:0", Proxy: true}, {Addr: "127.0.0.1:0"}}
	cfg.TrustedProxies = prefixes("127.0.0.1/32")
	cfg.ProxyHeaderTimeout = 300 * time.Millisecond
	return cfg
}

func TestProxyV1FromTrusted(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, proxyConfig(), h)
	c := dialFrom(t, addrs[0], "127.0.0.1")
	c.send("PROXY TCP4 203.0.113.7 192.0.2.1 51000 25\r\n")
	text := c.hello("client.example")
	if strings.Contains(text, "XCLIENT") {
		t.Errorf("XCLIENT offered to the proxied (untrusted) client:\n%s", text)
	}
	ci := h.lastConnect()
	if ci.RemoteIP != netip.MustParseAddr("203.0.113.7") || ci.RemotePort != 51000 || !ci.Proxied ||
		ci.LocalAddr != netip.MustParseAddrPort("192.0.2.1:25") {
		t.Errorf("Connect saw %+v", ci)
	}
	// Relay control applies to the real client.
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<x@elsewhere.example>", 550)
	if ip := h.lastMail().Conn.RemoteIP; ip != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("envelope client %s", ip)
	}
}

func TestProxyV2FromTrusted(t *testing.T) {
	cfg := proxyConfig()
	cfg.InternalNetworks = prefixes("2001:db8::/32")
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	c := dialFrom(t, addrs[0], "127.0.0.1")
	c.send(proxyV2(t, "[2001:db8::5]:40000", "[2001:db8::25]:25"))
	c.hello("client.example")
	ci := h.lastConnect()
	if ci.RemoteIP != netip.MustParseAddr("2001:db8::5") || !ci.Proxied || !ci.Internal {
		t.Errorf("Connect saw %+v", ci)
	}
	c.cmdExpect("MAIL FROM:<a@corp.example>", 250)
	c.cmdExpect("RCPT TO:<x@elsewhere.example>", 250) // internal: may relay
}

func TestProxyV2Local(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, proxyConfig(), h)
	c := dialFrom(t, addrs[0], "127.0.0.1")
	hdr := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL}
	b, err := hdr.Format()
	if err != nil {
		t.Fatal(err)
	}
	c.send(string(b))
	c.hello("health.example")
	if ci := h.lastConnect(); ci.RemoteIP != netip.MustParseAddr("127.0.0.1") || ci.Proxied {
		t.Errorf("LOCAL header: Connect saw %+v", ci)
	}
}

func TestProxyMissingOrBadFromTrustedDropped(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, proxyConfig(), h)
	for name, send := range map[string]string{
		"nothing": "",
		"garbage": "EHLO not-a-proxy-header\r\n",
		"bad v1":  "PROXY TCP4 999.0.0.1 192.0.2.1 1 25\r\n",
	} {
		c := dialFrom(t, addrs[0], "127.0.0.1")
		if send != "" {
			c.send(send)
		}
		if code, text := c.reply(); code != 0 {
			t.Errorf("%s: got reply %q, want the connection dropped", name, text)
		}
	}
	if n := len(h.connects); n != 0 {
		t.Errorf("Connect called %d times", n)
	}
}

func TestProxyHeaderFromUntrustedRefused(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, proxyConfig(), h)
	for name, hdr := range map[string]string{
		"v1": "PROXY TCP4 10.9.9.9 192.0.2.1 51000 25\r\n",
		"v2": proxyV2(t, "10.9.9.9:51000", "192.0.2.1:25"),
	} {
		c := dialFrom(t, addrs[0], "127.0.0.2")
		c.expect(220) // served directly, without waiting for a header
		c.send(hdr)
		text := c.expect(550)
		if !strings.Contains(text, "PROXY") {
			t.Errorf("%s: reply %q", name, text)
		}
		if !c.closed() {
			t.Errorf("%s: connection open after a refused PROXY header", name)
		}
	}
	for _, ci := range h.connects {
		if ci.RemoteIP != netip.MustParseAddr("127.0.0.2") || ci.Proxied {
			t.Errorf("identity taken from an untrusted header: %+v", ci)
		}
	}
}

func TestProxyHeaderOnPlainListenerIsBadInput(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, proxyConfig(), h)
	c := dialFrom(t, addrs[1], "127.0.0.1") // trusted, but no PROXY on this listener
	c.expect(220)
	code, _ := c.cmd("PROXY TCP4 10.9.9.9 192.0.2.1 51000 25")
	if code/100 != 5 {
		t.Errorf("PROXY line on a plain listener: %d, want 5xx", code)
	}
	c.cmdExpect("EHLO client.example", 250)
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	if ip := h.lastMail().Conn.RemoteIP; ip != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("identity changed to %s", ip)
	}
}

func TestProxyRequired(t *testing.T) {
	cfg := proxyConfig()
	cfg.Listen[0].ProxyRequired = true
	_, addrs := startServer(t, cfg, &recHandler{})
	c := dialFrom(t, addrs[0], "127.0.0.2")
	if code, text := c.reply(); code != 0 {
		t.Errorf("untrusted peer on a PROXY-only listener got %q", text)
	}
}

func TestPerIPLimitUsesProxiedAddress(t *testing.T) {
	cfg := proxyConfig()
	cfg.MaxConnsPerIP = 1
	_, addrs := startServer(t, cfg, &recHandler{})
	a := dialFrom(t, addrs[0], "127.0.0.1")
	a.send("PROXY TCP4 203.0.113.1 192.0.2.1 1000 25\r\n")
	a.expect(220)
	b := dialFrom(t, addrs[0], "127.0.0.1")
	b.send("PROXY TCP4 203.0.113.2 192.0.2.1 1000 25\r\n")
	b.expect(220)
	c := dialFrom(t, addrs[0], "127.0.0.1")
	c.send("PROXY TCP4 203.0.113.1 192.0.2.1 1001 25\r\n")
	c.expect(421)
}

func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 51000 25\r\nEHLO x\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xcb\x00\x71\x07\xc0\x00\x02\x01\xc7\x38\x00\x19"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzServerInput(t, proxyConfig(), true, in)
	})
}
