package gateway

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/auth"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/reputation"
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
		r = newResolver(p)
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
	l := attach.DefaultLimits()
	a := p.Archive
	l.MaxDepth, l.MaxFiles, l.MaxTotalBytes, l.MaxFileBytes, l.MaxRatio = a.MaxDepth, a.MaxFiles, a.MaxTotalBytes, a.MaxFileBytes, a.MaxRatio
	l.MaxDuration = a.Budget
	s.limits = l
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

// newResolver returns the DNS resolver the policy asks for: explicit
// servers, or the system's.
func newResolver(p *policy.Policy) auth.Resolver {
	servers := p.DNS.Servers
	timeout := p.DNS.QueryTimeout
	if len(servers) == 0 {
		return &net.Resolver{PreferGo: true}
	}
	var next atomic.Uint64
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			addr := servers[int(next.Add(1)-1)%len(servers)]
			d := net.Dialer{Timeout: timeout}
			return d.DialContext(ctx, network, addr)
		},
	}
}

func inspectConcurrency() int {
	return max(2, 2*runtime.GOMAXPROCS(0))
}
