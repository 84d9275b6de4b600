// Package gateway is the one place that wires inspection → decision →
// lifecycle: it implements the SMTP handler, runs every message through
// Inspect (the single code path shared by serve, scan and recovery),
// persists each transition before acting on it, feeds the delivery queue,
// holds messages for the sandbox and resumes whatever was in flight after a
// restart. It knows no wire formats: parsing belongs to the leaf packages.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailguard/mailguard/auth"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/sandbox"
	"github.com/mailguard/mailguard/scan"
	"github.com/mailguard/mailguard/smtp"
	"github.com/mailguard/mailguard/store"
	"github.com/mailguard/mailguard/thread"
)

// Options are what New needs. Zero values are documented per field.
type Options struct {
	// Policy is the loaded policy; required.
	Policy *policy.Policy
	// Store is the opened store; required for serving, nil for offline scan.
	Store store.Store
	// Log is the diagnostic logger; nil discards.
	Log *slog.Logger
	// Resolver overrides the DNS resolver built from the policy (tests).
	Resolver auth.Resolver
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Node names this node in delivery leases; "" means the host name.
	// It must be stable across restarts: a restarted node takes back the
	// deliveries leased to its name.
	Node string
	// Sandbox is the verdict cache and task table (the store's); nil
	// without a store. Required for a sandbox to be used.
	Sandbox sandbox.Store
	// Thread is the conversation memory (the store's); nil keeps no
	// memory (lookalike and VIP checks still run).
	Thread thread.Store
}

// Gateway is a running (or offline) mailguard.
type Gateway struct {
	log        *slog.Logger
	st         store.Store
	sbStore    sandbox.Store
	now        func() time.Time
	node       string
	pol        atomic.Pointer[policy.Policy]
	stage      atomic.Pointer[stages] // per-policy inspection machinery (YARA rules, resolver)
	inspectSem chan struct{}

	events *EventLog

	mu       sync.Mutex
	server   *smtp.Server
	queue    *smtp.Queue
	wakeQ    chan struct{}
	wakeHold chan struct{}
	reloaded chan struct{} // the sandbox runner restarts with the new stages
	recheck  chan string
	metrics  *http.Server

	conv *conversations // the conversation memory (thread.go)

	// local hands deliveries decided by this process straight to its
	// workers, leased in the deciding transaction (no separate claim);
	// slots bounds what may wait there. serving is set while the queue runs.
	local   chan store.Delivery
	slots   chan struct{}
	serving atomic.Bool
	lastDB  atomic.Int64 // unix nanos of the last claim from the store
	dbWork  atomic.Bool  // a delivery was queued in the store, not handed over in memory
	// localBytes counts message bytes waiting in local (bounded by
	// localBytesMax; beyond it a delivery reads its message from the store).
	localBytes atomic.Int64
}

// New builds a gateway for p. It compiles the YARA rules and prepares every
// stage; errors are configuration errors (see CheckExternal).
func New(opt Options) (*Gateway, error) {
	if opt.Policy == nil {
		return nil, errors.New("gateway: no policy")
	}
	g := &Gateway{log: opt.Log, st: opt.Store, sbStore: opt.Sandbox, now: opt.Now, node: opt.Node,
		wakeQ: make(chan struct{}, 1), wakeHold: make(chan struct{}, 1), reloaded: make(chan struct{}, 1), recheck: make(chan string, 1024),
		local: make(chan store.Delivery, localQueue), slots: make(chan struct{}, localQueue),
		inspectSem: make(chan struct{}, inspectConcurrency()), conv: &conversations{store: opt.Thread}}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.node == "" {
		g.node = opt.Policy.Gateway.Node
	}
	if g.node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "mailguard"
		}
		g.node = h
	}
	st, err := g.newStages(opt.Policy, opt.Resolver)
	if err != nil {
		return nil, err
	}
	g.pol.Store(opt.Policy)
	g.stage.Store(st)
	if g.events, err = OpenEventLog(opt.Policy.Log); err != nil {
		st.close()
		return nil, err
	}
	return g, nil
}

// Policy returns the policy in force.
func (g *Gateway) Policy() *policy.Policy { return g.pol.Load() }

// CheckExternal validates what the policy refers to outside itself (YARA
// rule files, TLS certificates), returning diagnostics positioned in those
// files where possible. `mailguard check`, serve and reload use it.
func CheckExternal(p *policy.Policy) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if len(p.YARA.Rules) > 0 {
		rules, rerrs, err := scan.Compile(p.YARA.Rules, p.Dir)
		if rules != nil {
			rules.Close()
		}
		for _, e := range rerrs {
			sev := hcl.DiagError
			if e.Warning {
				sev = hcl.DiagWarning
			}
			line := max(e.Line, 1)
			diags = append(diags, &hcl.Diagnostic{Severity: sev, Summary: "yara", Detail: e.Message,
				Subject: &hcl.Range{Filename: e.File, Start: hcl.Pos{Line: line, Column: 1}, End: hcl.Pos{Line: line, Column: 1}}})
		}
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "yara rules", Detail: err.Error(),
				Subject: policyRange(p, p.YARA.Body, "rules")})
		}
	}
	if t := p.Gateway.TLS; t != nil {
		for _, f := range []string{t.Cert, t.Key} {
			if _, err := os.Stat(f); err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "tls", Detail: err.Error(),
					Subject: policyRange(p, t.Body, "cert")})
			}
		}
	}
	return diags
}

func policyRange(p *policy.Policy, body hcl.Body, name string) *hcl.Range {
	if body == nil {
		return &hcl.Range{Filename: p.File, Start: hcl.InitialPos, End: hcl.InitialPos}
	}
	if a, diags := body.JustAttributes(); !diags.HasErrors() {
		if at, ok := a[name]; ok {
			r := at.Expr.Range()
			return &r
		}
	}
	r := body.MissingItemRange()
	return &r
}

// Reload swaps in a new policy whole, or keeps the old one and returns why.
func (g *Gateway) Reload(p *policy.Policy) error {
	if diags := CheckExternal(p); diags.HasErrors() {
		return fmt.Errorf("%s", policy.FormatDiagnostics(diags))
	}
	st, err := g.newStages(p, nil)
	if err != nil {
		return err
	}
	old := g.stage.Swap(st)
	g.pol.Store(p)
	wake(g.reloaded)
	// Scans already running finish with the old rules (scan.Engine keeps
	// them alive until their last scan returns).
	old.close()
	if err := g.events.switchTo(p.Log.Events); err != nil {
		g.log.Error("event log", "err", err)
	}
	g.log.Info("policy reloaded", "file", p.File, "rules", len(p.Rules))
	return nil
}

// ReopenEvents reopens the event log file after log rotation. SIGHUP calls
// it before reloading the policy, so rotation works even while the policy
// file has an error.
func (g *Gateway) ReopenEvents() error { return g.events.reopen() }

// Serve runs the gateway until ctx ends: it resumes what was in flight,
// opens the listeners, and runs the delivery queue and the hold loop. On
// cancellation it stops accepting, lets sessions finish within the
// policy's shutdown_timeout, and returns; the queue stays in the store.
func (g *Gateway) Serve(ctx context.Context) error {
	if g.st == nil {
		return errors.New("gateway: serve needs a store")
	}
	if err := g.Resume(ctx); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	p := g.Policy()
	srv, err := smtp.NewServer(serverConfig(p), g, g.log)
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	queue, err := g.newQueue(p)
	if err != nil {
		srv.Close()
		return err
	}
	g.mu.Lock()
	g.server, g.queue = srv, queue
	g.mu.Unlock()
	if err := g.startMetrics(p); err != nil {
		srv.Close()
		return err
	}
	qctx, stopQueue := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); g.runQueue(qctx, queue) }()
	go func() { defer wg.Done(); g.holdLoop(qctx) }()
	go func() { defer wg.Done(); g.retentionLoop(qctx) }()
	go func() { defer wg.Done(); g.runSandbox(qctx) }()
	for _, a := range srv.Addrs() {
		g.log.Info("listening", "addr", a.String())
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx) }()
	var result error
	select {
	case <-ctx.Done():
	case result = <-serveErr:
	}
	sctx, cancel := context.WithTimeout(context.Background(), p.Limits.Shutdown)
	if err := srv.Shutdown(sctx); err != nil {
		g.log.Warn("shutdown", "err", err)
	}
	cancel()
	stopQueue()
	wg.Wait()
	if !g.conv.drain(p.Limits.Shutdown) {
		g.log.Warn("conversation records still queued at shutdown were not all written")
	}
	g.stopMetrics()
	g.log.Info("stopped")
	return result
}

// Close releases the inspection machinery and the event log. The store
// belongs to the caller.
func (g *Gateway) Close() error {
	if st := g.stage.Load(); st != nil {
		st.close()
	}
	return g.events.Close()
}

func serverConfig(p *policy.Policy) smtp.Config {
	cfg := smtp.Config{
		Hostname:         p.Gateway.Hostname,
		LocalDomains:     p.Gateway.LocalDomains,
		InternalNetworks: p.Gateway.InternalPrefixes,
		TrustedProxies:   p.Gateway.TrustedPrefixes,
		MaxMessageBytes:  p.Limits.MaxMessageBytes,
		MaxRecipients:    p.Limits.MaxRecipients,
		CommandTimeout:   p.Limits.Command,
		DataTimeout:      p.Limits.Data,
		MaxConns:         p.Limits.MaxConnections,
		MaxConnsPerIP:    p.Limits.MaxConnectionsPerIP,
	}
	for _, a := range p.Gateway.Listen {
		cfg.Listen = append(cfg.Listen, smtp.Listener{Addr: a})
	}
	for _, a := range p.Gateway.ProxyListen {
		cfg.Listen = append(cfg.Listen, smtp.Listener{Addr: a, Proxy: true})
	}
	if t := p.Gateway.TLS; t != nil {
		cfg.CertFile, cfg.KeyFile = t.Cert, t.Key
	}
	return cfg
}

// Addrs returns the SMTP listeners' addresses once Serve has opened them.
func (g *Gateway) Addrs() []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.server == nil {
		return nil
	}
	return g.server.Addrs()
}

func (g *Gateway) startMetrics(p *policy.Policy) error {
	if p.Gateway.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", p.Gateway.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	// Profiles for diagnosing a live gateway; metrics_listen is meant for
	// a management network or loopback.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.mu.Lock()
	g.metrics = srv
	g.mu.Unlock()
	go srv.Serve(ln)
	return nil
}

func (g *Gateway) stopMetrics() {
	g.mu.Lock()
	srv := g.metrics
	g.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(ctx)
		cancel()
	}
}

// wake nudges a loop without blocking.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// runSandbox runs the scheduler of the stages in force, restarting it
// with the new one after a reload. Tasks live in the store, so a restart
// loses nothing.
func (g *Gateway) runSandbox(ctx context.Context) {
	for ctx.Err() == nil {
		st := g.stage.Load()
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if st.sched != nil {
				st.sched.Run(rctx)
			} else {
				<-rctx.Done()
			}
		}()
		select {
		case <-ctx.Done():
		case <-g.reloaded:
		}
		cancel()
		<-done
	}
}
