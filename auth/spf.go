package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// SPFStatus is an RFC 7208 §2.6 result, spelled as in Authentication-Results.
type SPFStatus string

// The SPF results of RFC 7208 §2.6.
const (
	SPFNone      SPFStatus = "none"    // no record, or no checkable domain
	SPFNeutral   SPFStatus = "neutral" // the domain makes no assertion
	SPFPass      SPFStatus = "pass"
	SPFFail      SPFStatus = "fail"
	SPFSoftfail  SPFStatus = "softfail"
	SPFTemperror SPFStatus = "temperror" // DNS timeout or SERVFAIL; retry may help
	SPFPermerror SPFStatus = "permerror" // broken record; retry will not help
)

// SPF identities (RFC 7208 §2.3, §2.4), as in Authentication-Results
// smtp.helo / smtp.mailfrom.
const (
	IdentityMailFrom = "mailfrom"
	IdentityHELO     = "helo"
)

// SPF processing limits of RFC 7208 §4.6.4.
const (
	spfMaxLookups     = 10 // DNS-querying terms per check
	spfMaxVoidLookups = 2  // lookups answering NXDOMAIN or no records
	spfMaxMX          = 10 // MX records per mx mechanism
	spfMaxPTR         = 10 // PTR names examined per ptr mechanism or %{p}
)

// Errors reported with an SPF permerror.
var (
	ErrTooManyLookups     = errors.New("spf: more than 10 dns-querying terms")
	ErrTooManyVoidLookups = errors.New("spf: more than 2 void lookups")
	ErrTooManyMX          = errors.New("spf: more than 10 mx records")
	ErrMultipleSPF        = errors.New("spf: more than one spf record")
	ErrNoSPFTarget        = errors.New("spf: include or redirect target has no spf record")
)

// SPFInput is what CheckSPF needs. With MailFrom empty (the null sender),
// the HELO identity is checked as postmaster@HELO (RFC 7208 §2.4).
type SPFInput struct {
	IP       netip.Addr // the SMTP client
	HELO     string     // HELO/EHLO argument
	MailFrom string     // envelope sender without <>; "" for the null sender
	// Receiver is the host name of the checking MTA, for the %{r} macro of
	// explanations; empty means "unknown".
	Receiver string
	// Now is the time for the %{t} macro; zero means time.Now.
	Now time.Time
}

// SPFResult is the outcome of one check_host() evaluation. It always has a
// Status, also when CheckSPF returns an error.
type SPFResult struct {
	Status   SPFStatus `json:"status"`
	Identity string    `json:"identity"` // "mailfrom" or "helo"
	// Sender is the identity checked as an address: the MAIL FROM, or
	// postmaster@HELO for the HELO identity.
	Sender string `json:"sender,omitempty"`
	// Domain is the domain the check started from (the sender's domain).
	Domain string `json:"domain,omitempty"`
	// Mechanism is the term that decided ("-all", "include:_spf.example"),
	// "default" when none matched, empty for none/temperror/permerror.
	Mechanism string `json:"mechanism,omitempty"`
	// Explanation is the domain's exp= text for a fail (RFC 7208 §6.2).
	Explanation string `json:"explanation,omitempty"`
	// Reason says why, for humans; set for errors and none.
	Reason string `json:"reason,omitempty"`
	// Lookups and VoidLookups count the DNS-querying terms and the void
	// lookups spent (RFC 7208 §4.6.4).
	Lookups     int `json:"dns_lookups"`
	VoidLookups int `json:"void_lookups"`
}

// CheckSPF evaluates the SPF policy of the MAIL FROM domain (or of the HELO
// domain for the null sender) for in.IP, implementing check_host() of
// RFC 7208 §4 with all mechanisms, modifiers, macros and processing limits.
// The error, if any, explains a temperror or permerror; the result is
// complete either way.
func CheckSPF(ctx context.Context, r Resolver, in SPFInput) (SPFResult, error) {
	res := SPFResult{Identity: IdentityMailFrom, Sender: in.MailFrom}
	sender := in.MailFrom
	if sender == "" {
		res.Identity = IdentityHELO
		sender = "postmaster@" + in.HELO
		res.Sender = sender
	}
	local, domain := splitSender(sender)
	res.Domain = domain
	ip := in.IP.Unmap()
	if !ip.IsValid() {
		res.Status, res.Reason = SPFNone, "no client IP address"
		return res, nil
	}
	// RFC 7208 §4.3: a malformed or single-label domain gives none.
	asciiDomain, ok := checkableDomain(domain)
	if !ok {
		res.Status, res.Reason = SPFNone, fmt.Sprintf("%q is not a checkable domain name", domain)
		return res, nil
	}
	e := &spfEval{
		ctx: ctx, r: r, ip: ip,
		local: local, senderDomain: asciiDomain, helo: in.HELO,
		receiver: in.Receiver, now: in.Now,
	}
	out := e.checkHost(asciiDomain)
	res.Status, res.Mechanism, res.Reason = out.status, out.mechanism, out.reason
	res.Lookups, res.VoidLookups = e.lookups, e.voids
	if out.status == SPFFail && out.exp != nil {
		res.Explanation = e.explanation(out.exp, out.domain)
	}
	return res, out.err
}

// splitSender splits an address at its last '@'; a missing local-part is
// "postmaster" (RFC 7208 §4.3). A source route ("@a,@b:user@d") is dropped.
func splitSender(s string) (local, domain string) {
	if strings.HasPrefix(s, "@") {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			s = s[i+1:]
		}
	}
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return s, ""
	}
	local, domain = s[:i], s[i+1:]
	if local == "" {
		local = "postmaster"
	}
	return local, domain
}

// checkableDomain returns the ASCII form of d if it is a syntactically
// valid multi-label domain name that can be queried (RFC 7208 §4.3).
func checkableDomain(d string) (string, bool) {
	d = strings.TrimSuffix(d, ".")
	if d == "" || strings.HasPrefix(d, "[") {
		return "", false
	}
	if _, err := netip.ParseAddr(d); err == nil { // an address, not a name
		return "", false
	}
	if !isASCII(d) {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", false
		}
		d = a
	}
	if !validQueryName(d) || !strings.Contains(d, ".") {
		return "", false
	}
	return d, true
}

// validQueryName reports whether d (without trailing dot) can be sent as a
// DNS query: at most 253 octets, labels of 1 to 63 octets.
func validQueryName(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// spfEval holds the state of one top-level check_host() call, shared by
// its include and redirect recursion (the limits are per check).
type spfEval struct {
	ctx          context.Context
	r            Resolver
	ip           netip.Addr
	local        string
	senderDomain string
	helo         string
	receiver     string
	now          time.Time

	lookups, voids int
	ptrNames       []string // validated PTR names of the client
	ptrVoid        bool     // the PTR lookup was void
	ptrDone        bool     // ptrNames and ptrVoid are computed
}

// spfOutcome is the result of evaluating one domain's record.
type spfOutcome struct {
	status    SPFStatus
	mechanism string
	reason    string
	err       error
	domain    string       // the domain whose record decided
	exp       *macroString // that record's exp=, for a fail
}

func permerror(err error, format string, args ...any) spfOutcome {
	return spfOutcome{status: SPFPermerror, err: err, reason: fmt.Sprintf(format, args...)}
}

func temperror(err error, format string, args ...any) spfOutcome {
	return spfOutcome{status: SPFTemperror, err: err, reason: fmt.Sprintf(format, args...)}
}

// checkHost is check_host(<ip>, <domain>, <sender>) of RFC 7208 §4.
func (e *spfEval) checkHost(domain string) spfOutcome {
	rec, out, ok := e.fetchRecord(domain)
	if !ok {
		return out
	}
	for i := range rec.directives {
		d := &rec.directives[i]
		matched, out, ok := e.evalDirective(d, domain)
		if !ok {
			return out
		}
		if matched {
			out := spfOutcome{status: qualifierResult(d.qualifier), mechanism: d.text, domain: domain}
			if out.status == SPFFail {
				out.exp = rec.exp
			}
			return out
		}
	}
	if rec.redirect != nil {
		return e.redirect(rec.redirect, domain)
	}
	return spfOutcome{status: SPFNeutral, mechanism: "default", domain: domain}
}

// fetchRecord looks up and parses the SPF record of domain (RFC 7208 §4.4,
// §4.5). ok is false when out is the final result (none or an error).
func (e *spfEval) fetchRecord(domain string) (*spfRecord, spfOutcome, bool) {
	txts, err := e.r.LookupTXT(e.ctx, domain+".")
	if err != nil {
		if isNotFound(err) {
			return nil, spfOutcome{status: SPFNone, reason: "no spf record for " + domain, domain: domain}, false
		}
		return nil, temperror(err, "dns lookup of %s txt: %v", domain, err), false
	}
	var found []string
	for _, t := range txts {
		if isSPFRecord(t) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return nil, spfOutcome{status: SPFNone, reason: "no spf record for " + domain, domain: domain}, false
	case 1:
	default:
		return nil, permerror(ErrMultipleSPF, "%s has %d spf records", domain, len(found)), false
	}
	rec, err := parseSPFRecord(found[0])
	if err != nil {
		return nil, permerror(err, "record of %s: %v", domain, err), false
	}
	return rec, spfOutcome{}, true
}

func qualifierResult(q byte) SPFStatus {
	switch q {
	case '-':
		return SPFFail
	case '~':
		return SPFSoftfail
	case '?':
		return SPFNeutral
	}
	return SPFPass
}

// redirect follows a redirect= modifier (RFC 7208 §6.1): the target's
// result is the result, and a target without a record is a permerror.
func (e *spfEval) redirect(spec *macroString, domain string) spfOutcome {
	if out, ok := e.countLookup("redirect"); !ok {
		return out
	}
	target, ok := e.targetName(spec, domain)
	if !ok {
		return permerror(ErrNoSPFTarget, "redirect target %q of %s is not a valid domain name", target, domain)
	}
	out := e.checkHost(target)
	if out.status == SPFNone {
		return permerror(ErrNoSPFTarget, "redirect target %s has no spf record", target)
	}
	return out
}

// countLookup charges one DNS-querying term against the limit.
func (e *spfEval) countLookup(term string) (spfOutcome, bool) {
	e.lookups++
	if e.lookups > spfMaxLookups {
		return permerror(ErrTooManyLookups, "%s is the dns-querying term number %d", term, e.lookups), false
	}
	return spfOutcome{}, true
}

// countVoid charges one void lookup against the limit.
func (e *spfEval) countVoid(term string) (spfOutcome, bool) {
	e.voids++
	if e.voids > spfMaxVoidLookups {
		return permerror(ErrTooManyVoidLookups, "%s is void lookup number %d", term, e.voids), false
	}
	return spfOutcome{}, true
}

// targetName expands a domain-spec for a query (RFC 7208 §7.3): long names
// lose labels on the left until they fit 253 octets, a trailing dot is
// dropped. ok is false when the result cannot be queried.
func (e *spfEval) targetName(spec *macroString, domain string) (string, bool) {
	if spec == nil {
		return domain, true
	}
	name := strings.TrimSuffix(spec.expand(e.values(domain)), ".")
	for len(name) > 253 {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			break
		}
		name = name[i+1:]
	}
	return name, validQueryName(name)
}

// evalDirective evaluates one mechanism (RFC 7208 §5). ok is false when
// out is the final result of the check (an error).
func (e *spfEval) evalDirective(d *spfDirective, domain string) (matched bool, out spfOutcome, ok bool) {
	switch d.mech {
	case mechAll:
		return true, out, true
	case mechIP4, mechIP6:
		return d.network.Contains(e.ip), out, true
	}
	if out, ok := e.countLookup(d.text); !ok {
		return false, out, false
	}
	target, valid := e.targetName(d.domain, domain)
	if !valid {
		if d.mech == mechInclude { // like a target without a record
			return false, permerror(ErrNoSPFTarget, "%s: %q is not a valid domain name", d.text, target), false
		}
		// RFC 7208 §4.3 and §4.8 by analogy: a name that cannot be queried
		// does not exist, so the mechanism does not match.
		return false, out, true
	}
	switch d.mech {
	case mechInclude:
		return e.include(d, target)
	case mechA:
		return e.matchA(d, target)
	case mechMX:
		return e.matchMX(d, target)
	case mechPTR:
		return e.matchPTR(d, target)
	case mechExists:
		return e.matchExists(d, target)
	}
	return false, permerror(ErrSPFSyntax, "unhandled mechanism %q", d.text), false
}

// include implements RFC 7208 §5.2 and its result table.
func (e *spfEval) include(d *spfDirective, target string) (bool, spfOutcome, bool) {
	out := e.checkHost(target)
	switch out.status {
	case SPFPass:
		return true, spfOutcome{}, true
	case SPFFail, SPFSoftfail, SPFNeutral:
		return false, spfOutcome{}, true
	case SPFTemperror:
		return false, out, false
	case SPFNone:
		return false, permerror(ErrNoSPFTarget, "%s: %s has no spf record", d.text, target), false
	}
	return false, out, false
}

// lookupIPs resolves name to the addresses of the client's family; ok is
// false when out is final. A void answer is charged when charge is set.
func (e *spfEval) lookupIPs(d *spfDirective, name string, charge bool) ([]netip.Addr, spfOutcome, bool) {
	network := "ip4"
	if e.ip.Is6() {
		network = "ip6"
	}
	ips, err := e.r.LookupNetIP(e.ctx, network, name+".")
	if err != nil {
		if isNotFound(err) {
			if charge {
				out, ok := e.countVoid(d.text)
				return nil, out, ok
			}
			return nil, spfOutcome{}, true
		}
		return nil, temperror(err, "%s: dns lookup of %s: %v", d.text, name, err), false
	}
	if len(ips) == 0 && charge {
		out, ok := e.countVoid(d.text)
		return nil, out, ok
	}
	return ips, spfOutcome{}, true
}

func (e *spfEval) ipMatches(d *spfDirective, ips []netip.Addr) bool {
	bits := d.cidr4
	if e.ip.Is6() {
		bits = d.cidr6
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.Is4() != e.ip.Is4() {
			continue
		}
		if p, err := ip.Prefix(bits); err == nil && p.Contains(e.ip) {
			return true
		}
	}
	return false
}

func (e *spfEval) matchA(d *spfDirective, target string) (bool, spfOutcome, bool) {
	ips, out, ok := e.lookupIPs(d, target, true)
	if !ok {
		return false, out, false
	}
	return e.ipMatches(d, ips), out, true
}

// matchMX implements RFC 7208 §5.4; more than 10 MX records is a
// permerror (§4.6.4).
func (e *spfEval) matchMX(d *spfDirective, target string) (bool, spfOutcome, bool) {
	mxs, err := e.r.LookupMX(e.ctx, target+".")
	if err != nil {
		if isNotFound(err) {
			out, ok := e.countVoid(d.text)
			return false, out, ok
		}
		return false, temperror(err, "%s: dns lookup of %s mx: %v", d.text, target, err), false
	}
	if len(mxs) == 0 {
		out, ok := e.countVoid(d.text)
		return false, out, ok
	}
	if len(mxs) > spfMaxMX {
		return false, permerror(ErrTooManyMX, "%s: %s has %d mx records", d.text, target, len(mxs)), false
	}
	for _, mx := range mxs {
		host := strings.TrimSuffix(mx.Host, ".")
		if host == "" { // null MX (RFC 7505)
			continue
		}
		ips, out, ok := e.lookupIPs(d, host, false)
		if !ok {
			return false, out, false
		}
		if e.ipMatches(d, ips) {
			return true, spfOutcome{}, true
		}
	}
	return false, spfOutcome{}, true
}

// matchPTR implements RFC 7208 §5.5: DNS errors make it not match.
func (e *spfEval) matchPTR(d *spfDirective, target string) (bool, spfOutcome, bool) {
	names, void := e.validatedNames()
	if void {
		// Each ptr term whose query is void counts (RFC 7208 §4.6.4).
		if out, ok := e.countVoid(d.text); !ok {
			return false, out, false
		}
	}
	for _, n := range names {
		if strings.EqualFold(n, target) || hasSuffixFold(n, "."+target) {
			return true, spfOutcome{}, true
		}
	}
	return false, spfOutcome{}, true
}

// validatedNames returns the client's PTR names (at most 10 examined) whose
// forward lookup includes the client IP (RFC 7208 §5.5). void reports an
// empty or NXDOMAIN PTR answer. The result is computed once per check.
func (e *spfEval) validatedNames() (names []string, void bool) {
	if !e.ptrDone {
		e.ptrNames, e.ptrVoid = e.lookupValidatedNames()
		e.ptrDone = true
	}
	return e.ptrNames, e.ptrVoid
}

func (e *spfEval) lookupValidatedNames() (names []string, void bool) {
	ptrs, err := e.r.LookupAddr(e.ctx, e.ip.String())
	if err != nil || len(ptrs) == 0 {
		return nil, err == nil || isNotFound(err)
	}
	if len(ptrs) > spfMaxPTR {
		ptrs = ptrs[:spfMaxPTR]
	}
	d := &spfDirective{cidr4: 32, cidr6: 128}
	for _, p := range ptrs {
		p = strings.TrimSuffix(p, ".")
		if !validQueryName(p) {
			continue
		}
		ips, _, ok := e.lookupIPs(d, p, false)
		if ok && e.ipMatches(d, ips) {
			names = append(names, p)
		}
	}
	return names, false
}

func (e *spfEval) matchExists(d *spfDirective, target string) (bool, spfOutcome, bool) {
	// RFC 7208 §5.7: always an A query, whatever the client's family.
	ips, err := e.r.LookupNetIP(e.ctx, "ip4", target+".")
	if err != nil {
		if isNotFound(err) {
			out, ok := e.countVoid(d.text)
			return false, out, ok
		}
		return false, temperror(err, "%s: dns lookup of %s: %v", d.text, target, err), false
	}
	if len(ips) == 0 {
		out, ok := e.countVoid(d.text)
		return false, out, ok
	}
	return true, spfOutcome{}, true
}

// explanation computes the exp= text (RFC 7208 §6.2). Every problem (DNS
// error, not exactly one record, non-ASCII or bad macro syntax) means no
// explanation. The lookup is not charged against the limits.
func (e *spfEval) explanation(spec *macroString, domain string) string {
	name, ok := e.targetName(spec, domain)
	if !ok {
		return ""
	}
	txts, err := e.r.LookupTXT(e.ctx, name+".")
	if err != nil || len(txts) != 1 {
		return ""
	}
	for i := 0; i < len(txts[0]); i++ {
		if c := txts[0][i]; c < 0x20 || c > 0x7e {
			return ""
		}
	}
	ms, err := parseMacroString(txts[0], true)
	if err != nil {
		return ""
	}
	return ms.expand(e.values(domain))
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// spfValues supplies macro letters for one <domain>.
type spfValues struct {
	e      *spfEval
	domain string
}

func (e *spfEval) values(domain string) spfValues { return spfValues{e, domain} }

func (v spfValues) macroValue(letter byte) string {
	e := v.e
	switch letter {
	case 's':
		return e.local + "@" + e.senderDomain
	case 'l':
		return e.local
	case 'o':
		return e.senderDomain
	case 'd':
		return v.domain
	case 'i':
		return dottedIP(e.ip)
	case 'p':
		return e.pMacro(v.domain)
	case 'v':
		if e.ip.Is4() {
			return "in-addr"
		}
		return "ip6"
	case 'h':
		return e.helo
	case 'c':
		return e.ip.String()
	case 'r':
		if e.receiver == "" {
			return "unknown"
		}
		return e.receiver
	case 't':
		now := e.now
		if now.IsZero() {
			now = time.Now()
		}
		return strconv.FormatInt(now.Unix(), 10)
	}
	return ""
}

// pMacro returns the validated domain name of the client for %{p}
// (RFC 7208 §7.3): <domain> itself or a subdomain of it if validated,
// else any validated name, else "unknown".
func (e *spfEval) pMacro(domain string) string {
	names, _ := e.validatedNames()
	for _, n := range names {
		if strings.EqualFold(n, domain) {
			return n
		}
	}
	for _, n := range names {
		if hasSuffixFold(n, "."+domain) {
			return n
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	return "unknown"
}

// dottedIP formats ip for %{i}: dotted quad, or dot-separated nibbles.
func dottedIP(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String()
	}
	const hex = "0123456789abcdef"
	a := ip.As16()
	b := make([]byte, 0, 63)
	for i, x := range a {
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, hex[x>>4], '.', hex[x&0xf])
	}
	return string(b)
}
