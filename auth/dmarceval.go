package auth

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
)

// maxAuthorDomains bounds the From domains evaluated (and so the DNS
// queries a hostile From field can cause).
const maxAuthorDomains = 8

// DMARCResult is the DMARC evaluation of a message (RFC 7489 §6.6).
type DMARCResult struct {
	Status DMARCStatus `json:"status"`
	// HeaderFrom is the RFC 5322 From domain evaluated; with several author
	// domains, the one that decided the result.
	HeaderFrom string `json:"header_from,omitempty"`
	OrgDomain  string `json:"org_domain,omitempty"`
	// RecordDomain is where the policy record was found: HeaderFrom, or
	// OrgDomain by the fallback of RFC 7489 §6.6.3.
	RecordDomain string `json:"record_domain,omitempty"`
	// Policy is the policy to apply: the record's p= (or sp= for a
	// subdomain covered by its organizational domain's record), lowered by
	// pct sampling; "none" for pass, none and errors.
	Policy DMARCPolicy `json:"policy"`
	// RecordPolicy is the p= or sp= that applied, before pct.
	RecordPolicy DMARCPolicy `json:"record_policy,omitempty"`
	Percent      int         `json:"pct,omitempty"`
	// SampledOut is set when pct sampling lowered the policy (§6.6.4).
	SampledOut    bool      `json:"sampled_out,omitempty"`
	SPFAlignment  Alignment `json:"aspf,omitempty"`
	DKIMAlignment Alignment `json:"adkim,omitempty"`
	// SPFAligned: SPF passed for a domain aligned with HeaderFrom.
	SPFAligned bool `json:"spf_aligned"`
	// DKIMAligned: a DKIM signature passed with d= aligned with HeaderFrom;
	// DKIMDomain is that d=.
	DKIMAligned bool   `json:"dkim_aligned"`
	DKIMDomain  string `json:"dkim_domain,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// FromFields counts the From header fields (RFC 5322 wants exactly one).
	FromFields int `json:"from_fields"`
	// AuthorDomains lists every From domain when there is more than one;
	// each was evaluated and the strictest outcome is reported.
	AuthorDomains []string `json:"author_domains,omitempty"`
}

// dmarcInputs are the authenticated identifiers DMARC aligns.
type dmarcInputs struct {
	spf  SPFResult // MAIL FROM identity, or HELO for the null sender
	dkim []DKIMResult
	rand func(n int) int
}

// evaluateDMARC evaluates every author domain of h and combines them: a
// forged extra From field or address cannot hide behind a genuine one,
// because every domain must pass (RFC 7489 §6.6.1).
func evaluateDMARC(ctx context.Context, r Resolver, h *messageHeader, in dmarcInputs) DMARCResult {
	domains, fields := h.authorDomains()
	if fields == 0 {
		return DMARCResult{Status: DMARCPermerror, Policy: PolicyNone, Reason: "no From header field"}
	}
	if len(domains) == 0 {
		return DMARCResult{Status: DMARCPermerror, Policy: PolicyNone, FromFields: fields,
			Reason: "no domain in the From header field"}
	}
	evaluated := domains
	if len(evaluated) > maxAuthorDomains {
		evaluated = evaluated[:maxAuthorDomains]
	}
	var best DMARCResult
	for i, d := range evaluated {
		res := evaluateDomain(ctx, r, d, in)
		if i == 0 || worse(res, best) {
			best = res
		}
	}
	best.FromFields = fields
	if len(domains) > 1 {
		best.AuthorDomains = domains
	}
	if len(domains) > maxAuthorDomains && best.Status != DMARCFail {
		best.Status, best.Policy = DMARCPermerror, PolicyNone
		best.Reason = fmt.Sprintf("%d author domains; only the first %d were evaluated", len(domains), maxAuthorDomains)
	}
	return best
}

// worse reports whether a is a worse outcome than b: fail with the
// strictest policy first, then temperror, permerror, none, pass.
func worse(a, b DMARCResult) bool {
	rank := func(r DMARCResult) int {
		switch r.Status {
		case DMARCFail:
			return 10 + slices.Index([]DMARCPolicy{PolicyNone, PolicyQuarantine, PolicyReject}, r.Policy)
		case DMARCTemperror:
			return 4
		case DMARCPermerror:
			return 3
		case DMARCNone:
			return 2
		}
		return 1
	}
	return rank(a) > rank(b)
}

// evaluateDomain evaluates one author domain (RFC 7489 §6.6.2-§6.6.4).
func evaluateDomain(ctx context.Context, r Resolver, from string, in dmarcInputs) DMARCResult {
	res := DMARCResult{HeaderFrom: from, OrgDomain: OrgDomain(from), Policy: PolicyNone}
	rec := lookupDMARC(ctx, r, &res)
	mode := DMARCRecord{SPFAlignment: AlignRelaxed, DKIMAlignment: AlignRelaxed}
	if rec != nil {
		mode = *rec
		res.SPFAlignment, res.DKIMAlignment = rec.SPFAlignment, rec.DKIMAlignment
	}
	tempAligned := alignIdentifiers(&res, in, mode)
	if rec == nil {
		return res // none or temperror from discovery
	}
	switch {
	case res.SPFAligned || res.DKIMAligned:
		res.Status = DMARCPass
		return res
	case tempAligned:
		// An aligned identifier could not be checked: a retry may pass,
		// so do not apply a failure policy to a DNS hiccup.
		res.Status, res.Reason = DMARCTemperror, "an aligned identifier had a temporary error"
		return res
	}
	res.Status = DMARCFail
	res.Reason = "no aligned SPF or DKIM pass"
	res.RecordPolicy = rec.Policy
	if res.RecordDomain != from && rec.SubdomainPolicy != "" {
		res.RecordPolicy = rec.SubdomainPolicy // §6.3 sp=
	}
	res.Percent = rec.Percent
	res.Policy = res.RecordPolicy
	if rec.Percent < 100 {
		rnd := in.rand
		if rnd == nil {
			rnd = rand.IntN
		}
		if rnd(100) >= rec.Percent {
			// §6.6.4: messages not sampled get the next weaker policy.
			res.SampledOut = true
			switch res.Policy {
			case PolicyReject:
				res.Policy = PolicyQuarantine
			case PolicyQuarantine:
				res.Policy = PolicyNone
			}
		}
	}
	return res
}

// alignIdentifiers sets the alignment fields of res; it reports whether an
// aligned identifier had a temperror.
func alignIdentifiers(res *DMARCResult, in dmarcInputs, mode DMARCRecord) (tempAligned bool) {
	if aligned(in.spf.Domain, res.HeaderFrom, mode.SPFAlignment) {
		switch in.spf.Status {
		case SPFPass:
			res.SPFAligned = true
		case SPFTemperror:
			tempAligned = true
		}
	}
	for _, d := range in.dkim {
		if !aligned(d.Domain, res.HeaderFrom, mode.DKIMAlignment) {
			continue
		}
		switch d.Status {
		case DKIMPass:
			if !res.DKIMAligned {
				res.DKIMAligned, res.DKIMDomain = true, d.Domain
			}
		case DKIMTemperror:
			tempAligned = true
		}
	}
	return tempAligned
}
