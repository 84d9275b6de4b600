package tests

import (
	"net"
	"strings"
	"testing"
	"time"
)

// textMessage is a plain-text message with body.
func textMessage(subject, msgID, body string) string {
	return "From: Partner News <news@partner.example>\r\nTo: Bob <bob@corp.example>\r\nSubject: " + subject +
		"\r\nDate: Mon, 23 Nov 2026 10:00:00 +0900\r\nMessage-ID: <" + msgID + ">\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
}

// TestReputationRejectAtConnect: with reject_at = "connect", a listed
// client presented by XCLIENT gets 554 in place of the greeting and is
// disconnected, one presented by a PROXY header gets 554 before any
// greeting; an unlisted client and a listed one in allow_networks are
// served, the latter without a lookup.
func TestReputationRejectAtConnect(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	dns := startReputationDNS(t)
	down := startSink(t, "")
	proxyAddr := freePort(t)
	g := startGateway(t, policyVars{Inbound: down.addr, DNS: dns.Addr(), ProxyListen: proxyAddr,
		Extra: reputationBlock(`reject_at = "connect"`)})
	_, proxyPort, _ := net.SplitHostPort(proxyAddr)

	c := dialRaw(t, g.addr)
	if r := c.reply(); !strings.HasPrefix(r, "220 ") {
		t.Fatalf("greeting for the trusted loopback: %q", r)
	}
	c.cmd("EHLO relay.example")
	if r := c.cmd("XCLIENT ADDR=" + listedIP); !strings.HasPrefix(r, "554 5.7.1 ") || !strings.Contains(r, "bl.test") {
		t.Errorf("XCLIENT ADDR=%s: %q, want 554 5.7.1 naming bl.test", listedIP, r)
	}
	if r, err := c.try("EHLO relay.example"); err == nil {
		t.Errorf("connection still served after the refusal: %q", r)
	}

	p := dialRawFrom(t, "127.0.0.1", proxyAddr)
	p.write("PROXY TCP4 " + listedIP + " 127.0.0.1 40000 " + proxyPort + "\r\n")
	if r := p.reply(); !strings.HasPrefix(r, "554 5.7.1 ") {
		t.Errorf("PROXY for %s: first reply %q, want 554 before any greeting", listedIP, r)
	}

	ids := map[string]string{}
	for _, ip := range []string{cleanIP, allowedIP} {
		ids[ip] = sendMessage(t, g.addr, textMessage("hello from "+ip, "conn-"+ip+"@partner.example", "hello\n"),
			"--xclient-addr", ip)
		down.waitMessage(t, ids[ip], 30*time.Second)
	}
	if !asked(dns, "99.113.0.203.bl.test.") {
		t.Errorf("the unlisted client was never looked up: %v", dns.Queries())
	}
	if asked(dns, "7.100.51.198.bl.test.") {
		t.Errorf("a client in allow_networks was looked up")
	}
	if s := path(t, g.decision(t, ids[allowedIP]), "reputation", "ip", "skipped"); s != "allow-listed network" {
		t.Errorf("allow-listed client: reputation.ip.skipped = %v", s)
	}
	if n := len(g.list(t, "all")); n != 2 {
		t.Errorf("%d messages stored, want the 2 accepted ones", n)
	}
}

// TestReputationRejectAtRcpt: with reject_at = "rcpt" (the default) the
// listed client is greeted and refused with 550 at each RCPT; nothing is
// stored. swaks, the real client, sees the same.
func TestReputationRejectAtRcpt(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	dns := startReputationDNS(t)
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, DNS: dns.Addr(), Extra: reputationBlock()})

	c := dialRaw(t, g.addr)
	c.reply()
	c.cmd("EHLO relay.example")
	if r := c.cmd("XCLIENT ADDR=" + listedIP + " HELO=spam.example"); !strings.HasPrefix(r, "220 ") {
		t.Fatalf("XCLIENT with reject_at = rcpt: %q, want the greeting", r)
	}
	for _, step := range []struct{ line, want string }{
		{"EHLO spam.example", "250"},
		{"MAIL FROM:<a@spam.example>", "250 "},
		{"RCPT TO:<bob@corp.example>", "550 5.7.1 "},
		{"RCPT TO:<alice@corp.example>", "550 5.7.1 "},
		{"DATA", "5"},
	} {
		if r := c.cmd(step.line); !strings.HasPrefix(r, step.want) {
			t.Errorf("%s: %q, want %s", step.line, r, step.want)
		} else if strings.HasPrefix(step.line, "RCPT") && !strings.Contains(r, listedIP) {
			t.Errorf("%s: %q does not name the client", step.line, r)
		}
	}
	c.cmd("QUIT")

	file := writeMessage(t, t.TempDir(), "m.eml", textMessage("spam", "spam-1@spam.example", "buy\n"))
	out, ok := swaks(t, g.addr, "--from", "a@spam.example", "--to", "bob@corp.example", "--data", file,
		"--xclient-addr", listedIP)
	if ok || !strings.Contains(out, "<** 550 5.7.1") {
		t.Errorf("swaks from a listed client not refused with 550 at RCPT:\n%s", out)
	}
	if n := len(g.list(t, "all")); n != 0 {
		t.Errorf("%d messages stored from a refused client", n)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(down.messages()); n != 0 {
		t.Errorf("%d messages reached the downstream", n)
	}
}

// TestReputationURLBlocklisted: a link whose registrable domain is on the
// URIBL quarantines the message with url_blocklisted; the decision JSON
// names the list and the domain.
func TestReputationURLBlocklisted(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	dns := startReputationDNS(t)
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, DNS: dns.Addr(), Extra: reputationBlock()})
	msg := textMessage("your mailbox is full", "full-1@partner.example",
		"Your mailbox is full. Verify your account within 24 hours:\nhttps://login.evil-phish.example/verify?u=bob\n")
	id := sendMessage(t, g.addr, msg, "--xclient-addr", cleanIP)
	e := g.waitState(t, id, "quarantined", 10*time.Second)
	if !contains(e.Reasons, "url_blocklisted") {
		t.Errorf("reasons %v, want url_blocklisted", e.Reasons)
	}
	d := g.decision(t, id)
	if z, dom := path(t, d, "reputation", "urls", "listed", "#0", "zone"), path(t, d, "reputation", "urls", "listed", "#0", "domain"); z != "uribl.test" || dom != "evil-phish.example" {
		t.Errorf("reputation.urls.listed[0] = %v %v, want uribl.test evil-phish.example", z, dom)
	}
	if s, n := num(t, d, "reputation", "ip", "score"), num(t, d, "reputation", "ip", "checked"); s != 0 || n != 1 {
		t.Errorf("reputation.ip score %v checked %v, want 0 and 1", s, n)
	}
	if !asked(dns, "evil-phish.example.uribl.test.") {
		t.Errorf("the registrable domain was not looked up: %v", dns.Queries())
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(down.messages()); n != 0 {
		t.Errorf("%d messages reached the downstream", n)
	}
}

// TestReputationZoneTimeout: a list that never answers is skipped after
// reputation.timeout, shorter than the resolver's own timeout; the message
// is delivered and the SMTP transaction is slower only by those waits
// (the client check at RCPT, and the client and URL checks at DATA).
func TestReputationZoneTimeout(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	const timeout = 700 * time.Millisecond
	dns := startReputationDNS(t)
	dns.Timeout("99.113.0.203.slow-bl.test.")
	dns.Timeout("partner-news.example.slow-uribl.test.")
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, DNS: dns.Addr(), Extra: reputationBlock(
		`zone "slow-bl.test" {}`, `zone "slow-uribl.test" {`, `  type = "url"`, `}`, `timeout = "700ms"`)})
	msg := textMessage("Q3 newsletter", "news-1@partner.example", "Read it at https://www.partner-news.example/q3\n")
	var id string
	took := timed(func() { id = sendMessage(t, g.addr, msg, "--xclient-addr", cleanIP) })
	// Three waits of the timeout; the resolver's own timeout is 2s.
	if bound := 3*timeout + 2*time.Second; took > bound {
		t.Errorf("transaction took %s with a silent list, want at most %s", took, bound)
	}
	t.Logf("SMTP transaction with one silent IP list and one silent URL list (timeout %s): %s", timeout, took)
	down.waitMessage(t, id, 30*time.Second)
	d := g.decision(t, id)
	ipErr, _ := path(t, d, "reputation", "ip", "errors").([]any)
	urlErr, _ := path(t, d, "reputation", "urls", "errors").([]any)
	if len(ipErr) != 1 || !strings.Contains(ipErr[0].(string), "slow-bl.test: timeout after 700ms") {
		t.Errorf("reputation.ip.errors = %v", ipErr)
	}
	if len(urlErr) != 1 || !strings.Contains(urlErr[0].(string), "slow-uribl.test") {
		t.Errorf("reputation.urls.errors = %v", urlErr)
	}
	if ms := num(t, d, "took_ms"); time.Duration(ms)*time.Millisecond > 2*timeout+time.Second {
		t.Errorf("inspection took %vms, want about two timeouts", ms)
	}
	if d["action"] != "deliver" {
		t.Errorf("action %v, want deliver (a silent list is skipped)", d["action"])
	}
	if !asked(dns, "99.113.0.203.slow-bl.test.") || !asked(dns, "partner-news.example.slow-uribl.test.") {
		t.Errorf("the silent lists were not asked: %v", dns.Queries())
	}
}

// phishingHTML is shaped like real credential phishing: an href written
// with character references whose anchor text shows the bank's address, a
// homograph IDN, a legitimate link to our own domain and a remote image.
const phishingHTML = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Account notice</title></head>
<body style="font-family:Arial">
<p>Dear customer,</p>
<p>We could not verify your account. Sign in within 24 hours:
<a href="&#104;&#116;&#116;&#112;&#115;&#58;//login.evil-phish&#46;example/verify?user=bob&amp;s=1">https://www.mybank.example/account</a></p>
<p>Apple ID users: <a href="https://аpple.example/id/unlock">appleid.apple.com</a></p>
<p>Questions? See <a href="https://www.corp.example/helpdesk">the helpdesk</a>.</p>
<img src="https://cdn.newsletter-images.example/logo.png" width="120" alt="">
</body></html>
`

// TestReputationPhishingHTML: the decision JSON's reputation.urls facts
// for a phishing-shaped HTML body: entity-written link decoded and looked
// up by its registrable domain, two anchor texts that show another domain
// than their link, the IDN in punycode (and looked up so), our own domain
// never looked up.
func TestReputationPhishingHTML(t *testing.T) {
	need(t, "swaks", "smtp-sink")
	dns := startReputationDNS(t)
	down := startSink(t, "")
	g := startGateway(t, policyVars{Inbound: down.addr, DNS: dns.Addr(), Extra: reputationBlock()})
	msg := "From: MyBank <notice@mybank-secure.example>\r\nTo: bob@corp.example\r\nSubject: Account notice\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0900\r\nMessage-ID: <phish-1@mybank-secure.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		strings.ReplaceAll(phishingHTML, "\n", "\r\n")
	id := sendMessage(t, g.addr, msg, "--xclient-addr", cleanIP)
	e := g.waitState(t, id, "quarantined", 10*time.Second)
	if !contains(e.Reasons, "url_blocklisted") {
		t.Errorf("reasons %v, want url_blocklisted", e.Reasons)
	}
	d := g.decision(t, id)
	urls := path(t, d, "reputation", "urls")
	for key, want := range map[string]float64{"count": 4, "mismatches": 2, "punycode": 1, "ip_literals": 0} {
		if got := num(t, urls, key); got != want {
			t.Errorf("reputation.urls.%s = %v, want %v", key, got, want)
		}
	}
	byHost := map[string]map[string]any{}
	list, _ := path(t, urls, "urls").([]any)
	for _, u := range list {
		m := u.(map[string]any)
		byHost[m["host"].(string)] = m
	}
	if u := byHost["login.evil-phish.example"]; u == nil || u["mismatch"] != true || u["domain"] != "evil-phish.example" ||
		u["text"] != "https://www.mybank.example/account" || !strings.HasPrefix(u["raw"].(string), "https://login.evil-phish.example/verify") {
		t.Errorf("entity-written link = %v", u)
	}
	if u := byHost[idnHost]; u == nil || u["punycode"] != true || u["unicode"] != "аpple.example" || u["mismatch"] != true {
		t.Errorf("IDN link = %v (hosts %v)", u, keys(byHost))
	}
	if u := byHost["www.corp.example"]; u == nil || u["mismatch"] == true {
		t.Errorf("own-domain link = %v", u)
	}
	listed := map[string]string{}
	for _, l := range path(t, urls, "listed").([]any) {
		m := l.(map[string]any)
		listed[m["domain"].(string)] = m["zone"].(string) + " " + strings.Join(anyStrings(m["codes"]), ",")
	}
	if listed["evil-phish.example"] != "uribl.test 127.0.0.2" || listed[idnHost] != "uribl.test 127.0.0.4" || len(listed) != 2 {
		t.Errorf("reputation.urls.listed = %v", listed)
	}
	if asked(dns, "corp.example.uribl.test.") || asked(dns, "www.corp.example.uribl.test.") {
		t.Errorf("our own domain was looked up")
	}
	if !asked(dns, "newsletter-images.example.uribl.test.") {
		t.Errorf("the image's domain was not looked up: %v", dns.Queries())
	}
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func anyStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
