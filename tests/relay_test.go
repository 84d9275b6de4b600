package tests

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const plainMessage = `From: Alice Partner <alice@partner.example>
To: Bob <bob@corp.example>
Subject: =?ISO-2022-JP?B?GyRCOCtAUT1xGyhC?=
Date: Mon, 23 Nov 2026 10:00:00 +0900
Message-ID: <plain-1@partner.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hello Bob,
a long line follows to prove that body lines longer than go-smtp's default are accepted:
` + "LONGLINE" + `
   trailing spaces kept   
.leading dot kept
Bye
`

func longLine() string { return strings.Repeat("0123456789", 600) } // 6000 bytes

// deliveredTail returns the part of a delivered message from mailguard's
// Received field on, with line endings as the downstream stored them.
func deliveredTail(t *testing.T, msg string) string {
	t.Helper()
	i := strings.Index(msg, "Received: from ")
	for i >= 0 && !strings.Contains(msg[i:min(len(msg), i+300)], "(mailguard)") {
		j := strings.Index(msg[i+1:], "Received: from ")
		if j < 0 {
			i = -1
			break
		}
		i += 1 + j
	}
	if i < 0 {
		t.Fatalf("no mailguard Received field in:\n%s", msg)
	}
	return msg[i:]
}

// TestRelayToPostfix: a message sent with swaks arrives at a real Postfix
// byte for byte, with only mailguard's header fields prepended.
func TestRelayToPostfix(t *testing.T) {
	need(t, "swaks", "postfix")
	pf := startPostfix(t)
	g := startGateway(t, policyVars{Inbound: pf.addr})
	body := strings.Replace(plainMessage, "LONGLINE", longLine(), 1)
	file := writeMessage(t, t.TempDir(), "m.eml", body)
	out := send(t, g.addr, "alice@partner.example", "bob@corp.example", file)
	id := queuedID(out)
	if id == "" {
		t.Fatalf("no queued ID in:\n%s", out)
	}
	msgs := pf.waitMessages(t, 1, 30*time.Second)
	got := deliveredTail(t, msgs[0])
	// What mailguard stored is what swaks sent: the file plus the empty
	// line swaks always adds before the final dot.
	exported, err := g.mg("quarantine", "export", id)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(body, "\n", "\r\n") + "\r\n"; exported != want {
		t.Errorf("stored bytes differ from what was sent:\n%q", clipForLog(exported))
	}
	// Postfix stores with LF line endings.
	orig := strings.ReplaceAll(exported, "\r\n", "\n")
	hdrEnd := strings.Index(got, "X-Mailguard-Reasons:")
	rest := got[hdrEnd:]
	rest = rest[strings.Index(rest, "\n")+1:]
	if rest != orig {
		t.Errorf("delivered content differs from what was sent\n--- got\n%q\n--- want\n%q", clipForLog(rest), clipForLog(orig))
	}
	for _, want := range []string{"by mx.corp.example (mailguard) with ESMTP id " + id, "X-Mailguard-Id: " + id,
		"X-Mailguard-Action: deliver", "X-Mailguard-Reasons: clean"} {
		if !strings.Contains(got, want) {
			t.Errorf("delivered header lacks %q:\n%s", want, got[:hdrEnd])
		}
	}
	// The event log has the lifecycle.
	if !g.waitEvent(id, "delivered", 10*time.Second) {
		t.Errorf("no delivered event for %s: %v", id, g.events())
	}
}

// waitEvent waits for an event line of that kind for id.
func (g *gateway) waitEvent(id, kind string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, l := range g.events() {
			var e struct {
				Event string `json:"event"`
				MsgID string `json:"msg_id"`
			}
			if json.Unmarshal([]byte(l), &e) == nil && e.MsgID == id && e.Event == kind {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// TestOutboundFromInternal: mail from an internal network (the real client
// given by XCLIENT from a trusted peer) to another domain goes to the
// outbound relay; mail to a local domain to the inbound relay.
func TestOutboundFromInternal(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	in := startSink(t, "")
	out := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: in.addr, Outbound: out.addr})
	file := writeMessage(t, t.TempDir(), "m.eml", "From: bob@corp.example\nTo: x@customer.example\nSubject: reply\n\nthanks\n")
	send(t, g.addr, "bob@corp.example", "x@customer.example", file, "--xclient-addr", "10.1.2.3")
	waitFiles(t, out.messages, 1, 30*time.Second)
	if n := len(in.messages()); n != 0 {
		t.Errorf("outbound mail reached the inbound relay (%d)", n)
	}
	send(t, g.addr, "partner@partner.example", "bob@corp.example", file)
	waitFiles(t, in.messages, 1, 30*time.Second)
}

// TestOpenRelayRefused: an outside client cannot relay to other domains.
func TestOpenRelayRefused(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	s := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: s.addr, Outbound: s.addr})
	for _, rcpt := range []string{"victim@elsewhere.example", "victim%elsewhere.example@corp.example",
		"@corp.example:victim@elsewhere.example", "victim@corp.example.elsewhere.example"} {
		out, ok := swaks(t, g.addr, "--from", "spammer@bad.example", "--to", rcpt, "--quit-after", "RCPT")
		if ok || !regexp.MustCompile(`<\*\* +5\d\d`).MatchString(out) {
			t.Errorf("relay to %q not refused:\n%s", rcpt, out)
		}
	}
	if out, ok := swaks(t, g.addr, "--from", "a@b.example", "--to", "ok@CORP.EXAMPLE", "--quit-after", "RCPT"); !ok {
		t.Errorf("local recipient refused:\n%s", out)
	}
}

// TestSizeLimit: a message over max_message_size gets 552 and nothing is kept.
func TestSizeLimit(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	s := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: s.addr, Extra: `limits { max_message_size = "64KB" }`})
	big := "Subject: big\n\n" + strings.Repeat(strings.Repeat("x", 70)+"\n", 2000)
	file := writeMessage(t, t.TempDir(), "big.eml", big)
	out, ok := swaks(t, g.addr, "--from", "a@b.example", "--to", "u@corp.example", "--data", file)
	if ok || !strings.Contains(out, "552") {
		t.Fatalf("oversized message not refused with 552:\n%s", out)
	}
	list, err := g.mg("quarantine", "list", "--state", "all", "--json")
	if err != nil || strings.Contains(list, "\"id\"") {
		t.Errorf("oversized message left a row: %s %v", list, err)
	}
}

// TestSmuggling: bare LF / bare CR sequences in DATA are refused with 5xx
// and no message (neither the carrier nor a smuggled one) is queued.
func TestSmuggling(t *testing.T) {
	need(t, "smtp-sink")
	s := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: s.addr})
	payloads := []string{"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r.\r", "\n.\r"}
	for _, seq := range payloads {
		c := dialRaw(t, g.addr)
		c.reply()
		c.cmd("EHLO attacker.example")
		c.cmd("MAIL FROM:<a@attacker.example>")
		c.cmd("RCPT TO:<u@corp.example>")
		if r := c.cmd("DATA"); !strings.HasPrefix(r, "354") {
			t.Fatalf("DATA: %s", r)
		}
		c.write("Subject: smuggle\r\n\r\nlegit body" + seq +
			"MAIL FROM:<admin@corp.example>\r\nRCPT TO:<u@corp.example>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nevil\r\n.\r\n")
		r := c.reply()
		if !strings.HasPrefix(r, "5") {
			t.Errorf("payload %q: reply %q, want 5xx", seq, r)
		}
		c.cmd("QUIT")
	}
	time.Sleep(2 * time.Second)
	if msgs := s.messages(); len(msgs) != 0 {
		t.Errorf("%d messages delivered after smuggling attempts: %q", len(msgs), msgs)
	}
	list, _ := g.mg("quarantine", "list", "--state", "all", "--json")
	if strings.Contains(list, "\"id\"") {
		t.Errorf("smuggling attempts left rows: %s", list)
	}
}

// TestProxyAndXCLIENT: PROXY headers and XCLIENT change the client identity
// only when they come from trusted_proxies (127.0.0.1 here); 127.0.0.2 is
// an untrusted peer. The identity is observable through relay control:
// 10.0.0.0/8 is internal and may relay, loopback is not.
func TestProxyAndXCLIENT(t *testing.T) {
	need(t, "smtp-sink")
	s := startSink(t, "")
	proxyAddr := freePort(t)
	g := startGateway(t, policyVars{Inbound: s.addr, Outbound: s.addr, ProxyListen: proxyAddr})
	_, proxyPort, _ := net.SplitHostPort(proxyAddr)

	// relayOK reports whether the peer may relay; a dropped connection is
	// a refusal too.
	relayOK := func(c *rawSMTP) bool {
		for _, l := range []string{"EHLO relay.example", "MAIL FROM:<u@corp.example>"} {
			if r, err := c.try(l); err != nil || !strings.HasPrefix(r, "250") {
				return false
			}
		}
		r, err := c.try("RCPT TO:<x@elsewhere.example>")
		return err == nil && strings.HasPrefix(r, "250")
	}
	// PROXY v1 from the trusted peer: the real client is internal.
	c := dialRawFrom(t, "127.0.0.1", proxyAddr)
	c.write("PROXY TCP4 10.9.9.9 127.0.0.1 40000 " + proxyPort + "\r\n")
	if r := c.reply(); !strings.HasPrefix(r, "220") {
		t.Fatalf("greeting after trusted PROXY: %q", r)
	}
	if !relayOK(c) {
		t.Error("PROXY from a trusted peer was not honoured")
	}
	// PROXY v1 from an untrusted peer: refused.
	c = dialRawFrom(t, "127.0.0.2", proxyAddr)
	c.write("PROXY TCP4 10.9.9.9 127.0.0.1 40000 " + proxyPort + "\r\n")
	if r := c.reply(); strings.HasPrefix(r, "220") && relayOK(c) {
		t.Error("PROXY from an untrusted peer was honoured")
	}
	// XCLIENT from the trusted peer.
	c = dialRawFrom(t, "127.0.0.1", g.addr)
	c.reply()
	if ehlo := c.cmd("EHLO relay.example"); !strings.Contains(ehlo, "XCLIENT") {
		t.Errorf("XCLIENT not advertised to a trusted peer:\n%s", ehlo)
	}
	if r := c.cmd("XCLIENT ADDR=10.1.1.1 NAME=laptop.corp.example"); !strings.HasPrefix(r, "220") {
		t.Fatalf("XCLIENT from trusted peer: %q", r)
	}
	if !relayOK(c) {
		t.Error("XCLIENT from a trusted peer was not honoured")
	}
	// XCLIENT from an untrusted peer.
	c = dialRawFrom(t, "127.0.0.2", g.addr)
	c.reply()
	if ehlo := c.cmd("EHLO relay.example"); strings.Contains(ehlo, "XCLIENT") {
		t.Errorf("XCLIENT advertised to an untrusted peer")
	}
	if r := c.cmd("XCLIENT ADDR=10.1.1.1"); !strings.HasPrefix(r, "5") {
		t.Errorf("XCLIENT from untrusted peer: %q, want 5xx", r)
	}
	if relayOK(c) {
		t.Error("untrusted peer could relay")
	}
}

// TestCrashSafety: with the downstream down, messages are sent while the
// gateway is killed with SIGKILL at random moments and restarted; when the
// downstream comes back, every message that got 250 arrives (at least once)
// and none that got an error does.
func TestCrashSafety(t *testing.T) {
	need(t, "smtp-sink")
	downAddr := freePort(t)
	// A message received but not yet decided when the process dies is
	// inspected again once no session can still hold it (inspect_timeout
	// + 10 s): keep that short here.
	g := startGateway(t, policyVars{Inbound: downAddr, Extra: `limits { inspect_timeout = "5s" }`})
	const n = 40
	accepted := map[string]bool{} // message tag → 250
	refused := map[string]bool{}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		tag := fmt.Sprintf("crash-%03d", i)
		ok := sendRaw(g.addr, tag)
		mu.Lock()
		if ok {
			accepted[tag] = true
		} else {
			refused[tag] = true
		}
		mu.Unlock()
		if rng.IntN(8) == 0 {
			g.kill9()
			g.start()
		}
	}
	// Kill once more in the middle of a transaction.
	go sendRaw(g.addr, "crash-mid")
	time.Sleep(20 * time.Millisecond)
	g.kill9()
	g.start()
	s := startSink(t, downAddr)
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := map[string]bool{}
		for _, m := range s.messages() {
			if mm := regexp.MustCompile(`Subject: (crash-\d+)`).FindStringSubmatch(m); mm != nil {
				got[mm[1]] = true
			}
		}
		missing := 0
		for tag := range accepted {
			if !got[tag] {
				missing++
			}
		}
		if missing == 0 {
			for tag := range refused {
				if got[tag] {
					t.Errorf("%s was refused but delivered", tag)
				}
			}
			t.Logf("%d accepted, %d refused, all accepted delivered", len(accepted), len(refused))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted messages never arrived", missing, len(accepted))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sendRaw sends one small message and reports whether DATA got 250.
func sendRaw(addr, tag string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 4096)
	read := func() string {
		var all string
		for {
			n, err := c.Read(buf)
			all += string(buf[:n])
			if err != nil || regexp.MustCompile(`(?m)^\d{3} [^\n]*\r\n\z`).MatchString(all) {
				return all
			}
		}
	}
	steps := []string{"", "EHLO client.example\r\n", "MAIL FROM:<a@partner.example>\r\n", "RCPT TO:<u@corp.example>\r\n", "DATA\r\n",
		"Subject: " + tag + "\r\n\r\nbody\r\n.\r\n"}
	var last string
	for _, s := range steps {
		if s != "" {
			if _, err := c.Write([]byte(s)); err != nil {
				return false
			}
		}
		last = read()
	}
	return strings.HasPrefix(last, "250")
}

// TestDownstreamOutageThenDSN: a temporary downstream outage is retried; a
// permanent 5xx produces a DSN to the sender.
func TestDownstreamOutageThenDSN(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	downAddr := freePort(t)
	out := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: downAddr, Outbound: out.addr})
	file := writeMessage(t, t.TempDir(), "m.eml", "From: a@partner.example\nSubject: outage\n\nbody\n")
	send(t, g.addr, "a@partner.example", "u@corp.example", file)
	time.Sleep(3 * time.Second) // a few failed attempts against nothing
	in := startSink(t, downAddr)
	msgs := waitFiles(t, in.messages, 1, 30*time.Second)
	if !strings.Contains(msgs[0], "Subject: outage") {
		t.Errorf("wrong message delivered after outage: %q", msgs[0])
	}
	// Now a downstream that refuses the recipient permanently.
	in.stop()
	startSink(t, downAddr, "-f", "RCPT")
	send(t, g.addr, "sender@partner.example", "gone@corp.example", writeMessage(t, t.TempDir(), "b.eml", "From: sender@partner.example\nSubject: bounce me\n\nbody\n"))
	dsns := waitFiles(t, out.messages, 1, 30*time.Second)
	d := dsns[0]
	for _, want := range []string{"multipart/report", "report-type=delivery-status", "Action: failed",
		"Final-Recipient: rfc822;", "gone@corp.example", "Subject: bounce me"} {
		if !strings.Contains(d, want) {
			t.Errorf("DSN lacks %q:\n%s", want, d)
		}
	}
	if !regexp.MustCompile(`(?i)rcpt to:<sender@partner\.example>|X-Rcpt-Args: <sender@partner.example>`).MatchString(d) {
		t.Logf("DSN dump (recipient check is by content):\n%s", d)
	}
}

func clipForLog(s string) string {
	return strings.ReplaceAll(s, longLine(), "<6000-byte line>")
}
