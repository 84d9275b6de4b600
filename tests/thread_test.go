package tests

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Conversation tests (issue 7): several messages in both directions
// through the real binary. Outbound mail comes from an internal network
// (XCLIENT ADDR=10.1.2.3 from loopback, a trusted proxy in the test
// policy); inbound mail from loopback itself.

// eicar is the EICAR test string, assembled at run time.
var eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}` + `$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// convGateway starts a gateway with YARA rules, the conversation settings
// and lists of the test, relaying both ways into sinks.
type convEnv struct {
	g       *gateway
	in, out *sink
	dir     string
	seq     int
}

func startConv(t *testing.T, conversations, lists string, inbound string) *convEnv {
	t.Helper()
	need(t, "swaks", "smtp-sink", "zip")
	rules, err := filepath.Abs("../rules/*.yar")
	if err != nil {
		t.Fatal(err)
	}
	e := &convEnv{dir: t.TempDir(), out: startSink(t, "")}
	if inbound == "" {
		e.in = startSink(t, "")
		inbound = e.in.addr
	}
	extra := fmt.Sprintf("yara { rules = [%q] }\nconversations {\n%s\n}\nlists {\n%s\n}\n", rules, conversations, lists)
	e.g = startGateway(t, policyVars{Inbound: inbound, Outbound: e.out.addr, Extra: extra})
	return e
}

// mail is one test message.
type mail struct {
	from, name, to   string
	subject, body    string
	msgid, inReplyTo string
	references       []string
	attachName       string
	attachType       string
	attach           []byte
	outbound         bool // sent from the internal network
}

// send sends m and returns its mailguard ID.
func (e *convEnv) send(t *testing.T, m mail) string {
	t.Helper()
	e.seq++
	var b strings.Builder
	from := m.from
	if m.name != "" {
		from = fmt.Sprintf("=?UTF-8?B?%s?= <%s>", base64.StdEncoding.EncodeToString([]byte(m.name)), m.from)
	}
	fmt.Fprintf(&b, "From: %s\nTo: %s\nSubject: =?UTF-8?B?%s?=\nDate: %s\nMessage-ID: <%s>\nMIME-Version: 1.0\n",
		from, m.to, base64.StdEncoding.EncodeToString([]byte(m.subject)), time.Now().Format(time.RFC1123Z), m.msgid)
	if m.inReplyTo != "" {
		fmt.Fprintf(&b, "In-Reply-To: <%s>\n", m.inReplyTo)
	}
	if len(m.references) > 0 {
		fmt.Fprintf(&b, "References: <%s>\n", strings.Join(m.references, "> <"))
	}
	body := base64.StdEncoding.EncodeToString([]byte(m.body))
	if m.attach == nil {
		fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n%s\n", wrap(body))
	} else {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"BOUNDARY\"\n\n--BOUNDARY\n"+
			"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n%s\n--BOUNDARY\n"+
			"Content-Type: %s; name=\"%s\"\nContent-Disposition: attachment; filename=\"%s\"\nContent-Transfer-Encoding: base64\n\n%s\n--BOUNDARY--\n",
			wrap(body), m.attachType, m.attachName, m.attachName, wrap(base64.StdEncoding.EncodeToString(m.attach)))
	}
	file := writeMessage(t, e.dir, fmt.Sprintf("m%d.eml", e.seq), b.String())
	args := []string{}
	if m.outbound {
		args = append(args, "--xclient-addr", "10.1.2.3")
	}
	out := send(t, e.g.addr, m.from, m.to, file, args...)
	id := queuedID(out)
	if id == "" {
		t.Fatalf("no mailguard ID in the transcript:\n%s", out)
	}
	return id
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

// shown is the part of `quarantine show --json` the tests read.
type shown struct {
	State   string   `json:"state"`
	Action  string   `json:"action"`
	Reasons []string `json:"reasons"`
	Files   []struct {
		Name           string `json:"name"`
		Encrypted      bool   `json:"encrypted"`
		Decrypted      bool   `json:"decrypted"`
		PasswordSource string `json:"password_source"`
	} `json:"files"`
	Findings []struct {
		Tag    string `json:"tag"`
		Detail string `json:"detail"`
	} `json:"findings"`
	Audit []struct {
		Actor  string `json:"actor"`
		Action string `json:"action"`
		Detail string `json:"detail"`
	} `json:"audit"`
	raw string
}

func (e *convEnv) show(t *testing.T, id string) shown {
	t.Helper()
	out, err := e.g.mg("quarantine", "show", id, "--json")
	if err != nil {
		t.Fatalf("quarantine show %s: %v", id, err)
	}
	var s shown
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("show %s: %v\n%s", id, err, out)
	}
	s.raw = out
	return s
}

// waitState waits until the message is in one of the states.
func (e *convEnv) waitState(t *testing.T, id string, d time.Duration, states ...string) shown {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := e.show(t, id)
		if slices.Contains(states, s.State) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s after %s, want %v:\n%s", id, s.State, d, states, s.raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s shown) has(tag string) bool { return slices.Contains(s.Reasons, tag) }

func (s shown) passwordSource() string {
	for _, f := range s.Files {
		if f.Encrypted && f.Decrypted {
			return f.PasswordSource
		}
	}
	return ""
}

// encryptedZip makes a zip -P archive of the given files.
func encryptedZip(t *testing.T, password string, files map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-q", "-j", "-P", password, filepath.Join(dir, "out.zip")}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	if out, err := exec.Command("zip", args...).CombinedOutput(); err != nil {
		t.Fatalf("zip: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.zip"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ooxml builds a minimal Office Open XML package.
func ooxml(t *testing.T, contentType, main string, extra map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	put := func(name string, data []byte) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	vba := ""
	for n := range extra {
		if strings.HasSuffix(n, ".bin") {
			vba = `<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>`
		}
	}
	put("[Content_Types].xml", []byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">`+
		`<Override PartName="/`+main+`" ContentType="`+contentType+`"/>`+vba+`</Types>`))
	put("_rels/.rels", []byte(`<Relationships/>`))
	put(main, []byte(`<?xml version="1.0"?><root/>`))
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		put(n, extra[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const (
	bob       = "bob@corp.example"
	zipType   = "application/zip"
	docmType  = "application/vnd.ms-word.document.macroEnabled.12"
	xlsxType  = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	wordMacro = "application/vnd.ms-word.document.macroEnabled.main+xml"
	xlsxMain  = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
)

// TestThreadExchangeTypePPAP: a stranger's inquiry, our user's reply, then
// an encrypted archive (EICAR inside) whose password follows in a second
// mail. The archive waits; the password mail opens it (password_source
// "thread"), YARA finds EICAR, and both mails are quarantined.
func TestThreadExchangeTypePPAP(t *testing.T) {
	e := startConv(t, `password_window = "60s"`, "", "")
	stranger := "tanaka@newco-trading.example"
	inq := e.send(t, mail{from: stranger, name: "田中 一郎", to: bob, subject: "製品についてのお問い合わせ",
		body: "はじめまして。御社の製品について伺いたく、ご連絡いたしました。", msgid: "inq1@newco-trading.example"})
	e.waitState(t, inq, 20*time.Second, "queued", "delivered")
	e.send(t, mail{from: bob, name: "Bob", to: stranger, subject: "Re: 製品についてのお問い合わせ", outbound: true,
		body: "お問い合わせありがとうございます。資料をお送りください。", msgid: "rep1@corp.example",
		inReplyTo: "inq1@newco-trading.example", references: []string{"inq1@newco-trading.example"}})
	pw := "Xk9-pass42"
	arch := e.send(t, mail{from: stranger, name: "田中 一郎", to: bob, subject: "Re: 製品についてのお問い合わせ",
		body: "資料を添付いたします。パスワードは別途お送りします。", msgid: "arc1@newco-trading.example",
		inReplyTo: "rep1@corp.example", references: []string{"inq1@newco-trading.example", "rep1@corp.example"},
		attachName: "資料.zip", attachType: zipType, attach: encryptedZip(t, pw, map[string]string{"invoice.com": eicar})})
	held := e.waitState(t, arch, 20*time.Second, "held")
	if !held.has("encrypted_unscannable") {
		t.Errorf("held archive reasons %v, want encrypted_unscannable", held.Reasons)
	}
	pwm := e.send(t, mail{from: stranger, name: "田中 一郎", to: bob, subject: "【パスワード】Re: 製品についてのお問い合わせ",
		body: "先ほどお送りしたファイルのパスワードをお知らせします。\nパスワード：" + pw + "\n", msgid: "pw1@newco-trading.example",
		inReplyTo: "arc1@newco-trading.example"})
	a := e.waitState(t, arch, 30*time.Second, "quarantined", "queued", "delivered")
	if a.State != "quarantined" || !a.has("malware_yara") || !a.has("password_found_thread") {
		t.Errorf("archive: state %s reasons %v, want quarantined with malware_yara and password_found_thread\n%s", a.State, a.Reasons, a.raw)
	}
	if src := a.passwordSource(); src != "thread" {
		t.Errorf("password_source = %q, want thread", src)
	}
	p := e.waitState(t, pwm, 30*time.Second, "quarantined", "queued", "delivered")
	if p.State != "quarantined" || !strings.Contains(p.raw, "password mail for the archive of message "+arch) {
		t.Errorf("password mail: state %s reasons %v, want quarantined with its archive\n%s", p.State, p.Reasons, p.raw)
	}
	if strings.Contains(a.raw, pw) || strings.Contains(p.raw, pw) {
		t.Error("the password appears in a decision")
	}
	for _, l := range e.g.events() {
		if strings.Contains(l, pw) {
			t.Errorf("the password appears in the event log: %s", l)
		}
	}
	if strings.Contains(e.g.log.String(), pw) {
		t.Error("the password appears in the log")
	}
	// Only the inquiry reached the mailbox.
	time.Sleep(time.Second)
	if n := len(e.in.messages()); n != 1 {
		t.Errorf("%d inbound messages delivered, want only the inquiry", n)
	}
}

// TestThreadPasswordFirst: the password mail arrives before its archive
// (from a correspondent our user wrote to first); the archive is opened
// with the thread password at once and, clean, delivered.
func TestThreadPasswordFirst(t *testing.T) {
	e := startConv(t, `password_window = "60s"`, "", "")
	vendor := "suzuki@vendor-supply.example"
	e.send(t, mail{from: bob, to: vendor, subject: "見積書のお願い", body: "見積書をお送りください。", msgid: "ask@corp.example", outbound: true})
	pwm := e.send(t, mail{from: vendor, to: bob, subject: "パスワードのお知らせ", body: "パスワード：Qw3rty-99\n", msgid: "pw@vendor-supply.example"})
	e.waitState(t, pwm, 20*time.Second, "queued", "delivered")
	arch := e.send(t, mail{from: vendor, to: bob, subject: "見積書", body: "見積書を添付いたします。", msgid: "est@vendor-supply.example",
		attachName: "見積書.zip", attachType: zipType, attach: encryptedZip(t, "Qw3rty-99", map[string]string{"estimate.txt": "Estimate: 100 units"})})
	a := e.waitState(t, arch, 20*time.Second, "queued", "delivered", "held", "quarantined")
	if a.State != "queued" && a.State != "delivered" || !a.has("password_found_thread") || a.passwordSource() != "thread" {
		t.Errorf("archive: state %s reasons %v source %q, want delivered, opened with the thread password\n%s",
			a.State, a.Reasons, a.passwordSource(), a.raw)
	}
	waitFiles(t, e.in.messages, 2, 30*time.Second)
}

// TestThreadNoPasswordThenUnlock: no password ever comes: after the window
// the archive is quarantined as encrypted_unscannable; an operator then
// unlocks it with the password, it is decided again and delivered.
func TestThreadNoPasswordThenUnlock(t *testing.T) {
	e := startConv(t, `password_window = "3s"`, "", "")
	vendor := "kato@longtime-vendor.example"
	e.send(t, mail{from: bob, to: vendor, subject: "request", body: "please send the file", msgid: "rq@corp.example", outbound: true})
	arch := e.send(t, mail{from: vendor, to: bob, subject: "file", body: "attached; password follows.", msgid: "f@longtime-vendor.example",
		attachName: "file.zip", attachType: zipType, attach: encryptedZip(t, "Unl0ck-me", map[string]string{"report.txt": "quarterly report"})})
	h := e.waitState(t, arch, 20*time.Second, "held", "quarantined")
	if h.State != "held" {
		t.Fatalf("archive not held for its password: %s %v", h.State, h.Reasons)
	}
	q := e.waitState(t, arch, 30*time.Second, "quarantined", "queued", "delivered")
	if q.State != "quarantined" || !q.has("encrypted_unscannable") {
		t.Fatalf("after the window: state %s reasons %v, want quarantined encrypted_unscannable", q.State, q.Reasons)
	}
	if _, err := e.g.mg("quarantine", "unlock", arch, "--password", "wrong-one", "--note", "try"); err != nil {
		t.Fatalf("unlock with a wrong password: %v", err)
	}
	if s := e.show(t, arch); s.State != "quarantined" {
		t.Errorf("a wrong password changed the state to %s", s.State)
	}
	out, err := e.g.mg("quarantine", "unlock", arch, "--password", "Unl0ck-me", "--note", "password from the sender by phone")
	if err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if strings.Contains(out, "Unl0ck-me") {
		t.Error("unlock printed the password")
	}
	u := e.waitState(t, arch, 10*time.Second, "queued", "delivered")
	if u.passwordSource() != "policy" || u.has("encrypted_unscannable") {
		t.Errorf("after unlock: source %q reasons %v", u.passwordSource(), u.Reasons)
	}
	unlocks := 0
	for _, a := range u.Audit {
		if a.Action == "unlock" {
			unlocks++
		}
	}
	if unlocks != 2 {
		t.Errorf("%d unlock audits, want 2: %+v", unlocks, u.Audit)
	}
	msgs := waitFiles(t, e.in.messages, 1, 30*time.Second)
	if !strings.Contains(strings.Join(msgs, ""), "X-Mailguard-Id: "+arch) {
		t.Error("the unlocked message was not delivered")
	}
	// A delivered message cannot be unlocked.
	if _, err := e.g.mg("quarantine", "unlock", arch, "--password", "x"); err == nil {
		t.Error("unlock of a queued/delivered message succeeded")
	}
}

// TestThreadHijackLookalike: a thread between our user and a partner; a
// reply into it from a lookalike of the partner's domain, carrying a macro
// document, is quarantined as thread_hijack with lookalike_domain.
func TestThreadHijackLookalike(t *testing.T) {
	e := startConv(t, "", "", "")
	partner := "sato@partner-trading.example"
	e.send(t, mail{from: partner, name: "Sato Ichiro", to: bob, subject: "Order 2291", body: "Please confirm the order.", msgid: "o1@partner-trading.example"})
	e.send(t, mail{from: bob, to: partner, subject: "Re: Order 2291", body: "Confirmed.", msgid: "o2@corp.example", outbound: true,
		inReplyTo: "o1@partner-trading.example", references: []string{"o1@partner-trading.example"}})
	docm := ooxml(t, wordMacro, "word/document.xml", map[string][]byte{"word/vbaProject.bin": []byte("not really OLE")})
	id := e.send(t, mail{from: "sato@partner-tradlng.example", name: "Sato Ichiro", to: bob, subject: "Re: Order 2291",
		body: "Please see the updated order.", msgid: "o3@partner-tradlng.example", inReplyTo: "o2@corp.example",
		references: []string{"o1@partner-trading.example", "o2@corp.example"}, attachName: "order.docm", attachType: docmType, attach: docm})
	s := e.waitState(t, id, 20*time.Second, "quarantined", "queued", "delivered", "held")
	if s.State != "quarantined" || !s.has("thread_hijack") || !s.has("lookalike_domain") {
		t.Errorf("hijack: state %s reasons %v\n%s", s.State, s.Reasons, s.raw)
	}
	// The genuine partner replying in the same thread is not a hijack.
	ok := e.send(t, mail{from: partner, name: "Sato Ichiro", to: bob, subject: "Re: Order 2291", body: "Thanks.",
		msgid: "o4@partner-trading.example", inReplyTo: "o2@corp.example", references: []string{"o1@partner-trading.example", "o2@corp.example"}})
	if s := e.waitState(t, ok, 20*time.Second, "queued", "delivered", "quarantined", "held"); s.State != "queued" && s.State != "delivered" || s.has("thread_hijack") {
		t.Errorf("genuine reply: %s %v", s.State, s.Reasons)
	}
}

// TestThreadVIPImpersonation: a VIP's name from a free-mail address.
func TestThreadVIPImpersonation(t *testing.T) {
	e := startConv(t, "", `vip_names = ["山田 太郎", "Hanako Suzuki"]`, "")
	id := e.send(t, mail{from: "yamada.taro.ceo@gmail.com", name: "山田太郎", to: bob, subject: "至急",
		body: "至急対応してほしい件があります。", msgid: "v1@gmail.example"})
	s := e.waitState(t, id, 20*time.Second, "quarantined", "queued", "delivered")
	if s.State != "quarantined" || !s.has("display_name_impersonation") {
		t.Errorf("VIP: state %s reasons %v", s.State, s.Reasons)
	}
	other := e.send(t, mail{from: "someone@gmail.com", name: "山田 花子", to: bob, subject: "hello", body: "hi", msgid: "v2@gmail.example"})
	if s := e.waitState(t, other, 20*time.Second, "quarantined", "queued", "delivered"); s.has("display_name_impersonation") {
		t.Errorf("another name flagged: %v", s.Reasons)
	}
}

// TestThreadTrapFlagsSender: a sender's queued message (downstream down),
// then its mail to a trap address: both are quarantined, and so is its
// next message.
func TestThreadTrapFlagsSender(t *testing.T) {
	e := startConv(t, "", `trap_addresses = ["trap@corp.example"]`, freePort(t))
	spam := "offers@bulk-mailer.example"
	first := e.send(t, mail{from: spam, to: bob, subject: "offer", body: "buy now", msgid: "s1@bulk-mailer.example"})
	e.waitState(t, first, 20*time.Second, "queued")
	trap := e.send(t, mail{from: spam, to: "trap@corp.example", subject: "offer", body: "buy now", msgid: "s2@bulk-mailer.example"})
	if s := e.waitState(t, trap, 20*time.Second, "quarantined", "queued"); s.State != "quarantined" || !s.has("trap_recipient") {
		t.Errorf("trap mail: %s %v", s.State, s.Reasons)
	}
	s := e.waitState(t, first, 20*time.Second, "quarantined", "delivered")
	found := false
	for _, a := range s.Audit {
		if a.Actor == "mailguard" && a.Action == "quarantine" && a.Detail == "sender flagged by trap" {
			found = true
		}
	}
	if s.State != "quarantined" || !found {
		t.Errorf("earlier message: %s audit %+v", s.State, s.Audit)
	}
	next := e.send(t, mail{from: spam, to: "alice@corp.example", subject: "offer 2", body: "buy more", msgid: "s3@bulk-mailer.example"})
	n := e.waitState(t, next, 20*time.Second, "quarantined", "queued")
	if n.State != "quarantined" || !n.has("trap_recipient") || !strings.Contains(n.raw, "sender flagged by a trap") {
		t.Errorf("later message: %s %v", n.State, n.Reasons)
	}
	other := e.send(t, mail{from: "friend@elsewhere.example", to: bob, subject: "hi", body: "hello", msgid: "f1@elsewhere.example"})
	if s := e.waitState(t, other, 20*time.Second, "queued", "quarantined"); s.State != "queued" {
		t.Errorf("an unrelated sender was caught: %s %v", s.State, s.Reasons)
	}
}

// TestThreadLongStandingPartner: several exchanges both ways, started by
// our user; the partner's spreadsheet is delivered without hold or
// first-contact finding, while the same file from a stranger carries
// first_contact_attachment.
func TestThreadLongStandingPartner(t *testing.T) {
	e := startConv(t, "", "", "")
	partner := "ito@old-partner.example"
	prev := ""
	for i := range 6 {
		m := mail{subject: "Re: project", body: fmt.Sprintf("message %d", i), msgid: fmt.Sprintf("lp%d@x.example", i), inReplyTo: prev}
		if i%2 == 0 {
			m.from, m.to, m.outbound = bob, partner, true
		} else {
			m.from, m.to = partner, bob
		}
		id := e.send(t, m)
		e.waitState(t, id, 20*time.Second, "queued", "delivered")
		prev = m.msgid
	}
	xlsx := ooxml(t, xlsxMain, "xl/workbook.xml", map[string][]byte{"xl/worksheets/sheet1.xml": []byte(`<worksheet/>`)})
	id := e.send(t, mail{from: partner, to: bob, subject: "Re: project", body: "figures attached", msgid: "lpx@x.example",
		inReplyTo: prev, attachName: "figures.xlsx", attachType: xlsxType, attach: xlsx})
	s := e.waitState(t, id, 20*time.Second, "queued", "delivered", "held", "quarantined")
	if s.State != "queued" && s.State != "delivered" || s.has("first_contact_attachment") || s.has("thread_hijack") {
		t.Errorf("partner's spreadsheet: %s %v", s.State, s.Reasons)
	}
	st := e.send(t, mail{from: "new@unknown-co.example", to: bob, subject: "figures", body: "figures attached", msgid: "st@x.example",
		attachName: "figures.xlsx", attachType: xlsxType, attach: xlsx})
	if s := e.waitState(t, st, 20*time.Second, "queued", "delivered", "held", "quarantined"); !s.has("first_contact_attachment") {
		t.Errorf("stranger's spreadsheet: %s %v", s.State, s.Reasons)
	}
}
