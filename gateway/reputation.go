package gateway

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reputation"
	"github.com/mailguard/mailguard/smtp"
)

// ReputationReport is the reputation part of a report.
type ReputationReport struct {
	IP   *reputation.IPResult  `json:"ip,omitempty"`
	URLs *reputation.URLResult `json:"urls,omitempty"`
}

// newReputation builds the DNS list checker of the policy, or nil when no
// list and no local block list is configured.
func newReputation(p *policy.Policy, r reputation.Resolver) (*reputation.Checker, error) {
	rp := p.Reputation
	c := &reputation.Checker{Resolver: r, BlockDomains: rp.BlockURLs, Shorteners: rp.Shorteners,
		Timeout: rp.QueryTimeout, AllowDomains: p.Gateway.LocalDomains}
	c.Skip = append(append(c.Skip, rp.Allow...), p.Gateway.InternalPrefixes...)
	c.Skip = append(c.Skip, p.Lists.AllowPrefixes...)
	for _, z := range rp.DNSBL {
		c.IPZones = append(c.IPZones, reputation.Zone{Name: z, Weight: 1, Timeout: rp.QueryTimeout})
	}
	for _, z := range rp.URIBL {
		c.URLZones = append(c.URLZones, reputation.Zone{Name: z, Weight: 1, Timeout: rp.QueryTimeout})
	}
	for _, z := range rp.Zones {
		zone := reputation.Zone{Name: z.Name, Weight: z.Weight, Filter: z.Filter, Timeout: rp.QueryTimeout}
		if z.Type == "url" {
			c.URLZones = append(c.URLZones, zone)
		} else {
			c.IPZones = append(c.IPZones, zone)
		}
	}
	if len(c.IPZones)+len(c.URLZones)+len(c.BlockDomains) == 0 {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("reputation: %w", err)
	}
	return c, nil
}

// checkClient answers whether a client must be refused now (stage is
// "connect" or "rcpt", as reputation.reject_at says).
func (g *Gateway) checkClient(ctx context.Context, stage string, ip netip.Addr) error {
	st := g.stage.Load()
	p := st.pol
	if st.rep == nil || len(st.rep.IPZones) == 0 || p.Reputation.RejectAt != stage {
		return nil
	}
	res := st.rep.CheckIP(ctx, ip)
	metricReputation.WithLabelValues("ip", resultLabel(res.Score, p.Reputation.RejectScore)).Inc()
	if res.Score < p.Reputation.RejectScore {
		return nil
	}
	var zones []string
	for _, l := range res.Listed {
		if l.Weight > 0 {
			zones = append(zones, l.Zone)
		}
	}
	g.log.Info("client refused by reputation", "client_ip", ip.String(), "stage", stage, "score", res.Score, "zones", zones)
	code, enh := 550, [3]int{5, 7, 1}
	if stage == "connect" {
		code = 554
	}
	return &smtp.Reject{Code: code, Enhanced: enh, Text: "client " + ip.String() + " listed by " + strings.Join(zones, ", ")}
}

func resultLabel(score, reject float64) string {
	switch {
	case score >= reject:
		return "reject"
	case score > 0:
		return "listed"
	}
	return "clean"
}

// stageReputation checks the client and the message's links (inbound mail).
func (g *Gateway) stageReputation(ctx context.Context, st *stages, env Envelope, rep *Report) {
	if st.rep == nil || env.Direction != "inbound" {
		return
	}
	t := g.now()
	defer func() { metricStage.WithLabelValues("reputation").Observe(g.now().Sub(t).Seconds()) }()
	f := rep.facts
	rr := &ReputationReport{}
	if len(st.rep.IPZones) > 0 && env.ClientIP.IsValid() {
		ip := st.rep.CheckIP(ctx, env.ClientIP)
		rr.IP = &ip
		f.Reputation.IPScore = ip.Score
		for _, l := range ip.Listed {
			f.Reputation.IPListed = append(f.Reputation.IPListed, l.Zone)
		}
		f.Findings = append(f.Findings, ip.Findings()...)
	}
	urls := messageURLs(rep)
	ur := st.rep.CheckURLs(ctx, urls)
	rr.URLs = &ur
	f.Reputation.URLs, f.Reputation.URLDomains, f.Reputation.Mismatches = ur.Count, ur.Domains, ur.Mismatches
	f.Reputation.IPLiterals, f.Reputation.Shorteners = ur.IPLiterals, ur.Shorteners
	for _, l := range ur.Listed {
		f.Reputation.URLListed = append(f.Reputation.URLListed, l.Domain)
	}
	f.Findings = append(f.Findings, ur.Findings()...)
	rep.Reputation = rr
}

// maxURLText bounds the text read from one part for URL extraction.
const maxURLText = 2 << 20

// messageURLs extracts the links of the body parts and of HTML and PDF
// attachments. Links are never fetched.
func messageURLs(rep *Report) []reputation.URL {
	var text, html strings.Builder
	read := func(f *attach.File) []byte {
		r, err := f.Open()
		if err != nil {
			return nil
		}
		defer r.Close()
		b, _ := io.ReadAll(io.LimitReader(r, maxURLText))
		return b
	}
	if rep.walk != nil {
		for _, b := range rep.walk.Bodies {
			if strings.Contains(b.Type, "html") {
				html.Write(read(b))
				html.WriteString("\n")
			} else {
				text.Write(read(b))
				text.WriteString("\n")
			}
		}
	}
	var out []reputation.URL
	for _, f := range rep.Files {
		switch {
		case f.Type == "application/pdf":
			out = append(out, reputation.ExtractPDF(read(f), reputation.DefaultMaxURLs)...)
		case strings.Contains(f.Type, "html"):
			html.Write(read(f))
			html.WriteString("\n")
		}
	}
	return append(reputation.ExtractURLs(text.String(), html.String(), reputation.DefaultMaxURLs), out...)
}
