package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/hcl/v2"

	"github.com/mailguard/mailguard/gateway"
	"github.com/mailguard/mailguard/policy"
)

// loadPolicy loads and fully validates the policy, printing diagnostics.
func loadPolicy(path string, stderr io.Writer) (*policy.Policy, error) {
	p, diags := policy.Load(path)
	if p != nil {
		diags = policy.SortDiagnostics(append(diags, gateway.CheckExternal(p)...))
	}
	if len(diags) > 0 {
		fmt.Fprint(stderr, policy.FormatDiagnostics(diags))
	}
	if p == nil || diags.HasErrors() {
		return nil, exitError(1)
	}
	return p, nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := configFlag(fs)
	builtin := fs.Bool("builtin", false, "print the built-in rules with this policy's thresholds")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	p, err := loadPolicy(*cfg, stderr)
	if err != nil {
		return err
	}
	if *builtin {
		fmt.Fprint(stdout, p.BuiltinRules())
		return nil
	}
	fmt.Fprintf(stdout, "%s: ok\n", *cfg)
	return nil
}

func newLogger(p *policy.Policy, w io.Writer) *slog.Logger {
	lvl := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo,
		"warn": slog.LevelWarn, "error": slog.LevelError}[p.Log.Level]
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
}

func cmdServe(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := configFlag(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	p, err := loadPolicy(*cfg, stderr)
	if err != nil {
		return err
	}
	log := newLogger(p, stderr)
	st, err := openBackend(p)
	if err != nil {
		return err
	}
	defer st.Close()
	g, err := gateway.New(gateway.Options{Policy: p, Store: st, Sandbox: st.Sandbox(), Thread: st.Thread(), Log: log})
	if err != nil {
		return err
	}
	defer g.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			reload(g, *cfg, log)
		}
	}()
	log.Info("starting", "config", *cfg, "store", storeName(p), "hostname", p.Gateway.Hostname)
	return g.Serve(ctx)
}

// reload re-reads the policy on SIGHUP; an invalid one keeps the old policy.
func reload(g *gateway.Gateway, path string, log *slog.Logger) {
	if err := g.ReopenEvents(); err != nil {
		log.Error("event log reopen", "err", err)
	}
	p, diags := policy.Load(path)
	if p != nil {
		diags = append(diags, gateway.CheckExternal(p)...)
	}
	if p == nil || diags.HasErrors() {
		log.Error("policy reload refused, keeping the old policy", "config", path,
			"errors", errorsOf(diags))
		return
	}
	if err := g.Reload(p); err != nil {
		log.Error("policy reload refused, keeping the old policy", "config", path, "err", err)
	}
}

func errorsOf(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			out = append(out, policy.FormatDiagnostics(hcl.Diagnostics{d}))
		}
	}
	return out
}
