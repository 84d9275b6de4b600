package smtp

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// swaks runs the real swaks client against addr and returns its output and
// exit code.
func swaks(t *testing.T, addr string, args ...string) (string, int) {
	t.Helper()
	need(t, "swaks")
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]string{"--server", host, "--port", port, "--timeout", "20", "--helo", "swaks.client.example"}, args...)
	out, err := exec.CommandContext(ctx, "swaks", all...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("swaks: %v", err)
	}
	return string(out), code
}

func TestSwaksSTARTTLSPipelining8Bit(t *testing.T) {
	cfg := testConfig()
	cfg.TLS, _ = tlsConfig(t)
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)
	body := "Grüße aus Tōkyō: 8-bit body\nsecond line\n.leading dot\n"
	out, code := swaks(t, addrs[0], "--tls", "--pipeline",
		"--from", "alice@sender.example", "--to", "bob@corp.example,carol@corp.example",
		"--h-Subject", "swaks test", "--add-header", "Content-Type: text/plain; charset=utf-8",
		"--body", body)
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "PIPELINING") || !strings.Contains(out, "STARTTLS") {
		t.Errorf("swaks transcript lacks PIPELINING/STARTTLS:\n%s", out)
	}
	msgs := h.accepted()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1:\n%s", len(msgs), out)
	}
	m := msgs[0]
	if m.env.Conn.TLS == nil || m.env.Conn.HELO != "swaks.client.example" || len(m.env.Rcpts) != 2 {
		t.Errorf("envelope %+v", m.env)
	}
	data := string(m.data)
	if !strings.Contains(data, "Grüße aus Tōkyō: 8-bit body\r\nsecond line\r\n.leading dot\r\n") || hasBareNewline(m.data) {
		t.Errorf("body not intact:\n%q", data)
	}
	if !strings.Contains(out, "250 2.0.0 ok: queued as "+m.env.ID) {
		t.Errorf("swaks did not see the queued reply with the ID:\n%s", out)
	}
}

func TestSwaksSMTPUTF8(t *testing.T) {
	h := &recHandler{}
	_, addrs := startServer(t, testConfig(), h)
	// swaks 20201014 has no option for MAIL parameters; it writes
	// "MAIL FROM:<%s>", so the parameters ride in the address and the
	// closing bracket lands on AUTH=<> (RFC 4954: unknown submitter).
	out, code := swaks(t, addrs[0],
		"--from", "ålice@sender.example> SMTPUTF8 BODY=8BITMIME AUTH=<",
		"--to", "böb@corp.example", "--h-Subject", "=?utf-8?q?utf8?=", "--body", "本文\n")
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s", code, out)
	}
	msgs := h.accepted()
	if len(msgs) != 1 {
		t.Fatalf("%d messages:\n%s", len(msgs), out)
	}
	e := msgs[0].env
	if e.MailFrom != "ålice@sender.example" || !e.SMTPUTF8 || !e.EightBit || len(e.Rcpts) != 1 || e.Rcpts[0] != "böb@corp.example" {
		t.Errorf("envelope %+v", e)
	}
	// Without SMTPUTF8 the same recipient is refused.
	out, code = swaks(t, addrs[0], "--from", "alice@sender.example", "--to", "böb@corp.example", "--body", "x\n")
	if code == 0 || !strings.Contains(out, "553 5.6.7") {
		t.Errorf("non-ASCII recipient without SMTPUTF8 accepted (exit %d):\n%s", code, out)
	}
}

func TestSwaksXCLIENTAndPROXY(t *testing.T) {
	cfg := proxyConfig()
	cfg.InternalNetworks = prefixes("10.0.0.0/8")
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)

	// XCLIENT on the plain listener from the trusted proxy address.
	out, code := swaks(t, addrs[1], "--local-interface", "127.0.0.1",
		"--xclient-addr", "10.1.2.3", "--xclient-name", "client.corp.example", "--xclient-helo", "client.corp.example",
		"--from", "alice@corp.example", "--to", "partner@elsewhere.example", "--body", "outbound\n")
	if code != 0 {
		t.Fatalf("swaks XCLIENT exit %d:\n%s", code, out)
	}
	msgs := h.accepted()
	if len(msgs) != 1 || msgs[0].env.Conn.RemoteIP != netip.MustParseAddr("10.1.2.3") || msgs[0].env.Direction != Outbound ||
		msgs[0].env.Conn.HELO != "client.corp.example" || msgs[0].env.Conn.Hostname != "client.corp.example" {
		t.Fatalf("XCLIENT identity not used: %+v", msgs)
	}

	// XCLIENT is not offered to an untrusted address (swaks then refuses
	// to send it; the raw refusal is TestXCLIENTFromUntrustedRefused).
	out, code = swaks(t, addrs[1], "--local-interface", "127.0.0.2", "--xclient-addr", "10.1.2.3",
		"--from", "alice@corp.example", "--to", "partner@elsewhere.example", "--body", "x\n")
	if code == 0 || !strings.Contains(out, "did not advertise XCLIENT") || len(h.accepted()) != 1 {
		t.Errorf("untrusted XCLIENT (exit %d):\n%s", code, out)
	}

	// PROXY v2 from the trusted address on the PROXY listener.
	out, code = swaks(t, addrs[0], "--local-interface", "127.0.0.1",
		"--proxy-version", "2", "--proxy-family", "AF_INET", "--proxy-source", "203.0.113.77", "--proxy-source-port", "40000",
		"--proxy-dest", "192.0.2.25", "--proxy-dest-port", "25",
		"--from", "alice@sender.example", "--to", "bob@corp.example", "--body", "via haproxy\n")
	if code != 0 {
		t.Fatalf("swaks PROXY exit %d:\n%s", code, out)
	}
	msgs = h.accepted()
	if last := msgs[len(msgs)-1].env.Conn; last.RemoteIP != netip.MustParseAddr("203.0.113.77") || !last.Proxied || last.RemotePort != 40000 {
		t.Errorf("PROXY identity not used: %+v", last)
	}
}
