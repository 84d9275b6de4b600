package thread

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailguard/mailguard/reason"
)

func TestBaseSubject(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Re: 見積書送付の件", "見積書送付の件"},
		{"RE: RE: Fwd: FW: invoice", "invoice"},
		{"Re[2]: FW: 見積書送付の件", "見積書送付の件"},
		{"Re(3): Aw: SV: Tr: report", "report"},
		{"ＲＥ：　見積書", "見積書"}, // full-width prefix and ideographic space
		{"Ｆｗｄ：請求書", "請求書"},
		{"返信: 打ち合わせ", "打ち合わせ"},
		{"転送：返信：打ち合わせ", "打ち合わせ"}, // full-width colon
		{"【パスワード通知】Re: 見積書送付の件", "見積書送付の件"},
		{"Re: 見積書送付の件（パスワード）", "見積書送付の件"},
		{"[パスワード] 見積書.zip", "見積書.zip"},
		{"【PW】見積書", "見積書"},
		{"【解凍パスワード】2024年度資料", "2024年度資料"},
		{"  Re:   spaced    out  ", "spaced out"},
		{"Regarding: not a prefix", "Regarding: not a prefix"},
		{"Reply needed", "Reply needed"},
		{"", ""},
	} {
		if got := BaseSubject(c.in); got != c.want {
			t.Errorf("BaseSubject(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if SubjectKey("RE: Invoice") != SubjectKey("invoice") || SubjectKey("a") == SubjectKey("b") || SubjectKey("Re:") != "" {
		t.Error("SubjectKey does not key base subjects")
	}
	if !IsReply("ＲＥ: x") || IsReply("Reply") {
		t.Error("IsReply")
	}
	for _, s := range []string{"【パスワード通知】Re: 見積書", "パスワードのお知らせ", "Password for 見積書.zip", "【PW】見積書"} {
		if !PasswordSubject(s) {
			t.Errorf("PasswordSubject(%q) = false", s)
		}
	}
	if PasswordSubject("FW: 請求書") {
		t.Error("PasswordSubject(FW: 請求書) = true")
	}
	// Hostile length is bounded.
	if got := BaseSubject(strings.Repeat("Re: ", 100000) + "x"); len(got) > maxSubject {
		t.Errorf("BaseSubject kept %d bytes", len(got))
	}
}

func TestThreadKeyAndRefs(t *testing.T) {
	if k := ThreadKey("id", "m", nil, []string{"root", "mid"}, nil); k != "root" {
		t.Errorf("root of References: %q", k)
	}
	if k := ThreadKey("id", "m", []string{"p"}, nil, nil); k != "p" {
		t.Errorf("In-Reply-To: %q", k)
	}
	if k := ThreadKey("id", "", nil, nil, nil); k != "mg:id" {
		t.Errorf("no ids: %q", k)
	}
	parents := []Record{{Thread: "old", At: time.Unix(1, 0)}, {Thread: "new", At: time.Unix(2, 0)}}
	if k := ThreadKey("id", "m", nil, []string{"root"}, parents); k != "new" {
		t.Errorf("newest parent's thread: %q", k)
	}
	got := Refs([]string{"<a@x>"}, []string{"<r@x>", "<b@x>", "<a@x>"}, 10)
	if strings.Join(got, " ") != "a@x b@x r@x" {
		t.Errorf("Refs = %v", got)
	}
	if len(Refs(nil, make([]string, 0), 3)) != 0 || len(Refs([]string{"1", "2", "3", "4"}, nil, 3)) != 3 {
		t.Error("Refs cap")
	}
}

func TestLookalike(t *testing.T) {
	protect := func(ds ...string) []Domain {
		var out []Domain
		for _, d := range ds {
			pd, ok := ParseDomain(d)
			if !ok {
				t.Fatalf("ParseDomain(%q) failed", d)
			}
			out = append(out, pd)
		}
		return out
	}
	p := protect("paypal.com", "microsoft.com", "apple.com", "corp.example", "partner-trading.co.jp", "abc.com")
	for _, c := range []struct {
		sender string
		target string
	}{
		{"paypa1.com", "paypal.com"},
		{"rnicrosoft.com", "microsoft.com"},
		{"pаypal.com", "paypal.com"},         // Cyrillic а
		{"xn--pypal-4ve.com", "paypal.com"},  // the same, in punycode
		{"xn--80ak6aa92e.com", "apple.com"},  // аррӏе.com, all Cyrillic
		{"mail.paypa1.com", "paypal.com"},    // subdomain of a lookalike
		{"paypal.net", "paypal.com"},         // same label, other TLD
		{"microsoft.co.jp", "microsoft.com"}, // same label, other suffix
		{"micorsoft.com", "microsoft.com"},   // transposition
		{"partner-tradlng.co.jp", "partner-trading.co.jp"},
		{"partner-trading.com", "partner-trading.co.jp"},
		{"c0rp.example", "corp.example"}, // skeleton 0 → o
		{"corp.example.co", "corp.example"},
		{"paypal.com.account-verify.net", "paypal.com"},
		{"corp.example-login.com", "corp.example"},
		{"mail.partner-trading.co.jp.example.net", "partner-trading.co.jp"},
	} {
		la, ok := FindLookalike(c.sender, p)
		if !ok || la.Target != c.target {
			t.Errorf("FindLookalike(%q) = %+v, %v; want target %s", c.sender, la, ok, c.target)
		}
	}
	for _, s := range []string{
		"paypal.com", "www.paypal.com", "corp.example", "mx.corp.example", // the domains themselves
		"abd.com", "xyz.com", "cnn.com", "corn.example", // unrelated short ones
		"example.org", "totally-different.co.jp", "192.0.2.1", "", "com", "[127.0.0.1]",
		"corporate.example", "abc.company.com", "mail.abc.com", // a prefix of the name alone is no imitation
	} {
		if la, ok := FindLookalike(s, p); ok {
			t.Errorf("FindLookalike(%q) flagged %+v", s, la)
		}
	}
	if d := Distance("microsoft", "micorsoft", 2); d != 1 {
		t.Errorf("transposition distance %d", d)
	}
	if d := Distance("kitten", "sitting", 5); d != 3 {
		t.Errorf("kitten/sitting %d", d)
	}
	if d := Distance("a", "abcdef", 2); d != 3 {
		t.Errorf("early exit %d", d)
	}
}

func TestMatchName(t *testing.T) {
	for _, c := range []struct {
		display, vip string
		want         bool
	}{
		{"山田 太郎", "山田 太郎", true},
		{"山田太郎", "山田 太郎", true},
		{"山田　太郎", "山田太郎", true}, // ideographic space
		{"山田太郎 社長", "山田 太郎", true},
		{"山田太郎社長", "山田 太郎", true},
		{"太郎 山田", "山田 太郎", true},
		{"山田太郎様", "山田 太郎", true},
		{"ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダ タロウ", true},
		{"ﾔﾏﾀﾞﾀﾛｳ", "ヤマダ タロウ", true},
		{"やまだ たろう", "ヤマダ タロウ", true},
		{"Taro Yamada", "Taro Yamada", true},
		{"Yamada Taro", "Taro Yamada", true},
		{"YAMADA, Taro", "Taro Yamada", true},
		{"T. Yamada", "Taro Yamada", true},
		{"Taro A. Yamada", "Taro Yamada", true},
		{"Taro Yamada", "Taro A. Yamada", true},
		{"Smith John", "John A. Smith", true},
		{"Ｔａｒｏ　Ｙａｍａｄａ", "Taro Yamada", true},
		{"Taro Yamada (CEO)", "Taro Yamada", true},
		{"\"Mr. Taro Yamada\"", "Taro Yamada", true},
		{"Yamada", "Taro Yamada", false},
		{"山田", "山田 太郎", false},
		{"Hanako Yamada", "Taro Yamada", false},
		{"T. Y.", "Taro Yamada", false},
		{"Taro Suzuki", "Taro Yamada", false},
		{"山田 花子", "山田 太郎", false},
		{"", "Taro Yamada", false},
		{"Al", "Al", false},
	} {
		if got := MatchName(c.display, c.vip); got != c.want {
			t.Errorf("MatchName(%q, %q) = %v, want %v", c.display, c.vip, got, c.want)
		}
	}
	if NameKey("山田 太郎") != NameKey("太郎山田") || NameKey("Taro Yamada") != NameKey("yamada TARO") || NameKey("Al") != "" {
		t.Error("NameKey")
	}
	if v, ok := MatchVIP("T. Yamada", []string{"Hanako Suzuki", "Taro Yamada"}); !ok || v != "Taro Yamada" {
		t.Errorf("MatchVIP = %q %v", v, ok)
	}
}

// analyze records history into a memory store and analyzes m against it.
type fixture struct {
	t   *testing.T
	cfg Config
	st  *Memory
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	return &fixture{t: t, st: NewMemory(), now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
		cfg: Config{LocalDomains: []string{"corp.example"}, YoungDays: 14, YoungExchanges: 5,
			ReviveAfter: 90 * 24 * time.Hour, Window: 30 * time.Minute, VIPNames: []string{"山田 太郎", "Taro Yamada"}}}
}

func (f *fixture) msg(id string, dir Direction, from, to string, ago time.Duration) *Message {
	m := &Message{ID: id, Direction: dir, At: f.now.Add(-ago), From: Address{Addr: from}, MailFrom: from,
		Rcpts: []string{to}, To: []Address{{Addr: to}}, MessageID: id + "@mail", Subject: "Inquiry"}
	return m
}

func (f *fixture) record(m *Message) {
	f.t.Helper()
	q := f.cfg.Query(m)
	h, _ := f.st.Lookup(context.Background(), q)
	r := f.cfg.Record(m, h.Parents)
	r.Outcome = OutcomeDelivered
	if err := f.st.Record(context.Background(), r); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) analyze(m *Message) Signals {
	f.t.Helper()
	h, err := f.st.Lookup(context.Background(), f.cfg.Query(m))
	if err != nil {
		f.t.Fatal(err)
	}
	var prot []Domain
	for _, d := range f.cfg.LocalDomains {
		pd, _ := ParseDomain(d)
		prot = append(prot, pd)
	}
	cs, _ := f.st.Correspondents(context.Background(), 100)
	for _, c := range cs {
		if pd, ok := ParseDomain(c.External); ok {
			prot = append(prot, pd)
		}
	}
	return f.cfg.Analyze(m, h, prot)
}

func tags(s Signals) map[reason.Tag]bool {
	out := map[reason.Tag]bool{}
	for _, f := range s.Findings {
		out[f.Tag] = true
	}
	return out
}

func TestRelationshipExchangeType(t *testing.T) {
	f := newFixture(t)
	day := 24 * time.Hour
	stranger, bob := "tanaka@newco.example", "bob@corp.example"
	// 1. A stranger's harmless inquiry: first contact, no payload, no finding.
	inq := f.msg("1", Inbound, stranger, bob, 3*day)
	s := f.analyze(inq)
	if !s.FirstContact || !s.Young || len(s.Findings) != 0 {
		t.Fatalf("inquiry: %+v", s)
	}
	f.record(inq)
	// 2. Our user answers.
	rep := f.msg("2", Outbound, bob, stranger, 2*day)
	rep.InReplyTo = []string{"1@mail"}
	f.record(rep)
	// 3. The stranger sends an encrypted archive: young relationship, first payload.
	pay := f.msg("3", Inbound, stranger, bob, day)
	pay.Flags = FlagAttachment | FlagEncrypted
	pay.InReplyTo = []string{"2@mail"}
	s = f.analyze(pay)
	if s.FirstContact || !s.Young || s.Exchanges != 2 || !s.Known || !tags(s)[reason.FirstContactAttachment] {
		t.Fatalf("payload: %+v", s)
	}
	if tags(s)[reason.ThreadHijack] {
		t.Errorf("the stranger's own thread flagged as hijack: %+v", s.Findings)
	}
	// Re-inspecting the same message after recording it sees the same.
	f.record(pay)
	if s2 := f.analyze(pay); !tags(s2)[reason.FirstContactAttachment] || s2.Exchanges != 2 {
		t.Errorf("re-inspection: %+v", s2)
	}
	// 4. A second attachment is not the first payload any more.
	pay2 := f.msg("4", Inbound, stranger, bob, 0)
	pay2.Flags = FlagAttachment
	if s := f.analyze(pay2); tags(s)[reason.FirstContactAttachment] {
		t.Errorf("second payload flagged: %+v", s.Findings)
	}
}

func TestRelationshipEstablished(t *testing.T) {
	day := 24 * time.Hour
	bob := "bob@corp.example"
	t.Run("old partner", func(t *testing.T) {
		f := newFixture(t)
		p := "sato@partner.example"
		f.record(f.msg("1", Inbound, p, bob, 200*day))
		f.record(f.msg("2", Outbound, bob, p, 199*day))
		m := f.msg("3", Inbound, p, bob, 0)
		m.Flags = FlagAttachment
		if s := f.analyze(m); s.Young || len(s.Findings) != 0 || s.RelationshipDays < 199 {
			t.Errorf("%+v", s)
		}
	})
	t.Run("we wrote first", func(t *testing.T) {
		f := newFixture(t)
		p := "new@vendor.example"
		f.record(f.msg("1", Outbound, bob, p, time.Hour))
		m := f.msg("2", Inbound, p, bob, 0)
		m.Flags = FlagAttachment | FlagEncrypted
		if s := f.analyze(m); s.Young || len(s.Findings) != 0 {
			t.Errorf("%+v", s)
		}
	})
	t.Run("many exchanges", func(t *testing.T) {
		f := newFixture(t)
		p := "busy@fast.example"
		for i := range 5 {
			dir, from, to := Inbound, p, bob
			if i%2 == 1 {
				dir, from, to = Outbound, bob, p
			}
			f.record(f.msg(string(rune('a'+i)), dir, from, to, time.Duration(10-i)*time.Hour))
		}
		m := f.msg("z", Inbound, p, bob, 0)
		m.Flags = FlagAttachment
		if s := f.analyze(m); s.Young || s.Exchanges != 5 || len(s.Findings) != 0 {
			t.Errorf("%+v", s)
		}
	})
	t.Run("new colleague at a known partner", func(t *testing.T) {
		f := newFixture(t)
		f.record(f.msg("1", Outbound, "ann@corp.example", "boss@partner.example", 100*day))
		f.record(f.msg("2", Inbound, "boss@partner.example", "ann@corp.example", 99*day))
		m := f.msg("3", Inbound, "newhire@partner.example", bob, 0)
		m.Flags = FlagAttachment
		if s := f.analyze(m); s.FirstContact || s.Young || len(s.Findings) != 0 {
			t.Errorf("%+v", s)
		}
	})
	t.Run("free-mail domain is no relationship", func(t *testing.T) {
		f := newFixture(t)
		f.record(f.msg("1", Outbound, "ann@corp.example", "friend@gmail.com", 100*day))
		m := f.msg("2", Inbound, "stranger@gmail.com", bob, 0)
		m.Flags = FlagLink
		if s := f.analyze(m); !s.FirstContact || !tags(s)[reason.FirstContactAttachment] {
			t.Errorf("%+v", s)
		}
	})
}

func TestThreadHijack(t *testing.T) {
	day := 24 * time.Hour
	bob, partner := "bob@corp.example", "sato@partner-trading.example"
	setup := func(t *testing.T) *fixture {
		f := newFixture(t)
		a := f.msg("1", Inbound, partner, bob, 30*day)
		a.From.Name = "Sato Ichiro"
		f.record(a)
		b := f.msg("2", Outbound, bob, partner, 9*day)
		b.From.Name, b.InReplyTo, b.References = "Bob Jones", []string{"1@mail"}, []string{"1@mail"}
		f.record(b)
		return f
	}
	reply := func(f *fixture, from, name string) *Message {
		m := f.msg("3", Inbound, from, bob, 0)
		m.From.Name, m.InReplyTo, m.References = name, []string{"2@mail"}, []string{"1@mail", "2@mail"}
		m.Flags = FlagAttachment
		return m
	}
	t.Run("participant replies", func(t *testing.T) {
		f := setup(t)
		s := f.analyze(reply(f, partner, "Sato Ichiro"))
		if !s.Known || s.SilenceDays < 8.9 || len(s.Findings) != 0 {
			t.Errorf("%+v", s)
		}
	})
	t.Run("stranger", func(t *testing.T) {
		f := setup(t)
		s := f.analyze(reply(f, "x@compromised.example", "Someone"))
		if !tags(s)[reason.ThreadHijack] {
			t.Errorf("%+v", s)
		}
	})
	t.Run("participant name, other address", func(t *testing.T) {
		f := setup(t)
		s := f.analyze(reply(f, "sato.ichiro@partner-trading.example", "Ichiro Sato"))
		if !tags(s)[reason.ThreadHijack] || !strings.Contains(s.Findings[0].Detail, "display name") {
			t.Errorf("%+v", s)
		}
	})
	t.Run("lookalike of participant domain", func(t *testing.T) {
		f := setup(t)
		s := f.analyze(reply(f, "sato@partner-tradlng.example", "Sato Ichiro"))
		if tg := tags(s); !tg[reason.ThreadHijack] || !tg[reason.LookalikeDomain] {
			t.Errorf("%+v", s)
		}
	})
	t.Run("colleague of a participant", func(t *testing.T) {
		f := setup(t)
		s := f.analyze(reply(f, "yamamoto@partner-trading.example", "Yamamoto Jiro"))
		if tags(s)[reason.ThreadHijack] {
			t.Errorf("%+v", s)
		}
	})
	t.Run("revived", func(t *testing.T) {
		f := newFixture(t)
		a := f.msg("1", Inbound, partner, bob, 200*day)
		f.record(a)
		m := f.msg("2", Inbound, partner, bob, 0)
		m.InReplyTo, m.Flags = []string{"1@mail"}, FlagAttachment
		if s := f.analyze(m); !tags(s)[reason.ThreadHijack] || s.SilenceDays < 199 {
			t.Errorf("%+v", s)
		}
		m.Flags = 0
		if s := f.analyze(m); tags(s)[reason.ThreadHijack] {
			t.Errorf("revived without attachment flagged: %+v", s)
		}
	})
}

func TestImpersonationAndTrap(t *testing.T) {
	f := newFixture(t)
	bob := "bob@corp.example"
	m := f.msg("1", Inbound, "ceo.office@gmail.com", bob, 0)
	m.From.Name = "山田太郎"
	if s := f.analyze(m); !tags(s)[reason.DisplayNameImpersonation] {
		t.Errorf("VIP: %+v", s)
	}
	// Our own VIP writing from the local domain is not impersonation.
	own := f.msg("2", Inbound, "taro@corp.example", bob, 0)
	own.From.Name = "山田 太郎"
	if s := f.analyze(own); len(s.Findings) != 0 {
		t.Errorf("own VIP: %+v", s)
	}
	// An internal user's name seen on outbound mail.
	out := f.msg("3", Outbound, "hanako@corp.example", "x@partner.example", time.Hour)
	out.From.Name = "Hanako Suzuki"
	f.record(out)
	fake := f.msg("4", Inbound, "hanako.suzuki@outlook.com", bob, 0)
	fake.From.Name = "Suzuki Hanako"
	if s := f.analyze(fake); !tags(s)[reason.DisplayNameImpersonation] {
		t.Errorf("internal name: %+v", s)
	}
	// One of our addresses as the display name of an outside address.
	for i, name := range []string{"keiri@corp.example", "ＫＥＩＲＩ＠ｃｏｒｐ．ｅｘａｍｐｌｅ", "経理部 (keiri@corp.example)"} {
		sp := f.msg(fmt.Sprintf("d%d", i), Inbound, "x@evil.example", bob, 0)
		sp.From.Name = name
		if s := f.analyze(sp); !tags(s)[reason.DisplayNameImpersonation] {
			t.Errorf("display name %q: %+v", name, s)
		}
	}
	for i, c := range []struct {
		name string
		list bool
	}{{"keiri@corp.example", true}, {"sato@partner.example", false}, {"Sato", false}} {
		ok := f.msg(fmt.Sprintf("e%d", i), Inbound, "x@evil.example", bob, 0)
		ok.From.Name, ok.List = c.name, c.list
		if s := f.analyze(ok); tags(s)[reason.DisplayNameImpersonation] {
			t.Errorf("display name %q (list %v) reported: %+v", c.name, c.list, s)
		}
	}
	// A flagged sender.
	if err := f.st.Flag(context.Background(), "spammer@bad.example", f.now, "trap"); err != nil {
		t.Fatal(err)
	}
	sp := f.msg("5", Inbound, "spammer@bad.example", bob, 0)
	s := f.analyze(sp)
	if !tags(s)[reason.TrapRecipient] || s.Findings[0].Detail != "sender flagged by a trap" {
		t.Errorf("flagged: %+v", s)
	}
	// Lookalike of a local domain.
	la := f.msg("6", Inbound, "it@c0rp.example", bob, 0)
	if s := f.analyze(la); !tags(s)[reason.LookalikeDomain] {
		t.Errorf("lookalike: %+v", s)
	}
	// Outbound mail is evidence, never a suspect.
	o := f.msg("7", Outbound, bob, "x@paypa1.com", 0)
	o.From.Name = "Taro Yamada"
	if s := f.analyze(o); len(s.Findings) != 0 {
		t.Errorf("outbound: %+v", s)
	}
}
