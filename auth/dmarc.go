package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// DMARCStatus is an RFC 8601 / RFC 7489 §11.2 DMARC result.
type DMARCStatus string

// The DMARC results.
const (
	DMARCNone      DMARCStatus = "none" // no usable policy record
	DMARCPass      DMARCStatus = "pass"
	DMARCFail      DMARCStatus = "fail"
	DMARCTemperror DMARCStatus = "temperror" // DNS failed; retry may help
	DMARCPermerror DMARCStatus = "permerror" // no From domain to evaluate
)

// DMARCPolicy is a requested Mail Receiver policy (RFC 7489 §6.3 p=, sp=).
type DMARCPolicy string

// The DMARC policies.
const (
	PolicyNone       DMARCPolicy = "none"
	PolicyQuarantine DMARCPolicy = "quarantine"
	PolicyReject     DMARCPolicy = "reject"
)

// Alignment is an identifier alignment mode (RFC 7489 §3.1): "r" relaxed
// (same organizational domain) or "s" strict (same domain).
type Alignment string

// The alignment modes.
const (
	AlignRelaxed Alignment = "r"
	AlignStrict  Alignment = "s"
)

// ErrDMARCSyntax is wrapped by DMARC record errors.
var ErrDMARCSyntax = errors.New("dmarc: invalid record")

// DMARCRecord is a parsed DMARC policy record (RFC 7489 §6.3). Tags with
// invalid values take their defaults, as §6.3 asks.
type DMARCRecord struct {
	Policy          DMARCPolicy // p=
	SubdomainPolicy DMARCPolicy // sp=; empty when absent (p applies)
	DKIMAlignment   Alignment   // adkim=, default relaxed
	SPFAlignment    Alignment   // aspf=, default relaxed
	Percent         int         // pct=, default 100
	AggregateURIs   []string    // rua=
	FailureURIs     []string    // ruf=
}

// isDMARCRecord reports whether txt starts with the version tag
// "v=DMARC1" (RFC 7489 §6.6.3 step 3; spaces around "=" allowed).
func isDMARCRecord(txt string) bool {
	first, _, _ := strings.Cut(txt, ";")
	k, v, ok := strings.Cut(first, "=")
	return ok && strings.EqualFold(strings.TrimRight(k, " \t"), "v") && strings.TrimSpace(v) == "DMARC1"
}

// ParseDMARCRecord parses a DMARC record. A record without a valid p= (or
// with an invalid sp=) is read as p=none when it has a valid rua= URI and
// is an error otherwise (RFC 7489 §6.6.3 step 6).
func ParseDMARCRecord(txt string) (*DMARCRecord, error) {
	if !isDMARCRecord(txt) {
		return nil, fmt.Errorf("%w: does not start with v=DMARC1", ErrDMARCSyntax)
	}
	rec := &DMARCRecord{DKIMAlignment: AlignRelaxed, SPFAlignment: AlignRelaxed, Percent: 100}
	seen := map[string]bool{}
	pOK, spOK := false, true
	for _, part := range strings.Split(txt, ";")[1:] {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue // §6.3: syntax errors are discarded
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if seen[k] {
			continue // the first occurrence counts
		}
		seen[k] = true
		switch k {
		case "p":
			rec.Policy, pOK = parseDMARCPolicy(v)
		case "sp":
			rec.SubdomainPolicy, spOK = parseDMARCPolicy(v)
		case "adkim":
			rec.DKIMAlignment = parseAlignment(v)
		case "aspf":
			rec.SPFAlignment = parseAlignment(v)
		case "pct":
			rec.Percent = parsePercent(v)
		case "rua":
			rec.AggregateURIs = parseURIs(v)
		case "ruf":
			rec.FailureURIs = parseURIs(v)
		}
	}
	if !pOK || !spOK {
		if len(rec.AggregateURIs) == 0 {
			return nil, fmt.Errorf("%w: no valid p= (or invalid sp=) and no valid rua=", ErrDMARCSyntax)
		}
		rec.Policy, rec.SubdomainPolicy = PolicyNone, ""
	}
	return rec, nil
}

func parseDMARCPolicy(v string) (DMARCPolicy, bool) {
	switch p := DMARCPolicy(strings.ToLower(v)); p {
	case PolicyNone, PolicyQuarantine, PolicyReject:
		return p, true
	}
	return "", false
}

func parseAlignment(v string) Alignment {
	if strings.EqualFold(v, "s") {
		return AlignStrict
	}
	return AlignRelaxed
}

// parsePercent reads pct = 1*3DIGIT in 0..100; anything else means 100.
func parsePercent(v string) int {
	if v == "" || len(v) > 3 || !allDigits(v) {
		return 100
	}
	n := 0
	for i := 0; i < len(v); i++ {
		n = n*10 + int(v[i]-'0')
	}
	if n > 100 {
		return 100
	}
	return n
}

// parseURIs keeps the syntactically valid URIs of a dmarc-uri list (a
// "!size" suffix is allowed, RFC 7489 §6.4).
func parseURIs(v string) []string {
	var out []string
	for _, u := range strings.Split(v, ",") {
		u = strings.TrimSpace(u)
		if i := strings.LastIndexByte(u, '!'); i > 0 {
			u = u[:i]
		}
		if p, err := url.Parse(u); err == nil && p.Scheme != "" && p.Opaque+p.Host+p.Path != "" {
			out = append(out, u)
		}
	}
	return out
}

// OrgDomain returns the organizational domain of d (RFC 7489 §3.2): the
// public suffix plus one label, from the full public suffix list including
// its private section. Private suffixes (github.io, blogspot.com, …) are
// registrations of separate owners; treating alice.github.io and
// bob.github.io as one organization would let one align with the other.
// A name that is itself a public suffix, or unknown to the list, is its
// own organizational domain.
func OrgDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned reports identifier alignment of id with the author domain.
func aligned(id, author string, mode Alignment) bool {
	id = normalizeDomain(id)
	if id == "" {
		return false
	}
	if mode == AlignStrict {
		return id == author
	}
	return OrgDomain(id) == OrgDomain(author)
}

// lookupDMARC finds the policy record for the author domain (RFC 7489
// §6.6.3): at _dmarc.<domain>, else at _dmarc.<organizational domain>.
func lookupDMARC(ctx context.Context, r Resolver, res *DMARCResult) *DMARCRecord {
	names := []string{res.HeaderFrom}
	if res.OrgDomain != res.HeaderFrom {
		names = append(names, res.OrgDomain)
	}
	for _, d := range names {
		txts, err := r.LookupTXT(ctx, "_dmarc."+d+".")
		if err != nil && !isNotFound(err) {
			res.Status, res.Reason = DMARCTemperror, fmt.Sprintf("dns lookup of _dmarc.%s: %v", d, err)
			return nil
		}
		var recs []string
		for _, t := range txts {
			if isDMARCRecord(t) {
				recs = append(recs, t)
			}
		}
		switch {
		case len(recs) == 0:
			continue
		case len(recs) > 1:
			// §6.6.3 step 4: several records end discovery.
			res.Status, res.Reason = DMARCNone, fmt.Sprintf("_dmarc.%s has %d DMARC records", d, len(recs))
			return nil
		}
		rec, err := ParseDMARCRecord(recs[0])
		if err != nil {
			res.Status, res.Reason = DMARCNone, fmt.Sprintf("_dmarc.%s: %v", d, err)
			return nil
		}
		res.RecordDomain = d
		return rec
	}
	res.Status, res.Reason = DMARCNone, "no DMARC record for "+res.HeaderFrom
	return nil
}
