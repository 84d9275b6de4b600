package smtp

import (
	"strings"
	"testing"
)

func TestRelayControl(t *testing.T) {
	cfg := testConfig()
	cfg.LocalDomains = []string{"corp.example", "Mail.Corp2.example.", "bücher.example"}
	cfg.InternalNetworks = prefixes("127.0.0.2/32")
	cfg.MaxErrors = 100
	h := &recHandler{}
	_, addrs := startServer(t, cfg, h)

	type rc struct {
		rcpt string
		code int
		enh  string
	}
	outside := []rc{
		{"<bob@corp.example>", 250, ""},
		{"<bob@CORP.EXAMPLE>", 250, ""},
		{"<bob@mail.corp2.example>", 250, ""},
		{"<postmaster>", 250, ""},
		{"<PostMaster>", 250, ""},
		{"<bob@evil.example>", 550, "5.7.1"},
		{"<bob@sub.corp.example>", 550, "5.7.1"}, // subdomains are not local unless configured
		{"<bob@corp.example.evil.example>", 550, "5.7.1"},
		{"<bob@corp.example.>", 501, "5.1.3"},
		{"<bob@[127.0.0.1]>", 550, "5.7.1"},
		{"<bob@[IPv6:::1]>", 550, "5.7.1"},
		{"<@corp.example:bob@evil.example>", 553, "5.1.3"},
		{"<@a.example,@corp.example:bob@corp.example>", 553, "5.1.3"},
		{"<bob%evil.example@corp.example>", 553, "5.1.3"},
		{"<evil.example!bob@corp.example>", 553, "5.1.3"},
		{`<"bob@evil.example"@corp.example>`, 553, "5.1.3"},
		{`<"bob%evil.example"@corp.example>`, 553, "5.1.3"},
		{`<"bob"@corp.example>`, 250, ""},
		{`<"john doe"@corp.example>`, 250, ""},
		{"<bob@evil.example@corp.example>", 501, "5.1.3"},
		{"<bob@corp_example>", 501, "5.1.3"},
		{"<bob@-corp.example>", 501, "5.1.3"},
		{"<bob>", 501, ""},
		{"<@>", 501, ""},
		{"<bob@corp.example", 501, ""},
		{"<bob@corp.example>x", 500, ""},
		{"<bob @corp.example>", 501, ""},
		{"<böb@corp.example>", 553, "5.6.7"},         // no SMTPUTF8
		{"<bob@bücher.example>", 553, "5.6.7"},       // no SMTPUTF8
		{"<bob@xn--bcher-kva.example>", 250, ""},     // the A-label is local
		{"<bob@corp.example> NOTIFY=NEVER", 504, ""}, // DSN is not offered
	}
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	for _, tc := range outside {
		code, text := c.cmd("RCPT TO:" + tc.rcpt)
		if code != tc.code || tc.enh != "" && !strings.HasPrefix(text[4:], tc.enh) {
			t.Errorf("outside RCPT TO:%s = %q, want %d %s", tc.rcpt, text, tc.code, tc.enh)
		}
	}
	c.cmdExpect("DATA", 354)
	c.send("x\r\n.\r\n")
	c.expect(250)
	msgs := h.accepted()
	if len(msgs) != 1 {
		t.Fatal("message not accepted")
	}
	want := []string{"bob@corp.example", "bob@mail.corp2.example", "postmaster@corp.example", `"john doe"@corp.example`, "bob@xn--bcher-kva.example"}
	if strings.Join(msgs[0].env.Rcpts, ",") != strings.Join(want, ",") {
		t.Errorf("accepted rcpts %q, want %q", msgs[0].env.Rcpts, want)
	}
	if msgs[0].env.Direction != Inbound {
		t.Errorf("direction %s, want inbound", msgs[0].env.Direction)
	}

	// With SMTPUTF8 the UTF-8 forms are fine.
	c.cmdExpect("MAIL FROM:<ålice@sender.example> SMTPUTF8", 250)
	c.cmdExpect("RCPT TO:<böb@bücher.example>", 250)
	c.cmdExpect("RSET", 250)

	// From an internal network: anything goes, and the direction follows.
	in := dialFrom(t, addrs[0], "127.0.0.2")
	in.hello("internal.example")
	in.cmdExpect("MAIL FROM:<a@corp.example>", 250)
	in.cmdExpect("RCPT TO:<bob@corp.example>", 250)
	in.cmdExpect("DATA", 354)
	in.send("x\r\n.\r\n")
	in.expect(250)
	in.cmdExpect("MAIL FROM:<a@corp.example>", 250)
	in.cmdExpect("RCPT TO:<bob@corp.example>", 250)
	in.cmdExpect("RCPT TO:<x@partner.example>", 250)
	in.cmdExpect("RCPT TO:<bob%evil.example@partner.example>", 553)
	in.cmdExpect("RCPT TO:<@a.example:x@partner.example>", 553)
	in.cmdExpect("DATA", 354)
	in.send("x\r\n.\r\n")
	in.expect(250)
	msgs = h.accepted()
	if len(msgs) != 3 || msgs[1].env.Direction != Internal || msgs[2].env.Direction != Outbound || !msgs[2].env.Conn.Internal {
		t.Errorf("directions: %s %s", msgs[1].env.Direction, msgs[2].env.Direction)
	}
}

func TestLocalSubdomains(t *testing.T) {
	cfg := testConfig()
	cfg.LocalSubdomains = true
	_, addrs := startServer(t, cfg, &recHandler{})
	c := dial(t, addrs[0])
	c.hello("client.example")
	c.cmdExpect("MAIL FROM:<a@sender.example>", 250)
	c.cmdExpect("RCPT TO:<bob@sub.corp.example>", 250)
	c.cmdExpect("RCPT TO:<bob@a.b.corp.example>", 250)
	c.cmdExpect("RCPT TO:<bob@xcorp.example>", 550)
}

func TestSenderSyntax(t *testing.T) {
	_, addrs := startServer(t, testConfig(), &recHandler{})
	c := dial(t, addrs[0])
	c.hello("client.example")
	for _, tc := range []struct {
		from string
		code int
	}{
		{"<>", 250},
		{"<a@sender.example>", 250},
		{"a@sender.example", 250}, // no brackets, as go-smtp and Postfix accept
		{"<a%b@sender.example>", 250},
		{"<@relay.example:a@sender.example>", 553},
		{"<a@sender..example>", 501},
		{"<a>", 501},
		{"<ä@sender.example>", 553},
		{"<>x", 500},
	} {
		code, text := c.cmd("MAIL FROM:" + tc.from)
		if code != tc.code {
			t.Errorf("MAIL FROM:%s = %q, want %d", tc.from, text, tc.code)
		}
		if code == 250 {
			c.cmdExpect("RSET", 250)
		}
	}
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in      string
		reverse bool
		utf8    bool
		want    string
		verdict addrError
	}{
		{"<a@b.example>", false, false, "a@b.example", addrOK},
		{`<"a b"@b.example>`, false, false, `"a b"@b.example`, addrOK},
		{`<"a\"b"@b.example>`, false, false, `"a\"b"@b.example`, addrOK},
		{`<"ab"@b.example>`, false, false, `ab@b.example`, addrOK},
		{`<"a\\b"@b.example>`, false, false, `"a\\b"@b.example`, addrOK},
		{`<"a@b"@b.example>`, true, false, `"a@b"@b.example`, addrOK},
		{`<"a@b"@b.example>`, false, false, ``, addrRouted},
		{`<a..b.@docomo.ne.jp>`, false, false, `a..b.@docomo.ne.jp`, addrOK},
		{`<.@b.example>`, false, false, ``, addrBadSyntax},
		{`<a@b.example> SIZE=10`, true, false, `a@b.example`, addrOK},
		{`<a@[1.2.3.4]>`, false, false, `a@[1.2.3.4]`, addrOK},
		{`<a@[1.2.3.400]>`, false, false, ``, addrBadSyntax},
		{`<a@[IPv6:1.2.3.4]>`, false, false, ``, addrBadSyntax},
		{`<a@b.example`, false, false, ``, addrBadSyntax},
		{`<pOstmaster>`, false, false, ``, addrBadSyntax},
		{`<postmaster>`, true, false, ``, addrBadSyntax},
		{"<\"a\x01\"@b.example>", false, false, ``, addrBadSyntax},
		{"<a\xff@b.example>", false, true, ``, addrBadSyntax},
		{"<用户@例子.广告>", false, true, "用户@例子.广告", addrOK},
		{"<用户@例子.广告>", false, false, "", addrNeedUTF8},
		{"<a@" + strings.Repeat("x", 64) + ".example>", false, false, "", addrBadSyntax},
	} {
		m, v := parsePath(tc.in, tc.reverse, tc.utf8)
		if v != tc.verdict || v == addrOK && m.String() != tc.want {
			t.Errorf("parsePath(%q, reverse=%v, utf8=%v) = %q, %d; want %q, %d", tc.in, tc.reverse, tc.utf8, m.String(), v, tc.want, tc.verdict)
		}
	}
}

// FuzzParsePath checks that the address parser never panics and that what
// it accepts is safe to relay: no CR/LF/NUL or space outside quotes, no
// routing syntax in recipients, and a round trip that parses to itself.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"<a@b.example>", `<"a b"@c.example> SIZE=1`, "<@x:a@b>", "<>", "<postmaster>",
		"<a%b@c>", `<"\""@x.example>`, "<用户@例子.广告>", "<a@[IPv6:::1]>", "a@b"} {
		f.Add(s, false, true)
		f.Add(s, true, false)
	}
	f.Fuzz(func(t *testing.T, in string, reverse, utf8ok bool) {
		m, v := parsePath(in, reverse, utf8ok)
		if v != addrOK {
			return
		}
		s := m.String()
		if strings.ContainsAny(s, "\r\n\x00<>") {
			t.Fatalf("accepted %q -> %q with control or bracket characters", in, s)
		}
		if !reverse && m.domain != "" && strings.ContainsAny(m.local, "%!@") {
			t.Fatalf("accepted routed recipient %q -> %q", in, s)
		}
		if s == "" {
			return
		}
		m2, v2 := parsePath("<"+s+">", reverse, utf8ok)
		if v2 != addrOK || m2.String() != s || m2.ascii != m.ascii {
			t.Fatalf("round trip of %q: %q -> %q (%d)", in, s, m2.String(), v2)
		}
	})
}

func TestPathArg(t *testing.T) {
	for _, tc := range []struct{ line, prefix, want string }{
		{"MAIL FROM:<a@b>\r\n", "FROM:", "<a@b>"},
		{"mail from: <a@b> SIZE=1\r\n", "FROM:", "<a@b> SIZE=1"},
		{"MAIL   FROM:<a@b>\n", "FROM:", "<a@b>"},
		{"RCPT TO:<a@b>\r\n", "TO:", "<a@b>"},
	} {
		got, ok := pathArg(tc.line, tc.prefix)
		if !ok || got != tc.want {
			t.Errorf("pathArg(%q) = %q, %v; want %q", tc.line, got, ok, tc.want)
		}
	}
	if _, ok := pathArg("RCPT", "TO:"); ok {
		t.Error("short line accepted")
	}
}
