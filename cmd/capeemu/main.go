// Command capeemu runs the CAPEv2 API emulator (sandbox/capetest) as a
// process, for demos and end-to-end tests. It is not part of the mailguard
// binary.
//
//	capeemu -listen 127.0.0.1:8090 -verdicts verdicts.json -delay 2s
//
// verdicts.json maps lowercase SHA-256 to what analysing it yields; the key
// "*" is the default for other content:
//
//	{
//	  "*": {"profile": "clean"},
//	  "<sha256>": {"profile": "malicious", "malscore": 9.1, "signatures": ["injection_runpe"],
//	               "families": ["AgentTesla"], "delay": "30s"},
//	  "<sha256>": {"fail": "failed_analysis", "fail_times": 1},
//	  "<sha256>": {"never_finish": true},
//	  "<sha256>": {"children": ["<sha256>", "<sha256>"]},
//	  "<sha256>": {"profile": "family", "password": "Abc12345"}
//	}
//
// With -control ADDR a second listener lets tests turn knobs while it runs:
//
//	POST /down?mode=refuse|503|reset|up   POST /malformed?on=true|false
//	POST /latency?d=2s                    POST /throttle?rate=5/m
//	POST /delay?d=10s                     POST /verdict?sha256=<h>   (body: one verdict)
//	GET  /counters                        (requests per route, submissions per sha256)
//
// It prints "capeemu: api <URL>" (and "capeemu: control <URL>") on stdout
// once listening, and stops on SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailguard/mailguard/sandbox/capetest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "capeemu:", err)
		os.Exit(1)
	}
}

// run starts the emulator with args and serves until ctx ends.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("capeemu", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "API listen address")
	verdicts := fs.String("verdicts", "", "JSON file of verdicts by sha256 (\"*\" for the default)")
	delay := fs.Duration("delay", 0, "time from submission to reported")
	tokens := fs.String("tokens", "", "comma-separated API keys; enables token authentication")
	staff := fs.String("staff-tokens", "", "comma-separated API keys of staff users (never throttled)")
	throttle := fs.String("throttle", "", "DRF rate per user shared by all endpoints, e.g. 5/m")
	useTLS := fs.Bool("tls", false, "serve HTTPS with a self-signed certificate")
	certOut := fs.String("cert-out", "", "with -tls: write the certificate (PEM) here, for the client's CA file")
	maxSize := fs.Int64("max-sample-size", 0, "web.conf max_sample_size (default 30000000)")
	unique := fs.Bool("unique", false, "refuse content seen in the last 24 hours")
	control := fs.String("control", "", "listen address of the control endpoint (off when empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := capetest.Config{Addr: *listen, TLS: *useTLS, Delay: *delay, Throttle: *throttle,
		Tokens: splitList(*tokens), StaffTokens: splitList(*staff), MaxSampleSize: *maxSize, Unique: *unique}
	if *verdicts != "" {
		var err error
		if cfg.Verdicts, cfg.Default, err = loadVerdicts(*verdicts); err != nil {
			return err
		}
	}
	srv, err := capetest.Start(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	if *certOut != "" && *useTLS {
		if err := os.WriteFile(*certOut, srv.CertPEM(), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "capeemu: api %s\n", srv.URL)
	if *control != "" {
		ln, err := net.Listen("tcp", *control)
		if err != nil {
			return fmt.Errorf("control: %w", err)
		}
		cs := &http.Server{Handler: controlHandler(srv), ReadHeaderTimeout: 10 * time.Second}
		go cs.Serve(ln)
		defer cs.Close()
		fmt.Fprintf(stdout, "capeemu: control http://%s/\n", ln.Addr())
	}
	<-ctx.Done()
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

var sha256Key = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// loadVerdicts reads a verdicts file strictly: unknown fields and keys that
// are not a SHA-256 (or "*") are errors, so a typo does not silently yield
// a clean verdict.
func loadVerdicts(path string) (map[string]capetest.Verdict, capetest.Verdict, error) {
	var def capetest.Verdict
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, def, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, def, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]capetest.Verdict{}
	for k, r := range raw {
		v, err := decodeVerdict(r)
		if err != nil {
			return nil, def, fmt.Errorf("%s: %s: %w", path, k, err)
		}
		switch {
		case k == "*":
			def = v
		case sha256Key.MatchString(k):
			out[strings.ToLower(k)] = v
		default:
			return nil, def, fmt.Errorf("%s: key %q is not a sha256 or \"*\"", path, k)
		}
	}
	return out, def, nil
}

func decodeVerdict(b []byte) (capetest.Verdict, error) {
	var v capetest.Verdict
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(&v)
	return v, err
}

// controlHandler serves the knobs (see the package comment).
func controlHandler(srv *capetest.Server) http.Handler {
	mux := http.NewServeMux()
	knob := func(path string, f func(r *http.Request) error) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			if err := f(r); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			io.WriteString(w, "ok\n")
		})
	}
	knob("/down", func(r *http.Request) error {
		modes := map[string]capetest.DownMode{"up": capetest.Up, "refuse": capetest.Refuse, "503": capetest.Unavailable, "reset": capetest.Reset}
		m, ok := modes[r.URL.Query().Get("mode")]
		if !ok {
			return errors.New("mode: up, refuse, 503 or reset")
		}
		return srv.SetDown(m)
	})
	knob("/malformed", func(r *http.Request) error {
		on, err := strconv.ParseBool(r.URL.Query().Get("on"))
		srv.SetMalformed(on)
		return err
	})
	knob("/latency", func(r *http.Request) error {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		srv.SetLatency(d)
		return err
	})
	knob("/delay", func(r *http.Request) error {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		srv.SetDelay(d)
		return err
	})
	knob("/throttle", func(r *http.Request) error { return srv.SetThrottle(r.URL.Query().Get("rate")) })
	knob("/verdict", func(r *http.Request) error {
		h := r.URL.Query().Get("sha256")
		if !sha256Key.MatchString(h) {
			return errors.New("sha256: want 64 hex digits")
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return err
		}
		v, err := decodeVerdict(b)
		if err == nil {
			srv.SetVerdict(h, v)
		}
		return err
	})
	mux.HandleFunc("GET /counters", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(srv.Counters())
	})
	return mux
}
