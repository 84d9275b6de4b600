// Package cape is the sandbox.Client for CAPEv2's REST API (/apiv2/), written
// to shared/reference/cape-api.md: multipart submission with CAPE's form
// fields and "options" string, status polling, streaming report parsing
// (malscore, malstatus, signatures, detections), hash search before upload,
// token authentication, TLS with a private CA, a client-side request rate
// limit and a cap on concurrent requests.
//
// CAPE's error envelope is loosely typed: most failures are HTTP 200 with
// "error": true, while "error" as false, [] or absent all mean success. The
// client turns every outcome into either a result or a classified
// *sandbox.Error (temporary or permanent, with a kind). It knows nothing of
// mail; what a verdict means is the caller's business.
package cape

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailguard/mailguard/sandbox"
)

// Defaults for Config's zero values.
const (
	DefaultMaxConcurrent  = 4
	DefaultRequestTimeout = time.Minute
	DefaultUploadTimeout  = 5 * time.Minute
	DefaultMaxSampleSize  = 30000000 // web.conf [general] max_sample_size
	DefaultMaxReportBytes = 256 << 20
	DefaultSearchMaxAge   = 7 * 24 * time.Hour
	// defaultPause is how long to stop after a 429 without Retry-After.
	defaultPause = 30 * time.Second
	// maxBody bounds every answer except reports.
	maxBody = 32 << 20
)

// Config configures a Client. The zero value of every field but URL is a
// documented default.
type Config struct {
	// URL is the API base, such as "http://127.0.0.1:8000/apiv2/". A missing
	// trailing slash is added; every request path ends in "/" as CAPE's
	// routes require.
	URL string
	// Token is the API key, sent as "Authorization: Token <key>" when set.
	Token string
	// CAFile is a PEM file of CA certificates trusted in addition to the
	// system ones (for a CAPE behind a private CA).
	CAFile string
	// InsecureSkipVerify turns TLS certificate verification off.
	InsecureSkipVerify bool
	// RequestsPerMinute limits requests of every kind together, as CAPE's
	// throttle counts them (its default is 5/m per user); 0 means no limit.
	RequestsPerMinute float64
	// Burst is the limiter's burst; default 1.
	Burst int
	// MaxConcurrent caps requests in flight at once; default 4.
	MaxConcurrent int
	// RequestTimeout bounds one request (reports included); default 1m.
	RequestTimeout time.Duration
	// UploadTimeout bounds one submission; default 5m.
	UploadTimeout time.Duration
	// MaxSampleSize refuses larger files before uploading; default
	// 30000000 (CAPE's max_sample_size).
	MaxSampleSize int64
	// MaxReportBytes bounds a report download; default 256 MiB. Reports are
	// parsed as a stream, so memory stays small whatever the size.
	MaxReportBytes int64
	// SearchMaxAge ignores older tasks when searching by hash; default 7
	// days.
	SearchMaxAge time.Duration
	// Defaults are submission fields applied to every file before its own
	// Options.
	Defaults Submission
	// HTTPClient replaces the client built from the TLS settings.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Submission holds tasks/create/file/ fields (cape-api.md §5.1). Empty
// values are not sent, so CAPE's defaults apply.
type Submission struct {
	Package  string
	Timeout  int // analysis seconds; 0 is cuckoo.conf's default (200)
	Priority int
	Machine  string
	Platform string
	Tags     string
	Route    string
	// Options are analysis options joined into CAPE's "k=v,k=v" string.
	Options map[string]string
}

// Client talks to one CAPEv2 instance. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	token    string
	hc       *http.Client
	limiter  *rate.Limiter
	sem      chan struct{}
	cfg      Config
	now      func() time.Time
	mu       sync.Mutex
	pauseEnd time.Time // no requests before this (after a 429)
}

var (
	_ sandbox.Client   = (*Client)(nil)
	_ sandbox.Searcher = (*Client)(nil)
)

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(cfg.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("cape: url %q: want http(s)://host/apiv2/", cfg.URL)
	}
	if strings.ContainsFunc(cfg.Token, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return nil, errors.New("cape: token must be printable ASCII without spaces")
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = DefaultUploadTimeout
	}
	if cfg.MaxSampleSize <= 0 {
		cfg.MaxSampleSize = DefaultMaxSampleSize
	}
	if cfg.MaxReportBytes <= 0 {
		cfg.MaxReportBytes = DefaultMaxReportBytes
	}
	if cfg.SearchMaxAge <= 0 {
		cfg.SearchMaxAge = DefaultSearchMaxAge
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 1
	}
	c := &Client{base: base, token: cfg.Token, cfg: cfg, now: cfg.Now,
		sem: make(chan struct{}, cfg.MaxConcurrent)}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.RequestsPerMinute > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.RequestsPerMinute/60), cfg.Burst)
	}
	c.hc = cfg.HTTPClient
	if c.hc == nil {
		if c.hc, err = newHTTPClient(cfg); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func newHTTPClient(cfg Config) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.MaxConcurrent
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.CAFile != "" {
		pemBytes, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cape: ca file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("cape: ca file %s: no PEM certificates", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	tr.TLSClientConfig = tc
	return &http.Client{
		Transport: tr,
		// A redirect means a wrong URL (missing slash, http→https, a login
		// page): report it instead of following it with the token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// response is a read answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request builds a request for path (relative to the API base, ending in "/").
func (c *Client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	u := *c.base
	u.Path += path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, &sandbox.Error{Op: "request", Kind: sandbox.KindInternal, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mailguard-sandbox/1")
	if c.token != "" {
		req.Header.Set("Authorization", "Token "+c.token)
	}
	return req, nil
}

// get performs a GET and returns the answer read up to maxBody.
func (c *Client) get(ctx context.Context, op, path string) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	var resp *response
	err = c.roundTrip(ctx, op, req, func(r *http.Response) error {
		b, err := readLimited(r.Body, maxBody)
		if err != nil {
			return classifyReadErr(op, err)
		}
		resp = &response{status: r.StatusCode, header: r.Header, body: b}
		return nil
	})
	return resp, err
}

// roundTrip waits for the rate limiter and a concurrency slot, sends req and
// hands the answer to read while the slot is held.
func (c *Client) roundTrip(ctx context.Context, op string, req *http.Request, read func(*http.Response) error) error {
	if wait := c.paused(); wait > 0 {
		return &sandbox.Error{Op: op, Kind: sandbox.KindRateLimited, Temporary: true, RetryAfter: wait,
			Msg: "throttled by the sandbox; not sending until Retry-After has passed"}
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return &sandbox.Error{Op: op, Kind: sandbox.KindRateLimited, Temporary: true,
				Msg: "client-side rate limit", Err: err}
		}
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return &sandbox.Error{Op: op, Kind: sandbox.KindUnavailable, Temporary: true, Msg: "waiting for a request slot", Err: ctx.Err()}
	}
	defer func() { <-c.sem }()
	resp, err := c.hc.Do(req)
	if err != nil {
		return classifyTransportErr(op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests {
		// CAPE's throttle budget is shared by every endpoint: stop them all.
		c.pause(retryAfter(resp.Header.Get("Retry-After"), c.now()))
	}
	return read(resp)
}

func (c *Client) paused() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pauseEnd.Sub(c.now())
}

func (c *Client) pause(d time.Duration) {
	if d <= 0 {
		d = defaultPause
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if end := c.now().Add(d); end.After(c.pauseEnd) {
		c.pauseEnd = end
	}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return t.Sub(now)
	}
	return 0
}

var errTooLarge = errors.New("answer too large")

// readLimited reads r up to max bytes; more is errTooLarge.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errTooLarge
	}
	return b, nil
}

// envelope is CAPE's loosely typed answer (cape-api.md §1.2).
type envelope struct {
	Error      json.RawMessage `json:"error"`
	ErrorValue json.RawMessage `json:"error_value"`
	Errors     json.RawMessage `json:"errors"`
	Data       json.RawMessage `json:"data"`
	Detail     json.RawMessage `json:"detail"`
}

// failed implements the client rule: a call failed only if error === true.
func (e *envelope) failed() bool { return bytes.Equal(bytes.TrimSpace(e.Error), []byte("true")) }

// message is error_value as text.
func (e *envelope) message() string { return jsonText(e.ErrorValue) }

// fileError is one item of "errors".
type fileError struct{ name, msg string }

func (f fileError) String() string {
	if f.name == "" {
		return f.msg
	}
	return f.name + ": " + f.msg
}

// items flattens "errors": one-key objects {"<file>": "msg"} or
// {"<file>": {"error": "msg"}}, or plain strings.
func (e *envelope) items() []fileError {
	var raw []json.RawMessage
	if json.Unmarshal(e.Errors, &raw) != nil {
		if s := jsonText(e.Errors); s != "" && s != "null" {
			return []fileError{{msg: s}}
		}
		return nil
	}
	var out []fileError
	for _, it := range raw {
		var obj map[string]json.RawMessage
		if json.Unmarshal(it, &obj) == nil {
			for name, v := range obj {
				var inner map[string]json.RawMessage
				msg := jsonText(v)
				if json.Unmarshal(v, &inner) == nil {
					if m, ok := inner["error"]; ok {
						msg = jsonText(m)
					}
				}
				out = append(out, fileError{name, msg})
			}
			continue
		}
		out = append(out, fileError{msg: jsonText(it)})
	}
	return out
}

// jsonText is a JSON string's value, or the JSON text of anything else.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// decodeEnvelope checks the HTTP status and parses a JSON answer. A logical
// failure (200 with error: true) is returned as the envelope with ok false,
// for the caller to classify by endpoint.
func decodeEnvelope(op string, r *response) (env *envelope, ok bool, err error) {
	if err := statusError(op, r); err != nil {
		return nil, false, err
	}
	env = &envelope{}
	if err := json.Unmarshal(r.body, env); err != nil {
		return nil, false, bodyError(op, r, err)
	}
	return env, !env.failed(), nil
}

// bodyError classifies a 200 answer that is not the JSON expected: an HTML
// page means the URL does not point at the API; garbled JSON may be a
// passing glitch.
func bodyError(op string, r *response, err error) error {
	if looksHTML(r.body) {
		return &sandbox.Error{Op: op, Kind: sandbox.KindConfig, HTTPStatus: r.status,
			Msg: "HTML page instead of JSON: check that the URL is the /apiv2/ base"}
	}
	return &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Temporary: true, HTTPStatus: r.status,
		Msg: "malformed JSON", Err: err}
}

func looksHTML(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '<'
}

// statusError classifies a non-200 answer (cape-api.md §1.2, §3).
func statusError(op string, r *response) error {
	if r.status == http.StatusOK {
		return nil
	}
	e := &sandbox.Error{Op: op, HTTPStatus: r.status, Msg: detail(r.body)}
	switch s := r.status; {
	case s >= 300 && s < 400:
		e.Kind, e.Msg = sandbox.KindConfig, "redirected to "+r.header.Get("Location")+": check the URL (scheme, trailing slash)"
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		e.Kind = sandbox.KindAuth
	case s == http.StatusTooManyRequests:
		e.Kind, e.Temporary = sandbox.KindRateLimited, true
		e.RetryAfter = retryAfter(r.header.Get("Retry-After"), time.Now())
		if e.RetryAfter <= 0 {
			e.RetryAfter = defaultPause
		}
	case s == http.StatusNotFound && looksHTML(r.body):
		e.Kind, e.Msg = sandbox.KindConfig, "no such API route (Django HTML 404): check that the URL ends in /apiv2/"
	case s == http.StatusNotFound:
		e.Kind = sandbox.KindNotFound
	case s == http.StatusRequestEntityTooLarge:
		e.Kind = sandbox.KindRejected
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s >= 500:
		e.Kind, e.Temporary = sandbox.KindUnavailable, true
		e.RetryAfter = retryAfter(r.header.Get("Retry-After"), time.Now())
	default:
		e.Kind = sandbox.KindProtocol
	}
	return e
}

// detail extracts a message from an error body: DRF's "detail", CAPE's
// "error_value", or the start of an HTML page's title.
func detail(b []byte) string {
	var env envelope
	if json.Unmarshal(b, &env) == nil {
		if m := jsonText(env.Detail); m != "" {
			return m
		}
		if m := env.message(); m != "" {
			return m
		}
	}
	if i := bytes.Index(b, []byte("<title>")); i >= 0 {
		t := b[i+len("<title>"):]
		if j := bytes.Index(t, []byte("</title>")); j >= 0 {
			t = t[:j]
		}
		return strings.TrimSpace(string(t[:min(len(t), 120)]))
	}
	return ""
}

// classifyTransportErr sorts errors from http.Client.Do.
func classifyTransportErr(op string, err error) error {
	e := &sandbox.Error{Op: op, Kind: sandbox.KindUnavailable, Temporary: true, Err: err}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	var ve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci), errors.As(err, &ve):
		e.Kind, e.Temporary, e.Msg = sandbox.KindConfig, false, "tls verification failed (set a CA file?)"
	case errors.As(err, &rh):
		e.Kind, e.Temporary, e.Msg = sandbox.KindConfig, false, "tls to a server that does not speak tls (http:// URL?)"
	case errors.Is(err, context.DeadlineExceeded):
		e.Msg = "timeout"
	}
	return e
}

func classifyReadErr(op string, err error) error {
	if errors.Is(err, errTooLarge) {
		return &sandbox.Error{Op: op, Kind: sandbox.KindProtocol, Msg: "answer larger than the limit"}
	}
	return &sandbox.Error{Op: op, Kind: sandbox.KindUnavailable, Temporary: true, Msg: "reading the answer", Err: err}
}

// peekByte returns the first non-space byte of br without consuming it.
func peekByte(br *bufio.Reader) byte {
	for i := 1; i <= 512; i++ {
		b, err := br.Peek(i)
		if len(b) < i {
			return 0
		}
		if c := b[i-1]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c
		}
		if err != nil {
			return 0
		}
	}
	return 0
}
