package gateway

import (
	"fmt"
	"runtime"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/auth"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reputation"
	"github.com/mailguard/mailguard/resolver"
	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/scan"
)

// stages is the inspection machinery built from one policy. A reload builds
// a new one; in-flight inspections keep the one they started with.
type stages struct {
	pol      *policy.Policy
	resolver auth.Resolver
	auth     *auth.Verifier
	yara     *scan.Engine // nil without rules
	limits   attach.Limits
	sched    *sandbox.Scheduler  // nil without a sandbox (or offline)
	rep      *reputation.Checker // nil without DNS lists
}

func (g *Gateway) newStages(p *policy.Policy, r auth.Resolver) (*stages, error) {
	if r == nil {
		var err error
		if r, err = newResolver(p); err != nil {
			return nil, err
		}
	}
	s := &stages{pol: p, resolver: r}
	s.auth = &auth.Verifier{Resolver: r, Hostname: p.Gateway.Hostname, MaxDKIMSignatures: p.Auth.DKIMMaxSignatures}
	if len(p.YARA.Rules) > 0 {
		rules, rerrs, err := scan.Compile(p.YARA.Rules, p.Dir)
		if err != nil {
			return nil, fmt.Errorf("yara: %w", err)
		}
		if rules == nil {
			return nil, fmt.Errorf("yara: %d errors in the rules, first: %v", len(rerrs), rerrs[0])
		}
		s.yara = scan.NewEngine(rules, p.YARA.ScanTimeout)
	}
	s.limits = AttachLimits(p)
	sched, err := g.newSandbox(p)
	if err != nil {
		s.close()
		return nil, err
	}
	s.sched = sched
	if s.rep, err = newReputation(p, r); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *stages) close() {
	if s.yara != nil {
		s.yara.Close()
	}
}

// newResolver returns the caching DNS resolver the policy asks for:
// dns.servers, or the nameservers of /etc/resolv.conf.
func newResolver(p *policy.Policy) (auth.Resolver, error) {
	r, err := resolver.New(resolver.Config{Servers: p.DNS.Servers, Timeout: p.DNS.QueryTimeout, CacheSize: p.DNS.CacheSize})
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return r, nil
}

func inspectConcurrency() int {
	return max(2, 2*runtime.GOMAXPROCS(0))
}

// AttachLimits are the attachment walk's bounds under the policy's archive
// block (also used by `mailguard hunt`, which re-walks stored mail).
func AttachLimits(p *policy.Policy) attach.Limits {
	l := attach.DefaultLimits()
	a := p.Archive
	l.MaxDepth, l.MaxFiles, l.MaxTotalBytes, l.MaxFileBytes, l.MaxRatio = a.MaxDepth, a.MaxFiles, a.MaxTotalBytes, a.MaxFileBytes, a.MaxRatio
	l.MaxDuration = a.Budget
	return l
}
