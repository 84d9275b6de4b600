package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailguard/mailguard/attach"
	"github.com/mailguard/mailguard/gateway"
)

func cmdScan(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := configFlag(fs)
	from := fs.String("from", "", "envelope sender (MAIL FROM)")
	var rcpts listFlag
	fs.Var(&rcpts, "rcpt", "envelope recipient (repeatable); default: the first local domain's postmaster")
	clientIP := fs.String("client-ip", "", "the client's address, as serve would see it")
	helo := fs.String("helo", "", "the client's HELO name")
	asJSON := fs.Bool("json", false, "print the decision as JSON (one object per file)")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usageError("no .eml file given")
	}
	p, err := loadPolicy(*cfg, stderr)
	if err != nil {
		return err
	}
	var ip netip.Addr
	if *clientIP != "" {
		if ip, err = netip.ParseAddr(*clientIP); err != nil {
			return usageError(fmt.Sprintf("--client-ip %q: %v", *clientIP, err))
		}
	}
	if len(rcpts) == 0 && len(p.Gateway.LocalDomains) > 0 {
		rcpts = listFlag{"postmaster@" + p.Gateway.LocalDomains[0]}
	}
	opt := gateway.Options{Policy: p}
	// The conversation memory is read (not written) when the store exists,
	// so that scan decides as serve would.
	if storeExists(p) {
		st, err := openBackend(p)
		if err != nil {
			return err
		}
		defer st.Close()
		opt.Store, opt.Sandbox, opt.Thread = st, st.Sandbox(), st.Thread()
	}
	g, err := gateway.New(opt)
	if err != nil {
		return err
	}
	defer g.Close()
	status := 0
	for _, name := range files {
		if err := scanFile(g, name, gateway.Envelope{ID: "scan", Direction: gateway.Direction(p, ip, rcpts),
			ClientIP: ip, HELO: *helo, MailFrom: *from, Rcpts: rcpts, Received: time.Now()}, *asJSON, stdout); err != nil {
			fmt.Fprintf(stderr, "mailguard scan: %s: %v\n", name, err)
			status = 1
		}
	}
	if status != 0 {
		return exitError(status)
	}
	return nil
}

func scanFile(g *gateway.Gateway, name string, env gateway.Envelope, asJSON bool, stdout io.Writer) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	skip := mboxFromLine(f)
	msg := io.NewSectionReader(f, skip, info.Size()-skip)
	rep, err := g.Inspect(context.Background(), env, msg, info.Size()-skip, gateway.InspectOptions{Offline: true})
	if err != nil {
		return err
	}
	defer rep.Close()
	rep.ID = ""
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(stdout, name, rep)
	return nil
}

// mboxFromLine is the length of an mbox "From " separator line at the
// start of a saved message (Thunderbird, mutt and formail keep it when
// they save one message from a mailbox), or 0. It is not part of the
// message: SMTP never carries it, and left in, it is a malformed header
// line that no real delivery would show.
func mboxFromLine(r io.ReaderAt) int64 {
	var head [1024]byte
	n, _ := r.ReadAt(head[:], 0)
	b := head[:n]
	if !bytes.HasPrefix(b, []byte("From ")) {
		return 0
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return 0
	}
	// The next line must be a header field for the first to be a
	// separator and not the start of a broken header.
	rest := b[i+1:]
	colon := bytes.IndexByte(rest, ':')
	if colon <= 0 || bytes.ContainsAny(rest[:colon], " \t\r\n") {
		return 0
	}
	return int64(i + 1)
}

// printReport is the human form of a decision.
func printReport(w io.Writer, name string, rep *gateway.Report) {
	fmt.Fprintf(w, "%s: %s (score %g)", name, rep.Action, rep.Score)
	if rep.Rule != "" {
		fmt.Fprintf(w, " by rule %s", rep.Rule)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  reasons: %s\n", joinTags(rep.Reasons))
	if rep.Auth != nil {
		fmt.Fprintf(w, "  auth:    spf=%s dmarc=%s (%s) dkim=%s\n", rep.Auth.SPF.Status, rep.Auth.DMARC.Status,
			orDash(rep.Auth.DMARC.HeaderFrom), dkimSummary(rep))
	}
	if rep.Header.Subject != "" {
		fmt.Fprintf(w, "  subject: %s\n", rep.Header.Subject)
	}
	for _, e := range rep.Explain {
		line := string(e.Reason)
		if e.Path != "" {
			line += " [" + e.Path + "]"
		}
		if e.Detail != "" {
			line += ": " + e.Detail
		}
		fmt.Fprintf(w, "    - %s\n", line)
	}
	if len(rep.Files) > 0 {
		fmt.Fprintln(w, "  files:")
		for _, f := range rep.Files {
			printFile(w, f)
		}
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
}

func printFile(w io.Writer, f *attach.File) {
	var flags []string
	if f.Encrypted {
		flags = append(flags, "encrypted")
	}
	if f.Decrypted {
		flags = append(flags, "decrypted with a "+string(f.PasswordSource)+" password")
	}
	if f.Derived {
		flags = append(flags, "derived")
	}
	var tags []string
	for _, fd := range f.Findings {
		tags = append(tags, string(fd.Tag))
	}
	line := fmt.Sprintf("%s%s  %s  %d bytes  sha256:%.16s…", strings.Repeat("  ", f.Depth+2), displayName(f), f.Type, f.Size, f.SHA256)
	if len(flags) > 0 {
		line += "  (" + strings.Join(flags, ", ") + ")"
	}
	if len(tags) > 0 {
		line += "  " + strings.Join(tags, ",")
	}
	fmt.Fprintln(w, line)
}

func displayName(f *attach.File) string {
	n := f.Name
	if n == "" {
		n = filepath.Base(f.Path)
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return '?'
		}
		return r
	}, n)
}

func dkimSummary(rep *gateway.Report) string {
	if rep.Auth == nil || len(rep.Auth.DKIM) == 0 {
		return "none"
	}
	var parts []string
	for _, d := range rep.Auth.DKIM {
		parts = append(parts, fmt.Sprintf("%s(%s)", d.Status, d.Domain))
	}
	return strings.Join(parts, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
