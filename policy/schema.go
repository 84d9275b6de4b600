package policy

import (
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// The structs below mirror policy.hcl. Fields with an hcl tag are what the
// administrator writes (strings for sizes and durations, so that "50MB" and
// "30m" read naturally); untagged fields hold the validated values that the
// rest of mailguard uses. docs/policy.md documents every key, and a test
// keeps it in step with these tags.

// Config is the whole policy file.
type Config struct {
	Gateway       Gateway        `hcl:"gateway,block"`
	Limits        *Limits        `hcl:"limits,block"`
	Store         *Store         `hcl:"store,block"`
	Delivery      *Delivery      `hcl:"delivery,block"`
	DNS           *DNS           `hcl:"dns,block"`
	Auth          *Auth          `hcl:"auth,block"`
	Archive       *Archive       `hcl:"archive,block"`
	YARA          *YARA          `hcl:"yara,block"`
	Sandboxes     []*Sandbox     `hcl:"sandbox,block"`
	Reputation    *Reputation    `hcl:"reputation,block"`
	Conversations *Conversations `hcl:"conversations,block"`
	Lists         *Lists         `hcl:"lists,block"`
	Scoring       *Scoring       `hcl:"scoring,block"`
	Log           *Log           `hcl:"log,block"`
	Retention     *Retention     `hcl:"retention,block"`
	Rules         []*RuleBlock   `hcl:"rule,block"`
	Settings      *RulesSettings `hcl:"rules,block"`
	Body          hcl.Body       `hcl:",body"`
}

// Gateway is the `gateway` block: identity, listeners and relay control.
type Gateway struct {
	// Hostname is the name in the banner, in Received and the authserv-id
	// of Authentication-Results.
	Hostname string `hcl:"hostname,optional"`
	// Listen are the plain SMTP listeners ("host:port").
	Listen []string `hcl:"listen,optional"`
	// ProxyListen are listeners that expect a HAProxy PROXY v1/v2 header
	// from a trusted proxy before SMTP starts.
	ProxyListen []string `hcl:"proxy_listen,optional"`
	// LocalDomains are the domains mailguard accepts mail for from anyone.
	LocalDomains []string `hcl:"local_domains,optional"`
	// InternalNetworks may relay to any domain (outbound mail).
	InternalNetworks []string `hcl:"internal_networks,optional"`
	// TrustedProxies may send PROXY headers and XCLIENT.
	TrustedProxies []string `hcl:"trusted_proxies,optional"`
	// Node names this node in delivery and sandbox leases: unique among
	// the nodes sharing a store, stable across restarts ("" = host name).
	Node string `hcl:"node,optional"`
	// MetricsListen serves Prometheus metrics on /metrics; "" disables.
	MetricsListen string `hcl:"metrics_listen,optional"`
	// TLS enables STARTTLS on the listeners.
	TLS *TLS `hcl:"tls,block"`

	InternalPrefixes []netip.Prefix
	TrustedPrefixes  []netip.Prefix
	Body             hcl.Body `hcl:",body"`
}

// TLS is the `gateway.tls` block.
type TLS struct {
	Cert string   `hcl:"cert"`
	Key  string   `hcl:"key"`
	Body hcl.Body `hcl:",body"`
}

// Limits is the `limits` block: protocol and inspection bounds.
type Limits struct {
	MaxMessageSize      string   `hcl:"max_message_size,optional"`
	MaxRecipients       int      `hcl:"max_recipients,optional"`
	MaxConnections      int      `hcl:"max_connections,optional"`
	MaxConnectionsPerIP int      `hcl:"max_connections_per_ip,optional"`
	CommandTimeout      string   `hcl:"command_timeout,optional"`
	DataTimeout         string   `hcl:"data_timeout,optional"`
	InspectTimeout      string   `hcl:"inspect_timeout,optional"`
	ShutdownTimeout     string   `hcl:"shutdown_timeout,optional"`
	Body                hcl.Body `hcl:",body"`

	MaxMessageBytes int64
	Command         time.Duration
	Data            time.Duration
	Inspect         time.Duration
	Shutdown        time.Duration
}

// Store is the `store` block.
type Store struct {
	Path     string   `hcl:"path,optional"`
	Postgres string   `hcl:"postgres,optional"`
	Body     hcl.Body `hcl:",body"`
}

// Delivery is the `delivery` block: where accepted mail goes.
type Delivery struct {
	InboundRelay  string   `hcl:"inbound_relay,optional"`
	OutboundRelay string   `hcl:"outbound_relay,optional"`
	Maildir       string   `hcl:"maildir,optional"`
	TLS           string   `hcl:"tls,optional"`
	TLSSkipVerify bool     `hcl:"tls_skip_verify,optional"`
	Concurrency   int      `hcl:"concurrency,optional"`
	MaxQueueAge   string   `hcl:"max_queue_age,optional"`
	RetryMin      string   `hcl:"retry_min,optional"`
	RetryMax      string   `hcl:"retry_max,optional"`
	Body          hcl.Body `hcl:",body"`

	QueueAge   time.Duration
	RetryFirst time.Duration
	RetryLast  time.Duration
}

// DNS is the `dns` block.
type DNS struct {
	Servers   []string `hcl:"servers,optional"`
	Timeout   string   `hcl:"timeout,optional"`
	CacheSize int      `hcl:"cache_size,optional"`
	Body      hcl.Body `hcl:",body"`

	QueryTimeout time.Duration
}

// Auth is the `auth` block: SPF, DKIM, DMARC.
type Auth struct {
	Enabled *bool `hcl:"enabled,optional"`
	// TrustedForwarders are client networks whose SPF failures are not
	// held against a message (forwarders, mailing list servers).
	TrustedForwarders []string `hcl:"trusted_forwarders,optional"`
	// TemperrorAction is what a DNS temperror leads to: "tempfail" or
	// "deliver" (with the finding).
	TemperrorAction   string   `hcl:"temperror_action,optional"`
	DKIMMaxSignatures int      `hcl:"dkim_max_signatures,optional"`
	Body              hcl.Body `hcl:",body"`

	Forwarders []netip.Prefix
}

// Archive is the `archive` block: attachment unpacking bounds and passwords.
type Archive struct {
	MaxDepth     int      `hcl:"max_depth,optional"`
	MaxFiles     int      `hcl:"max_files,optional"`
	MaxTotalSize string   `hcl:"max_total_size,optional"`
	MaxFileSize  string   `hcl:"max_file_size,optional"`
	MaxRatio     float64  `hcl:"max_ratio,optional"`
	Timeout      string   `hcl:"timeout,optional"`
	Passwords    []string `hcl:"passwords,optional"`
	Body         hcl.Body `hcl:",body"`

	MaxTotalBytes int64
	MaxFileBytes  int64
	Budget        time.Duration
}

// YARA is the `yara` block.
type YARA struct {
	Rules   []string `hcl:"rules,optional"`
	Timeout string   `hcl:"timeout,optional"`
	Body    hcl.Body `hcl:",body"`

	ScanTimeout time.Duration
}

// Sandbox is a `sandbox "<kind>"` block; "cape" is the kind implemented.
type Sandbox struct {
	Kind              string   `hcl:"kind,label"`
	URL               string   `hcl:"url"`
	Token             string   `hcl:"token,optional"`
	TLSSkipVerify     bool     `hcl:"tls_skip_verify,optional"`
	Submit            []string `hcl:"submit,optional"`
	HoldTimeout       string   `hcl:"hold_timeout,optional"`
	OnTimeout         string   `hcl:"on_timeout,optional"`
	MalscoreThreshold float64  `hcl:"malscore_threshold,optional"`
	MaxConcurrent     int      `hcl:"max_concurrent,optional"`
	RequestsPerMinute int      `hcl:"requests_per_minute,optional"`
	CacheTTL          string   `hcl:"cache_ttl,optional"`
	AnalysisTimeout   string   `hcl:"analysis_timeout,optional"`
	SearchFirst       *bool    `hcl:"search_first,optional"`
	PollInterval      string   `hcl:"poll_interval,optional"`
	Body              hcl.Body `hcl:",body"`

	Hold     time.Duration
	TTL      time.Duration
	Analysis time.Duration
	// Poll is the wait after an upload before the first status poll; later
	// polls start at a quarter of it and back off to twice it.
	Poll time.Duration
}

// Reputation is the `reputation` block.
type Reputation struct {
	DNSBL       []string `hcl:"dnsbl,optional"`
	URIBL       []string `hcl:"uribl,optional"`
	Zones       []*Zone  `hcl:"zone,block"`
	RejectScore float64  `hcl:"reject_score,optional"`
	TagScore    float64  `hcl:"tag_score,optional"`
	RejectAt    string   `hcl:"reject_at,optional"`
	AllowIPs    []string `hcl:"allow_networks,optional"`
	BlockURLs   []string `hcl:"block_domains,optional"`
	Shorteners  []string `hcl:"shorteners,optional"`
	Timeout     string   `hcl:"timeout,optional"`
	Body        hcl.Body `hcl:",body"`

	Allow        []netip.Prefix
	QueryTimeout time.Duration
}

// Zone is a `reputation.zone "<name>"` block: one DNS list with its weight.
type Zone struct {
	Name   string   `hcl:"name,label"`
	Type   string   `hcl:"type,optional"` // "ip" or "url"
	Weight float64  `hcl:"weight,optional"`
	Filter string   `hcl:"filter,optional"`
	Body   hcl.Body `hcl:",body"`
}

// Conversations is the `conversations` block.
type Conversations struct {
	Enabled        *bool    `hcl:"enabled,optional"`
	Retention      string   `hcl:"retention,optional"`
	PasswordWindow string   `hcl:"password_window,optional"`
	YoungDays      int      `hcl:"young_days,optional"`
	YoungExchanges int      `hcl:"young_exchanges,optional"`
	ReviveAfter    string   `hcl:"revive_after,optional"`
	Body           hcl.Body `hcl:",body"`

	Keep   time.Duration
	Window time.Duration
	Revive time.Duration
}

// Lists is the `lists` block: allow and block lists, VIPs, traps, groups.
type Lists struct {
	AllowSenders  []string            `hcl:"allow_senders,optional"`
	BlockSenders  []string            `hcl:"block_senders,optional"`
	AllowNetworks []string            `hcl:"allow_networks,optional"`
	BlockNetworks []string            `hcl:"block_networks,optional"`
	BlockSHA256   []string            `hcl:"block_sha256,optional"`
	VIPNames      []string            `hcl:"vip_names,optional"`
	TrapAddresses []string            `hcl:"trap_addresses,optional"`
	Groups        map[string][]string `hcl:"groups,optional"`
	Body          hcl.Body            `hcl:",body"`

	AllowPrefixes []netip.Prefix
	BlockPrefixes []netip.Prefix
}

// Scoring is the `scoring` block: weights per reason tag and thresholds.
type Scoring struct {
	Weights    map[string]float64 `hcl:"weights,optional"`
	Quarantine float64            `hcl:"quarantine,optional"`
	Tag        float64            `hcl:"tag,optional"`
	Body       hcl.Body           `hcl:",body"`
}

// Log is the `log` block.
type Log struct {
	Level  string   `hcl:"level,optional"`
	Events string   `hcl:"events,optional"`
	Syslog bool     `hcl:"syslog,optional"`
	Body   hcl.Body `hcl:",body"`
}

// Retention is the `retention` block: how long mailguard keeps what it no
// longer needs. Each age counts from the moment the message reached its
// current state (delivered, rejected, quarantined, deleted). "forever"
// turns a purge off. Held, queued, released and in-flight messages are
// never purged.
type Retention struct {
	// Delivered is how long the spool bytes of delivered and bounced mail
	// are kept: the window in which `mailguard hunt --yara` can re-scan.
	Delivered string `hcl:"delivered,optional"`
	// Quarantined is how long a quarantined message waits for review
	// before it is deleted (content removed, record and audit kept).
	Quarantined string `hcl:"quarantined,optional"`
	// Rejected is how long the bytes of rejected (and tempfailed) mail are
	// kept as evidence.
	Rejected string `hcl:"rejected,optional"`
	// Records is how long the rows, file index and audit trail of finished
	// messages (delivered, bounced, rejected, deleted) are kept.
	Records string `hcl:"records,optional"`
	// Interval is how often serve runs the purge.
	Interval string   `hcl:"interval,optional"`
	Body     hcl.Body `hcl:",body"`

	// Validated values; zero means keep forever.
	KeepDelivered   time.Duration
	KeepQuarantined time.Duration
	KeepRejected    time.Duration
	KeepRecords     time.Duration
	Every           time.Duration
}

// RulesSettings is the `rules` block.
type RulesSettings struct {
	// Builtin keeps the built-in rules after the file's own (default true).
	Builtin *bool `hcl:"builtin,optional"`
	// OnError is the action when inspection itself fails: "tempfail"
	// (default) or "hold".
	OnError string   `hcl:"on_error,optional"`
	Body    hcl.Body `hcl:",body"`
}

// RuleBlock is a `rule "<name>"` block.
type RuleBlock struct {
	Name          string         `hcl:"name,label"`
	When          hcl.Expression `hcl:"when"`
	Action        string         `hcl:"action,optional"`
	Reason        string         `hcl:"reason,optional"`
	Score         float64        `hcl:"score,optional"`
	Continue      bool           `hcl:"continue,optional"`
	SubjectPrefix string         `hcl:"subject_prefix,optional"`
	Body          hcl.Body       `hcl:",body"`
}
