package policy

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/mailguard/mailguard/reason"
)

// validator collects diagnostics with the position of the offending
// attribute (or list element), so that every error is reported at once.
type validator struct{ diags hcl.Diagnostics }

// rangeOf returns the range of attribute name in body, of its idx-th list
// element when idx >= 0, or of the block when the attribute is absent.
func rangeOf(body hcl.Body, name string, idx int) *hcl.Range {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	a, ok := sb.Attributes[name]
	if !ok {
		r := sb.SrcRange
		return &r
	}
	if idx >= 0 {
		if t, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok && idx < len(t.Exprs) {
			r := t.Exprs[idx].Range()
			return &r
		}
	}
	r := a.Expr.Range()
	return &r
}

func (v *validator) errf(body hcl.Body, name string, idx int, summary, format string, args ...any) {
	v.diags = append(v.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary,
		Detail: fmt.Sprintf(format, args...), Subject: rangeOf(body, name, idx)})
}

func (v *validator) warnf(body hcl.Body, name string, idx int, summary, format string, args ...any) {
	v.diags = append(v.diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: summary,
		Detail: fmt.Sprintf(format, args...), Subject: rangeOf(body, name, idx)})
}

// duration parses s ("30s", "5m", "7d") or returns def when s is empty.
func (v *validator) duration(body hcl.Body, name, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := ParseDuration(s)
	if err != nil || d <= 0 {
		v.errf(body, name, -1, "invalid duration", "%q: use a positive number with a unit: s, m, h or d (for example \"30s\", \"7d\")", s)
		return def
	}
	return d
}

// ParseDuration is time.ParseDuration with a "d" (24h) unit.
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return 0, err
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

var sizeRE = regexp.MustCompile(`^(?i)\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$`)

// ParseSize parses "50MB", "512KiB", "1048576". K, M and G are powers of
// 1024, as mail administrators usually mean them.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[strings.ToLower(m[2])]
	return int64(n * mult), nil
}

func (v *validator) size(body hcl.Body, name, s string, def int64) int64 {
	if s == "" {
		return def
	}
	n, err := ParseSize(s)
	if err != nil || n <= 0 {
		v.errf(body, name, -1, "invalid size", "%q: use a positive number with an optional unit: KB, MB, GB (powers of 1024)", s)
		return def
	}
	return n
}

func (v *validator) prefixes(body hcl.Body, name string, l []string) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range l {
		p, err := parsePrefix(s)
		if err != nil {
			v.errf(body, name, i, "invalid network", "%q: want an address or CIDR such as 10.0.0.0/8 or 2001:db8::/32", s)
			continue
		}
		out = append(out, p)
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		if p.Masked() != p {
			return p, fmt.Errorf("host bits set")
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (v *validator) hostPorts(body hcl.Body, name string, l []string) {
	for i, s := range l {
		v.hostPort(body, name, i, s)
	}
}

func (v *validator) hostPort(body hcl.Body, name string, idx int, s string) {
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < 0 || n > 65535) {
			err = fmt.Errorf("port out of range")
		}
		if err == nil && host != "" && net.ParseIP(host) == nil && !validHostname(host) {
			err = fmt.Errorf("bad host")
		}
	}
	if err != nil {
		v.errf(body, name, idx, "invalid address", "%q: want host:port, for example \"127.0.0.1:2525\" or \"[::1]:25\"", s)
	}
}

var hostnameRE = regexp.MustCompile(`^(?i)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$`)

func validHostname(s string) bool { return len(s) <= 253 && hostnameRE.MatchString(s) }

func (v *validator) oneOf(body hcl.Body, name, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.errf(body, name, -1, "invalid value", "%q: want one of %s", s, strings.Join(allowed, ", "))
}

func (v *validator) nonNegative(body hcl.Body, name string, n float64) {
	if n < 0 {
		v.errf(body, name, -1, "invalid value", "%v: must not be negative", n)
	}
}

// validate fills defaults and checks every block.
func (p *Policy) validate(v *validator) {
	p.validateGateway(v)
	p.validateLimits(v)
	p.validateStoreDelivery(v)
	p.validateDNSAuth(v)
	p.validateInspection(v)
	p.validateSandboxes(v)
	p.validateReputation(v)
	p.validateConversations(v)
	p.validateLists(v)
	p.validateScoring(v)
	p.validateRetention(v)
	if p.Log == nil {
		p.Log = &Log{}
	}
	if p.Log.Level == "" {
		p.Log.Level = DefaultLevel
	}
	p.Log.Events = p.Path(p.Log.Events)
	v.oneOf(p.Log.Body, "level", p.Log.Level, "debug", "info", "warn", "error")
	if p.Settings == nil {
		p.Settings = &RulesSettings{}
	}
	if p.Settings.OnError == "" {
		p.Settings.OnError = DefaultOnError
	}
	v.oneOf(p.Settings.Body, "on_error", p.Settings.OnError, "tempfail", "hold")
}

func (p *Policy) validateGateway(v *validator) {
	g := &p.Gateway
	if g.Hostname == "" {
		g.Hostname = DefaultHostname
	} else if !validHostname(g.Hostname) {
		v.errf(g.Body, "hostname", -1, "invalid hostname", "%q is not a host name", g.Hostname)
	}
	if len(g.Listen)+len(g.ProxyListen) == 0 {
		v.errf(g.Body, "listen", -1, "no listener", "gateway needs at least one address in listen or proxy_listen")
	}
	v.hostPorts(g.Body, "listen", g.Listen)
	v.hostPorts(g.Body, "proxy_listen", g.ProxyListen)
	for i, d := range g.LocalDomains {
		if !validHostname(d) || strings.Contains(d, "@") {
			v.errf(g.Body, "local_domains", i, "invalid domain", "%q is not a domain name", d)
		}
	}
	g.InternalPrefixes = v.prefixes(g.Body, "internal_networks", g.InternalNetworks)
	g.TrustedPrefixes = v.prefixes(g.Body, "trusted_proxies", g.TrustedProxies)
	if len(g.ProxyListen) > 0 && len(g.TrustedProxies) == 0 {
		v.errf(g.Body, "proxy_listen", -1, "no trusted proxies",
			"proxy_listen accepts PROXY headers only from trusted_proxies; list the load balancer's addresses there")
	}
	if g.Node != "" && !validHostname(g.Node) {
		v.errf(g.Body, "node", -1, "invalid node name", "%q: use letters, digits, dots and hyphens", g.Node)
	}
	if g.MetricsListen != "" {
		v.hostPort(g.Body, "metrics_listen", -1, g.MetricsListen)
	}
	if g.TLS != nil {
		if g.TLS.Cert == "" || g.TLS.Key == "" {
			v.errf(g.TLS.Body, "cert", -1, "incomplete tls block", "both cert and key are needed")
		}
		g.TLS.Cert, g.TLS.Key = p.Path(g.TLS.Cert), p.Path(g.TLS.Key)
	}
}

func (p *Policy) validateLimits(v *validator) {
	if p.Limits == nil {
		p.Limits = &Limits{}
	}
	l := p.Limits
	l.MaxMessageBytes = v.size(l.Body, "max_message_size", l.MaxMessageSize, DefaultMaxMessageBytes)
	l.MaxRecipients = defInt(l.MaxRecipients, DefaultMaxRecipients)
	l.MaxConnections = defInt(l.MaxConnections, DefaultMaxConnections)
	l.MaxConnectionsPerIP = defInt(l.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP)
	for name, n := range map[string]int{"max_recipients": l.MaxRecipients, "max_connections": l.MaxConnections,
		"max_connections_per_ip": l.MaxConnectionsPerIP} {
		if n < 1 {
			v.errf(l.Body, name, -1, "invalid value", "%d: must be at least 1", n)
		}
	}
	l.Command = v.duration(l.Body, "command_timeout", l.CommandTimeout, DefaultCommandTimeout)
	l.Data = v.duration(l.Body, "data_timeout", l.DataTimeout, DefaultDataTimeout)
	l.Inspect = v.duration(l.Body, "inspect_timeout", l.InspectTimeout, DefaultInspectTimeout)
	l.Shutdown = v.duration(l.Body, "shutdown_timeout", l.ShutdownTimeout, DefaultShutdownTimeout)
}

func defInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func defFloat(n, def float64) float64 {
	if n == 0 {
		return def
	}
	return n
}

func defBool(b *bool, def bool) *bool {
	if b == nil {
		return &def
	}
	return b
}

func (p *Policy) validateStoreDelivery(v *validator) {
	if p.Store == nil {
		p.Store = &Store{}
	}
	if p.Store.Path == "" {
		p.Store.Path = DefaultStorePath
	}
	if p.Store.Postgres != "" {
		// The driver parses the URL with net/url too; the error text is
		// not repeated because it would show the password.
		u, err := url.Parse(p.Store.Postgres)
		if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" || u.Opaque != "" {
			v.errf(p.Store.Body, "postgres", -1, "invalid postgres URL", "want postgres://user@host/db")
		}
	}
	p.Store.Path = p.Path(p.Store.Path)
	if p.Delivery == nil {
		p.Delivery = &Delivery{}
	}
	d := p.Delivery
	if d.InboundRelay != "" {
		v.hostPort(d.Body, "inbound_relay", -1, d.InboundRelay)
	}
	if d.OutboundRelay != "" {
		v.hostPort(d.Body, "outbound_relay", -1, d.OutboundRelay)
	}
	if d.Maildir == "" {
		d.Maildir = DefaultMaildir
	}
	d.Maildir = p.Path(d.Maildir)
	if d.TLS == "" {
		d.TLS = DefaultDeliveryTLS
	}
	v.oneOf(d.Body, "tls", d.TLS, "opportunistic", "required", "off")
	d.Concurrency = defInt(d.Concurrency, DefaultDeliveryConcurrency)
	if d.Concurrency < 1 {
		v.errf(d.Body, "concurrency", -1, "invalid value", "%d: must be at least 1", d.Concurrency)
	}
	d.QueueAge = v.duration(d.Body, "max_queue_age", d.MaxQueueAge, DefaultMaxQueueAge)
	d.RetryFirst = v.duration(d.Body, "retry_min", d.RetryMin, DefaultRetryMin)
	d.RetryLast = v.duration(d.Body, "retry_max", d.RetryMax, DefaultRetryMax)
	if d.RetryLast < d.RetryFirst {
		v.errf(d.Body, "retry_max", -1, "invalid value", "retry_max (%s) is shorter than retry_min (%s)", d.RetryLast, d.RetryFirst)
	}
}

func (p *Policy) validateDNSAuth(v *validator) {
	if p.DNS == nil {
		p.DNS = &DNS{}
	}
	v.hostPorts(p.DNS.Body, "servers", p.DNS.Servers)
	p.DNS.QueryTimeout = v.duration(p.DNS.Body, "timeout", p.DNS.Timeout, DefaultDNSTimeout)
	p.DNS.CacheSize = defInt(p.DNS.CacheSize, DefaultDNSCacheSize)
	if p.Auth == nil {
		p.Auth = &Auth{}
	}
	a := p.Auth
	a.Enabled = defBool(a.Enabled, true)
	a.Forwarders = v.prefixes(a.Body, "trusted_forwarders", a.TrustedForwarders)
	if a.TemperrorAction == "" {
		a.TemperrorAction = DefaultTemperrorAction
	}
	v.oneOf(a.Body, "temperror_action", a.TemperrorAction, "tempfail", "deliver")
	a.DKIMMaxSignatures = defInt(a.DKIMMaxSignatures, DefaultDKIMMaxSignatures)
}

func (p *Policy) validateInspection(v *validator) {
	if p.Archive == nil {
		p.Archive = &Archive{}
	}
	a := p.Archive
	a.MaxDepth = defInt(a.MaxDepth, DefaultArchiveMaxDepth)
	a.MaxFiles = defInt(a.MaxFiles, DefaultArchiveMaxFiles)
	a.MaxRatio = defFloat(a.MaxRatio, DefaultArchiveMaxRatio)
	for name, n := range map[string]float64{"max_depth": float64(a.MaxDepth), "max_files": float64(a.MaxFiles), "max_ratio": a.MaxRatio} {
		if n < 1 {
			v.errf(a.Body, name, -1, "invalid value", "%v: must be at least 1", n)
		}
	}
	a.MaxTotalBytes = v.size(a.Body, "max_total_size", a.MaxTotalSize, DefaultArchiveMaxTotal)
	a.MaxFileBytes = v.size(a.Body, "max_file_size", a.MaxFileSize, DefaultArchiveMaxFile)
	a.Budget = v.duration(a.Body, "timeout", a.Timeout, DefaultArchiveTimeout)
	for i, pw := range a.Passwords {
		if pw == "" {
			v.errf(a.Body, "passwords", i, "empty password", "remove the empty string from passwords")
		}
	}
	if p.YARA == nil {
		p.YARA = &YARA{}
	}
	p.YARA.ScanTimeout = v.duration(p.YARA.Body, "timeout", p.YARA.Timeout, DefaultYARATimeout)
	for i, r := range p.YARA.Rules {
		if r == "" {
			v.errf(p.YARA.Body, "rules", i, "empty rule path", "remove the empty string from rules")
		}
		p.YARA.Rules[i] = p.Path(r)
	}
}

// SandboxClasses are the file classes `sandbox.submit` accepts.
var SandboxClasses = []string{"executable", "script", "macro_document", "pdf_active", "html_smuggling",
	"lnk", "onenote", "archive", "office", "pdf", "first_contact", "all"}

func (p *Policy) validateSandboxes(v *validator) {
	seen := map[string]bool{}
	for _, s := range p.Sandboxes {
		if seen[s.Kind] {
			v.errf(s.Body, "url", -1, "duplicate sandbox", "sandbox %q is defined twice", s.Kind)
		}
		seen[s.Kind] = true
		if s.Kind != "cape" {
			v.errf(s.Body, "url", -1, "unknown sandbox kind", "%q: the supported kind is \"cape\"", s.Kind)
		}
		if !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") {
			v.errf(s.Body, "url", -1, "invalid URL", "%q: want http(s)://host:port/apiv2/", s.URL)
		}
		if len(s.Submit) == 0 {
			s.Submit = append([]string(nil), DefaultSandboxSubmit...)
		}
		for i, c := range s.Submit {
			if !contains(SandboxClasses, c) {
				v.errf(s.Body, "submit", i, "unknown file class", "%q: want one of %s", c, strings.Join(SandboxClasses, ", "))
			}
		}
		s.Hold = v.duration(s.Body, "hold_timeout", s.HoldTimeout, DefaultSandboxHold)
		if s.OnTimeout == "" {
			s.OnTimeout = DefaultSandboxOnTimeout
		}
		v.oneOf(s.Body, "on_timeout", s.OnTimeout, "quarantine", "deliver", "tag", "reject")
		s.MalscoreThreshold = defFloat(s.MalscoreThreshold, DefaultMalscoreThreshold)
		v.nonNegative(s.Body, "malscore_threshold", s.MalscoreThreshold)
		s.MaxConcurrent = defInt(s.MaxConcurrent, DefaultSandboxConcurrent)
		s.RequestsPerMinute = defInt(s.RequestsPerMinute, DefaultSandboxRPM)
		s.TTL = v.duration(s.Body, "cache_ttl", s.CacheTTL, DefaultSandboxCacheTTL)
		s.Analysis = v.duration(s.Body, "analysis_timeout", s.AnalysisTimeout, DefaultSandboxAnalysis)
		s.SearchFirst = defBool(s.SearchFirst, true)
		s.Poll = v.duration(s.Body, "poll_interval", s.PollInterval, DefaultSandboxPoll)
		if s.Poll < MinSandboxPoll {
			v.errf(s.Body, "poll_interval", -1, "poll interval too short", "%q: at least %s", s.PollInterval, MinSandboxPoll)
			s.Poll = DefaultSandboxPoll
		}
	}
}

// Sandbox returns the configured sandbox, or nil.
func (p *Policy) Sandbox() *Sandbox {
	if len(p.Sandboxes) == 0 {
		return nil
	}
	return p.Sandboxes[0]
}

func (p *Policy) validateReputation(v *validator) {
	if p.Reputation == nil {
		p.Reputation = &Reputation{}
	}
	r := p.Reputation
	r.RejectScore = defFloat(r.RejectScore, DefaultIPRejectScore)
	r.TagScore = defFloat(r.TagScore, DefaultIPTagScore)
	if r.RejectAt == "" {
		r.RejectAt = DefaultRejectAt
	}
	v.oneOf(r.Body, "reject_at", r.RejectAt, "connect", "rcpt", "data", "never")
	r.Allow = v.prefixes(r.Body, "allow_networks", r.AllowIPs)
	r.QueryTimeout = v.duration(r.Body, "timeout", r.Timeout, DefaultReputationQuery)
	for i, z := range r.DNSBL {
		if !validHostname(z) {
			v.errf(r.Body, "dnsbl", i, "invalid zone", "%q is not a DNS zone", z)
		}
	}
	for i, z := range r.URIBL {
		if !validHostname(z) {
			v.errf(r.Body, "uribl", i, "invalid zone", "%q is not a DNS zone", z)
		}
	}
	for _, z := range r.Zones {
		if !validHostname(z.Name) {
			v.errf(z.Body, "type", -1, "invalid zone", "%q is not a DNS zone", z.Name)
		}
		if z.Type == "" {
			z.Type = "ip"
		}
		v.oneOf(z.Body, "type", z.Type, "ip", "url")
		z.Weight = defFloat(z.Weight, 1)
	}
}

func (p *Policy) validateConversations(v *validator) {
	if p.Conversations == nil {
		p.Conversations = &Conversations{}
	}
	c := p.Conversations
	c.Enabled = defBool(c.Enabled, true)
	c.Keep = v.duration(c.Body, "retention", c.Retention, DefaultRetention)
	c.Window = v.duration(c.Body, "password_window", c.PasswordWindow, DefaultPasswordWindow)
	c.Revive = v.duration(c.Body, "revive_after", c.ReviveAfter, DefaultReviveAfter)
	c.YoungDays = defInt(c.YoungDays, DefaultYoungDays)
	c.YoungExchanges = defInt(c.YoungExchanges, DefaultYoungExchanges)
}

func (p *Policy) validateLists(v *validator) {
	if p.Lists == nil {
		p.Lists = &Lists{}
	}
	l := p.Lists
	l.AllowPrefixes = v.prefixes(l.Body, "allow_networks", l.AllowNetworks)
	l.BlockPrefixes = v.prefixes(l.Body, "block_networks", l.BlockNetworks)
	shaRE := regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	for i, h := range l.BlockSHA256 {
		if !shaRE.MatchString(h) {
			v.errf(l.Body, "block_sha256", i, "invalid SHA-256", "%q: want 64 hex digits", h)
		}
	}
	for name, entries := range map[string][]string{"allow_senders": l.AllowSenders, "block_senders": l.BlockSenders, "trap_addresses": l.TrapAddresses} {
		for i, e := range entries {
			if e == "" || strings.ContainsAny(e, " <>\t") {
				v.errf(l.Body, name, i, "invalid sender pattern", "%q: want user@domain, @domain or domain", e)
			}
		}
	}
	for g, members := range l.Groups {
		if g == "" {
			v.errf(l.Body, "groups", -1, "invalid group", "a group needs a name")
		}
		for _, m := range members {
			if !strings.Contains(m, "@") {
				v.errf(l.Body, "groups", -1, "invalid group member", "group %q: %q is not an address", g, m)
			}
		}
	}
	p.lists = compileLists(l)
}

func (p *Policy) validateScoring(v *validator) {
	if p.Scoring == nil {
		p.Scoring = &Scoring{}
	}
	s := p.Scoring
	s.Quarantine = defFloat(s.Quarantine, DefaultScoreQuarantine)
	s.Tag = defFloat(s.Tag, DefaultScoreTag)
	p.weights = map[reason.Tag]float64{}
	for t, w := range DefaultWeights {
		p.weights[t] = w
	}
	for t, w := range s.Weights {
		if !reason.Known(reason.Tag(t)) {
			v.warnf(s.Body, "weights", -1, "unknown reason tag", "%q is not a mailguard reason tag; its weight applies only to rules that add it", t)
		}
		p.weights[reason.Tag(t)] = w
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// retentionAge parses a retention age: a duration, or "forever" (0: never
// purge).
func (v *validator) retentionAge(body hcl.Body, name, s string, def time.Duration) time.Duration {
	if s == "forever" {
		return 0
	}
	return v.duration(body, name, s, def)
}

func (p *Policy) validateRetention(v *validator) {
	if p.Retention == nil {
		p.Retention = &Retention{}
	}
	r := p.Retention
	r.KeepDelivered = v.retentionAge(r.Body, "delivered", r.Delivered, DefaultRetainDelivered)
	r.KeepQuarantined = v.retentionAge(r.Body, "quarantined", r.Quarantined, DefaultRetainQuarantined)
	r.KeepRejected = v.retentionAge(r.Body, "rejected", r.Rejected, DefaultRetainRejected)
	r.KeepRecords = v.retentionAge(r.Body, "records", r.Records, DefaultRetainRecords)
	r.Every = v.duration(r.Body, "interval", r.Interval, DefaultRetentionInterval)
	if r.KeepRecords == 0 {
		return
	}
	// A record purge removes the message's bytes with its row: content
	// windows longer than the record window are cut short.
	for _, c := range []struct {
		name string
		d    time.Duration
	}{{"delivered", r.KeepDelivered}, {"rejected", r.KeepRejected}} {
		if c.d == 0 || c.d > r.KeepRecords {
			v.warnf(r.Body, c.name, -1, "retention longer than records",
				"%s content is kept only as long as its record (records = %q)", c.name, orString(r.Records, "365d"))
		}
	}
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
