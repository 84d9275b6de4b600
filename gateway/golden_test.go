package gateway

// Golden decision tests (STYLE.md §6.9). Each case is a message in
// testdata/NN-name.eml with optional companions:
//
//	NN-name.dns            zone (RFC 1035 master-file text) for the fake
//	                       resolver; "$SERVFAIL [type] name." lines make
//	                       that name fail temporarily
//	NN-name.env            envelope, one "key value" a line: client_ip,
//	                       helo, mail_from, rcpt (repeatable), hold_until
//	                       (RFC 3339: the message is already held)
//	NN-name.hcl            appended to goldenPolicy
//	NN-name.verdicts.json  sandbox verdicts in the store's cache
//	NN-name.want.json      the decision JSON (scan --json), with id and
//	                       took_ms removed and inspected_at on the fixed clock
//
// `go test ./gateway -run Golden -update` rewrites the .want.json files
// (and writes the fixtures of new recipes, see golden_gen_test.go; add
// -regenerate to rebuild them all); review the diff.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/mailguard/mailguard/auth/dnstest"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reason"
	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite the golden .want.json files (and write missing fixtures)")

// goldenCases is the reviewer's table: the reason tag each case exists
// for and the action mailguard must take. The .want.json files hold the
// rest of the decision.
var goldenCases = []struct {
	name   string
	tag    reason.Tag
	action policy.Action
}{
	{"00-clean", reason.Clean, policy.Deliver},
	{"01-spf-fail", reason.SPFFail, policy.Deliver},
	{"02-spf-softfail", reason.SPFSoftfail, policy.Deliver},
	{"03-spf-permerror", reason.SPFPermerror, policy.Deliver},
	{"04-spf-temperror", reason.SPFTemperror, policy.Deliver},
	{"05-dkim-fail", reason.DKIMFail, policy.Deliver},
	{"06-dmarc-reject", reason.DMARCReject, policy.Reject},
	{"07-dmarc-quarantine", reason.DMARCQuarantine, policy.Quarantine},
	{"08-dmarc-none-fail", reason.DMARCNoneFail, policy.Deliver},
	{"09-dmarc-temperror", reason.DMARCTemperror, policy.Tempfail},
	{"10-forged-auth-results", reason.ForgedAuthResults, policy.Deliver},
	{"11-malware-yara", reason.MalwareYARA, policy.Quarantine},
	{"12-encrypted-unscannable", reason.EncryptedUnscannable, policy.Quarantine},
	{"13-password-found-body", reason.PasswordFoundBody, policy.Deliver},
	{"14-archive-bomb", reason.ArchiveBomb, policy.Quarantine},
	{"15-archive-depth", reason.ArchiveDepth, policy.Quarantine},
	{"16-exec-attachment", reason.ExecAttachment, policy.Quarantine},
	{"17-double-extension", reason.DoubleExtension, policy.Quarantine},
	{"18-rtlo-filename", reason.RTLOFilename, policy.Quarantine},
	{"19-macro-document", reason.MacroDocument, policy.Quarantine},
	{"20-lnk-in-container", reason.LNKInContainer, policy.Quarantine},
	{"21-html-smuggling", reason.HTMLSmuggling, policy.Quarantine},
	{"22-pdf-active-content", reason.PDFActiveContent, policy.Deliver},
	{"23-onenote-embedded-file", reason.OneNoteEmbeddedFile, policy.Quarantine},
	{"24-unsupported-container", reason.UnsupportedContainer, policy.Quarantine},
	{"25-path-traversal", reason.PathTraversal, policy.Tag},
	{"26-malformed-mime", reason.MalformedMIME, policy.Quarantine},
	{"27-trap-recipient", reason.TrapRecipient, policy.Quarantine},
	{"28-blocked-sender", reason.BlockedSender, policy.Reject},
	{"29-blocked-file", reason.BlockedFile, policy.Quarantine},
	{"30-ip-blocklisted", reason.IPBlocklisted, policy.Reject},
	{"31-url-blocklisted", reason.URLBlocklisted, policy.Quarantine},
	{"32-malware-sandbox", reason.MalwareSandbox, policy.Quarantine},
	{"33-sandbox-timeout", reason.SandboxTimeout, policy.Quarantine},
	{"34-sandbox-pending", reason.ExecAttachment, policy.Hold},
	{"35-malformed-minor", reason.MalformedMIME, policy.Deliver},
	{"36-remote-template", reason.RemoteTemplate, policy.Quarantine},
	{"37-exploit-object", reason.ExploitObject, policy.Quarantine},
	{"38-credential-form", reason.CredentialForm, policy.Quarantine},
	// 40–49 are kept for the conversation tags (thread_hijack,
	// first_contact_attachment, lookalike_domain,
	// display_name_impersonation, password_found_thread), whose stage is
	// being written (gateway/thread.go).
}

// goldenTools are the tools a case's decision depends on: without 7z the
// unsupported method is reported in other words.
var goldenTools = map[string][]string{"24-unsupported-container": {"7z"}}

// goldenNotYet are contract tags no stage produces today.
var goldenNotYet = map[reason.Tag]string{
	reason.ThreadHijack:             "conversation stage not written yet",
	reason.FirstContactAttachment:   "conversation stage not written yet",
	reason.LookalikeDomain:          "conversation stage not written yet",
	reason.DisplayNameImpersonation: "conversation stage not written yet",
	reason.PasswordFoundThread:      "conversation stage not written yet",
}

// goldenPolicy is the base policy of every case; %s is the repository's
// rules directory. The conversation memory is off so that each case shows
// its own tag (with an empty memory every sender is a first contact); the
// conversation cases turn it on in their .hcl.
const goldenPolicy = `
gateway {
  hostname          = "mx.corp.example"
  listen            = ["127.0.0.1:0"]
  local_domains     = ["corp.example"]
  internal_networks = ["10.0.0.0/8"]
}
store { path = "./var" }
yara { rules = ["%s/*.yar"] }
conversations { enabled = false }
`

// goldenNow is the clock of every case.
var goldenNow = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// TestGoldenCoverage: every tag of the vocabulary has a golden case or a
// stated reason why it cannot be produced yet, and the table and the
// testdata directory list the same cases.
func TestGoldenCoverage(t *testing.T) {
	covered := map[reason.Tag]bool{}
	for _, c := range goldenCases {
		covered[c.tag] = true
	}
	for _, tag := range append(slices.Clone(reason.Contract), reason.Extra...) {
		if !covered[tag] && goldenNotYet[tag] == "" {
			t.Errorf("reason tag %s has no golden case", tag)
		}
		if covered[tag] && goldenNotYet[tag] != "" {
			t.Errorf("reason tag %s has a golden case: remove it from goldenNotYet", tag)
		}
	}
	if *update {
		generateGolden(t)
	}
	emls, _ := filepath.Glob("testdata/*.eml")
	var onDisk, inTable, recipes []string
	for _, e := range emls {
		onDisk = append(onDisk, strings.TrimSuffix(filepath.Base(e), ".eml"))
	}
	for _, c := range goldenCases {
		inTable = append(inTable, c.name)
	}
	for _, r := range goldenRecipes {
		recipes = append(recipes, r.name)
	}
	if d := cmp.Diff(inTable, onDisk); d != "" {
		t.Errorf("goldenCases and testdata/*.eml differ (-table +disk):\n%s", d)
	}
	if d := cmp.Diff(inTable, recipes); d != "" {
		t.Errorf("goldenCases and goldenRecipes differ (-table +recipes):\n%s", d)
	}
}

func TestGolden(t *testing.T) {
	if *update {
		generateGolden(t)
	}
	rules, err := filepath.Abs("../rules")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			need(t, goldenTools[c.name]...)
			rep := runGolden(t, c.name, rules)
			defer rep.Close()
			if rep.Action != c.action {
				t.Errorf("%s → %s (rule %q, reasons %v), want %s", c.tag, rep.Action, rep.Rule, rep.Reasons, c.action)
			}
			if !slices.Contains(rep.Reasons, c.tag) {
				t.Errorf("reasons %v lack %s", rep.Reasons, c.tag)
			}
			checkGoldenJSON(t, c.name, rep)
		})
	}
}

// runGolden inspects one case as `mailguard scan` would (offline: nothing
// recorded, nothing submitted) on a fixed clock.
func runGolden(t *testing.T, name, rules string) *Report {
	t.Helper()
	base := filepath.Join("testdata", name)
	msg := readFile(t, base+".eml")
	env := loadEnv(t, base+".env")
	r := loadZone(t, base+".dns")
	extra, err := os.ReadFile(base + ".hcl")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ppath := filepath.Join(dir, "policy.hcl")
	if err := os.WriteFile(ppath, []byte(fmt.Sprintf(goldenPolicy, rules)+string(extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	p, diags := policy.Load(ppath)
	if diags.HasErrors() {
		t.Fatalf("policy:\n%s", policy.FormatDiagnostics(diags))
	}
	clk := &clock{t: goldenNow}
	st, err := sqlite.Open(filepath.Join(dir, "var"), sqlite.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	loadVerdicts(t, st, base+".verdicts.json")
	g, err := New(Options{Policy: p, Store: st, Sandbox: st.Sandbox(), Resolver: r, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	e := Envelope{ID: "golden-" + name, ClientIP: env.ip, HELO: env.helo, MailFrom: env.mailFrom, Rcpts: env.rcpts,
		Received: clk.now(), Direction: Direction(p, env.ip, env.rcpts)}
	rep, err := g.Inspect(context.Background(), e, bytes.NewReader(msg), int64(len(msg)),
		InspectOptions{Offline: true, HoldUntil: env.holdUntil})
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return rep
}

// checkGoldenJSON compares the report with NN-name.want.json, or writes
// it with -update.
func checkGoldenJSON(t *testing.T, name string, rep *Report) {
	t.Helper()
	got := goldenJSON(t, rep)
	path := filepath.Join("testdata", name+".want.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")); d != "" {
		t.Errorf("decision JSON differs from %s (-want +got):\n%s", path, d)
	}
}

// goldenJSON is the report as `scan --json` prints it, without the
// volatile fields.
func goldenJSON(t *testing.T, rep *Report) []byte {
	t.Helper()
	cp := *rep
	cp.ID, cp.TookMS = "", 0
	b, err := json.Marshal(&cp)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "took_ms")
	// Re-encode in the struct's field order, for readable diffs.
	var out bytes.Buffer
	out.WriteString("{\n")
	keys := jsonKeys(t, b)
	n := 0
	for _, k := range keys {
		v, ok := doc[k]
		if !ok {
			continue
		}
		if n > 0 {
			out.WriteString(",\n")
		}
		n++
		var ind bytes.Buffer
		if err := json.Indent(&ind, v, "  ", "  "); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "  %q: %s", k, ind.Bytes())
	}
	out.WriteString("\n}\n")
	return out.Bytes()
}

// jsonKeys returns the top-level keys of a JSON object in document order.
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// goldenEnv is a case's envelope.
type goldenEnv struct {
	ip        netip.Addr
	helo      string
	mailFrom  string
	rcpts     []string
	holdUntil time.Time
}

// loadEnv reads NN-name.env; a missing file or key takes the default of
// a mail from Alice at partner.example, sent from its own network to Bob.
func loadEnv(t *testing.T, path string) goldenEnv {
	t.Helper()
	e := goldenEnv{ip: netip.MustParseAddr("198.51.100.7"), helo: "mail.partner.example", mailFrom: "alice@partner.example"}
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		v = strings.TrimSpace(v)
		switch k {
		case "client_ip":
			e.ip, err = netip.ParseAddr(v)
		case "helo":
			e.helo = v
		case "mail_from":
			e.mailFrom = v
		case "rcpt":
			e.rcpts = append(e.rcpts, v)
		case "hold_until":
			e.holdUntil, err = time.Parse(time.RFC3339, v)
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
	}
	if len(e.rcpts) == 0 {
		e.rcpts = []string{"bob@corp.example"}
	}
	return e
}

// loadZone reads NN-name.dns into a fake resolver with miekg/dns's zone
// parser. A missing file is an empty zone (every name NXDOMAIN).
func loadZone(t testing.TB, path string) *dnstest.Resolver {
	t.Helper()
	r := &dnstest.Resolver{TXT: map[string][]string{}, A: map[string][]string{}, AAAA: map[string][]string{},
		MX: map[string][]*net.MX{}, PTR: map[string][]string{}, CNAME: map[string]string{}}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return r
	}
	if err != nil {
		t.Fatal(err)
	}
	// $SERVFAIL is ours, not RFC 1035's: take those lines out (keeping the
	// line numbers of the rest) before the parser sees them.
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "$SERVFAIL "); ok {
			r.Temporary = append(r.Temporary, strings.TrimSpace(rest))
			lines[i] = ""
		}
	}
	zp := dns.NewZoneParser(strings.NewReader(strings.Join(lines, "\n")), ".", path)
	zp.SetDefaultTTL(3600)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		switch rr := rr.(type) {
		case *dns.TXT:
			r.TXT[name] = append(r.TXT[name], strings.Join(rr.Txt, ""))
		case *dns.A:
			r.A[name] = append(r.A[name], rr.A.String())
		case *dns.AAAA:
			r.AAAA[name] = append(r.AAAA[name], rr.AAAA.String())
		case *dns.MX:
			r.MX[name] = append(r.MX[name], &net.MX{Host: rr.Mx, Pref: rr.Preference})
		case *dns.PTR:
			r.PTR[name] = append(r.PTR[name], rr.Ptr)
		case *dns.CNAME:
			r.CNAME[name] = rr.Target
		default:
			t.Fatalf("%s: record type %s is not supported by the loader", path, dns.TypeToString[rr.Header().Rrtype])
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// loadVerdicts puts NN-name.verdicts.json into the store's verdict cache.
func loadVerdicts(t *testing.T, st *sqlite.DB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var vs []sandbox.Verdict
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, v := range vs {
		if err := st.Sandbox().PutVerdict(context.Background(), v, goldenNow.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}
