package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/mailguard/mailguard/gateway"
)

// qUnlock re-runs the inspection of a held or quarantined message with an
// operator-supplied password and decides it again (DDEI's "unlock
// password-protected files and scan again"). It runs beside serve: it
// opens the same policy and store, builds a gateway as scan does, and
// applies the new decision through the store, where the running serve
// picks up a delivery. The password is never stored or printed.
func qUnlock(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quarantine unlock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := configFlag(fs)
	var pws listFlag
	fs.Var(&pws, "password", "password to try (repeatable)")
	fromStdin := fs.Bool("password-stdin", false, "read passwords from standard input, one per line (keeps them out of ps)")
	note := fs.String("note", "", "why (recorded in the audit trail)")
	asJSON := fs.Bool("json", false, "print the new state as JSON")
	ids, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return usageError("unlock takes exactly one message ID")
	}
	if *fromStdin {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			if l := strings.TrimRight(sc.Text(), "\r"); l != "" {
				pws = append(pws, l)
			}
		}
	}
	if len(pws) == 0 {
		return usageError("unlock needs --password P or --password-stdin")
	}
	p, err := loadPolicy(*cfg, stderr)
	if err != nil {
		return err
	}
	st, err := openBackend(p)
	if err != nil {
		return err
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := gateway.New(gateway.Options{Policy: p, Store: st, Sandbox: st.Sandbox(), Thread: st.Thread(), Log: log})
	if err != nil {
		return err
	}
	defer g.Close()
	m, err := g.Redecide(context.Background(), ids[0], pws, actor(), *note)
	if err != nil {
		return fmt.Errorf("unlock %s: %w", ids[0], err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"id": m.ID, "state": m.State, "action": m.Action, "reasons": m.Reasons})
	}
	fmt.Fprintf(stdout, "unlocked %s: %s (%s)\n", m.ID, m.State, strings.Join(m.Reasons, ", "))
	return nil
}
