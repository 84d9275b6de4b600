package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mailguard/mailguard/gateway"
	"github.com/mailguard/mailguard/policy"
	"github.com/mailguard/mailguard/store"
)

// cmdPurge runs the policy's retention block once, as serve does every
// retention.interval. --now is for planning ("what goes in ten days?")
// and for tests; it is an RFC 3339 time or a duration from now.
func cmdPurge(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := configFlag(fs)
	dry := fs.Bool("dry-run", false, "list what would be removed, change nothing")
	nowFlag := fs.String("now", "", "purge as of this time (RFC 3339, or a duration from now such as 10d)")
	asJSON := fs.Bool("json", false, "print the totals (and with --dry-run the IDs) as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", pos[0]))
	}
	now, err := parseNow(*nowFlag, time.Now())
	if err != nil {
		return err
	}
	p, st, err := openStore(*cfg, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	ev, err := gateway.OpenEventLog(p.Log)
	if err != nil {
		return err
	}
	defer ev.Close()
	var all store.Purged
	opt := gateway.PurgeOptions{Now: now, DryRun: *dry, Actor: gateway.RetentionActor + " (run by " + actor() + ")",
		Each: func(b store.Purged) {
			if *dry {
				all.Deleted, all.Content = append(all.Deleted, b.Deleted...), append(all.Content, b.Content...)
				all.Records, all.Blobs = append(all.Records, b.Records...), append(all.Blobs, b.Blobs...)
			}
		}}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := gateway.Purge(context.Background(), st, p, ev, log, opt)
	if err != nil {
		return err
	}
	if *asJSON {
		out := map[string]any{"dry_run": *dry, "now": now.UTC(), "removed": rep}
		if *dry {
			out["deleted"], out["content"], out["records"], out["blobs"] = orEmpty(all.Deleted), orEmpty(all.Content),
				orEmpty(all.Records), orEmpty(all.Blobs)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	verb := "removed"
	if *dry {
		verb = "would remove"
		for _, l := range []struct {
			what string
			ids  []string
		}{{"delete", all.Deleted}, {"content", all.Content}, {"record", all.Records}, {"blob", all.Blobs}} {
			for _, id := range l.ids {
				fmt.Fprintf(stdout, "%s %s\n", l.what, id)
			}
		}
	}
	fmt.Fprintf(stdout, "%s: %d quarantined messages deleted, content of %d messages, %d records, %d blobs, %d expired verdicts (%d bytes)\n",
		verb, rep.Deleted, rep.Content, rep.Records, rep.Blobs, rep.Verdicts, rep.Bytes)
	return nil
}

// parseNow reads --now: empty (now), an RFC 3339 time, or a duration from
// now ("10d", "-2h").
func parseNow(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	neg := strings.HasPrefix(s, "-")
	d, err := policy.ParseDuration(strings.TrimLeft(s, "+-"))
	if err != nil {
		return time.Time{}, usageError(fmt.Sprintf("--now %q: want an RFC 3339 time or a duration such as 10d", s))
	}
	if neg {
		d = -d
	}
	return now.Add(d), nil
}
