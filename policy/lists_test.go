package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

// decide evaluates f under p and checks action and deciding rule.
func decide(t *testing.T, p *Policy, f *Facts, want Action, wantRule string) Decision {
	t.Helper()
	d := p.Evaluate(f)
	if d.Action != want || d.Rule != wantRule {
		t.Errorf("rcpts %v ip %v findings %v: %s by %q, want %s by %q (errors %v)",
			f.Rcpts, f.ClientIP, f.Tags(), d.Action, d.Rule, want, wantRule, d.Errors)
	}
	return d
}

func TestRcptDomains(t *testing.T) {
	p := mustParse(t, minimal+`
rule "sales-only" {
  when           = length(rcpt_domains) == 1 && rcpt_domains[0] == "sales.corp.example"
  action         = "tag"
  subject_prefix = "[SALES] "
}
rule "subsidiary" {
  when   = anytrue([for d in rcpt_domains : domain_match(d, "subsidiary.example")])
  action = "hold"
}
rule "two-domains" {
  when   = length(rcpt_domains) == 2 && rcpt_domains[0] == "corp.example"
  action = "quarantine"
  reason = "split_recipients"
}
`)
	rc := func(rcpts ...string) *Facts {
		f := facts()
		f.Rcpts = rcpts
		return f
	}
	// Domains are lowercased, without the trailing dot, deduplicated.
	decide(t, p, rc("a@Sales.Corp.Example", "b@sales.corp.example."), Tag, "sales-only")
	decide(t, p, rc("a@eu.subsidiary.example"), Hold, "subsidiary")
	decide(t, p, rc("a@notsubsidiary.example"), Deliver, "")
	// Sorted: corp.example before sales.corp.example whatever the order.
	decide(t, p, rc("a@sales.corp.example", "b@CORP.example", "c@corp.example"), Quarantine, "two-domains")
	decide(t, p, rc("bob@corp.example"), Deliver, "")
	decide(t, p, rc(), Deliver, "")
}

func TestRcptGroups(t *testing.T) {
	p := mustParse(t, minimal+`
lists {
  groups = {
    finance = ["keiri@corp.example", "CFO@corp.example"]
    hr      = ["jinji@corp.example"]
  }
}
rule "finance-locked" {
  when   = contains(rcpt_groups, "finance") && anytrue([for f in files : f.encrypted && !f.decrypted])
  action = "quarantine"
  reason = "encrypted_unscannable"
}
rule "both" {
  when   = length(rcpt_groups) == 2 && rcpt_groups[0] == "finance" && rcpt_groups[1] == "hr"
  action = "hold"
}
rule "hr" {
  when   = contains(rcpt_groups, "hr")
  action = "tag"
}
`)
	rc := func(encrypted bool, rcpts ...string) *Facts {
		f := facts()
		f.Rcpts = rcpts
		if encrypted {
			f.Files = []FileFacts{{Name: "a.zip", Encrypted: true}}
		}
		return f
	}
	d := decide(t, p, rc(true, "cfo@CORP.example"), Quarantine, "finance-locked")
	if !slices.Equal(d.Reasons, []reason.Tag{reason.EncryptedUnscannable}) {
		t.Errorf("reasons %v", d.Reasons)
	}
	decide(t, p, rc(false, "keiri@corp.example"), Deliver, "")
	// Membership is by exact address: no subaddress, no other domain.
	decide(t, p, rc(true, "keiri+x@corp.example", "keiri@corp.example.evil.example"), Deliver, "")
	// Group order is stable (sorted) although the groups are a map.
	for range 20 {
		decide(t, p, rc(false, "jinji@corp.example", "keiri@corp.example"), Hold, "both")
	}
	decide(t, p, rc(false, "jinji@corp.example"), Tag, "hr")
}

func TestAllowAndBlockNetworks(t *testing.T) {
	p := mustParse(t, minimal+`lists {
  allow_networks = ["198.51.100.0/24", "2001:db8:600d::/48"]
  block_networks = ["198.51.100.66", "2001:db8:bad::/48"]
}`)
	ip := func(s string, tags ...reason.Tag) *Facts {
		f := facts(tags...)
		f.ClientIP = netip.MustParseAddr(s)
		return f
	}
	// Allowed networks skip the softer checks…
	decide(t, p, ip("198.51.100.7", reason.DMARCQuarantine), Deliver, "builtin-allowed-sender")
	decide(t, p, ip("2001:db8:600d::25", reason.SPFFail, reason.DKIMFail), Deliver, "builtin-allowed-sender")
	decide(t, p, ip("::ffff:198.51.100.7", reason.DMARCQuarantine), Deliver, "builtin-allowed-sender")
	// …but not malware, nor the sender's own reject policy.
	decide(t, p, ip("198.51.100.7", reason.MalwareYARA), Quarantine, "builtin-malware")
	decide(t, p, ip("198.51.100.7", reason.DMARCReject), Reject, "builtin-dmarc-reject")
	// A blocked address inside an allowed network is blocked.
	d := decide(t, p, ip("198.51.100.66"), Reject, "builtin-blocked-sender")
	if !slices.Equal(d.Reasons, []reason.Tag{reason.BlockedSender}) || !strings.Contains(d.Explain[0].Detail, "198.51.100.66") {
		t.Errorf("blocked: %+v", d)
	}
	decide(t, p, ip("2001:db8:bad:1::5"), Reject, "builtin-blocked-sender")
	decide(t, p, ip("2001:db8:bad0::1", reason.DMARCQuarantine), Quarantine, "builtin-dmarc-quarantine")
	// No client address (a message from scan without --client-ip).
	f := facts(reason.DMARCQuarantine)
	f.ClientIP = netip.Addr{}
	decide(t, p, f, Quarantine, "builtin-dmarc-quarantine")
}

func TestAllowAndBlockSenders(t *testing.T) {
	p := mustParse(t, minimal+`lists {
  allow_senders = ["@partner.example", "vendor.example", "ceo@holding.example"]
  block_senders = ["@partner.example.evil.example", "spam.example"]
  trap_addresses = ["trap@corp.example", "@honeypot.corp.example"]
}`)
	sender := func(mailFrom, from, dmarc string, tags ...reason.Tag) *Facts {
		f := facts(tags...)
		f.MailFrom, f.From.Addr, f.Auth.DMARC = mailFrom, from, dmarc
		return f
	}
	look := reason.LookalikeDomain
	// "@domain" is that domain only; "domain" includes subdomains.
	decide(t, p, sender("a@partner.example", "a@partner.example", "pass", look), Deliver, "builtin-allowed-sender")
	decide(t, p, sender("a@mail.partner.example", "a@mail.partner.example", "pass", look), Quarantine, "builtin-impersonation")
	decide(t, p, sender("x@eu.vendor.example", "x@eu.vendor.example", "pass", look), Deliver, "builtin-allowed-sender")
	decide(t, p, sender("CEO@Holding.Example", "ceo@holding.example", "pass", look), Deliver, "builtin-allowed-sender")
	decide(t, p, sender("cfo@holding.example", "cfo@holding.example", "pass", look), Quarantine, "builtin-impersonation")
	// Without DMARC proving the sender, the allow list does nothing.
	for _, dmarc := range []string{"fail", "none", "temperror", ""} {
		decide(t, p, sender("a@partner.example", "a@partner.example", dmarc, look), Quarantine, "builtin-impersonation")
	}
	// Blocked by envelope or by header From; the block wins over an allow.
	decide(t, p, sender("a@partner.example.evil.example", "a@partner.example", "pass"), Reject, "builtin-blocked-sender")
	decide(t, p, sender("bounce@esp.example", "news@mail.spam.example", "pass"), Reject, "builtin-blocked-sender")
	// Traps: one trap among several recipients is enough.
	f := facts()
	f.Rcpts = []string{"bob@corp.example", "Anyone@HoneyPot.corp.example"}
	decide(t, p, f, Quarantine, "builtin-trap")
	f.Rcpts = []string{"bob@corp.example", "trap@corp.example.invalid"}
	decide(t, p, f, Deliver, "")
}

func TestCIDRMatch(t *testing.T) {
	p := mustParse(t, minimal+`
rule "partner-nets" {
  when   = cidr_match(client_ip, "192.0.2.0/24", "2001:db8::/32", "203.0.113.5")
  action = "tag"
}
`)
	check := func(ip string, want Action) {
		t.Helper()
		f := facts()
		f.ClientIP = netip.Addr{}
		if ip != "" {
			f.ClientIP = netip.MustParseAddr(ip)
		}
		f.HELO = "mail.example"
		d := p.Evaluate(f)
		if d.Action != want {
			t.Errorf("cidr_match(%q): %s by %q, want %s (errors %v)", ip, d.Action, d.Rule, want, d.Errors)
		}
		if len(d.Errors) > 0 {
			t.Errorf("cidr_match(%q): errors %v", ip, d.Errors)
		}
	}
	check("192.0.2.9", Tag)
	check("::ffff:192.0.2.9", Tag) // IPv4-mapped: the IPv4 prefix applies
	check("2001:db8:1::1", Tag)
	check("203.0.113.5", Tag) // a single address without a mask
	check("203.0.113.6", Deliver)
	check("192.0.3.1", Deliver)
	check("2001:db9::1", Deliver)
	check("", Deliver) // no client address matches nothing
	// A network that is not a literal at the call is still checked at
	// load time, by the probe evaluation.
	wantDiag(t, minimal+"rule \"nets\" {\n  when   = anytrue([for n in [\"10.0.0.0/8\", \"10.0.0.0/33\"] : cidr_match(client_ip, n)])\n  action = \"tag\"\n}\n",
		`e.hcl:8:62: Error in function call: Call to function "cidr_match" failed: bad network "10.0.0.0/33".`)
}

func TestMatchAddressAndDomain(t *testing.T) {
	cases := []struct {
		pattern, addr string
		want          bool
	}{
		{"user@example.com", "User@Example.COM", true},
		{"user@example.com", "user@mail.example.com", false},
		{"user@example.com", "other@example.com", false},
		{"@example.com", "anyone@example.com", true},
		{"@example.com", "anyone@sub.example.com", false},
		{"@example.com", "anyone@example.com.", true},
		{"example.com", "a@example.com", true},
		{"example.com", "a@deep.sub.example.com", true},
		{"example.com", "a@notexample.com", false},
		{"example.com", "a@example.com.evil.test", false},
		{"example.com", "", false},
		{"", "a@example.com", false},
		{"example.com", "no-at-sign", false},
	}
	for _, c := range cases {
		if got := MatchAddress(c.pattern, c.addr); got != c.want {
			t.Errorf("MatchAddress(%q, %q) = %v, want %v", c.pattern, c.addr, got, c.want)
		}
	}
	for _, c := range []struct {
		domain, pattern string
		want            bool
	}{
		{"Example.COM.", "example.com", true},
		{"a.example.com", "example.com.", true},
		{"example.com", "a.example.com", false},
		{"", "", false},
		{"xexample.com", "example.com", false},
	} {
		if got := DomainMatch(c.domain, c.pattern); got != c.want {
			t.Errorf("DomainMatch(%q, %q) = %v, want %v", c.domain, c.pattern, got, c.want)
		}
	}
}
