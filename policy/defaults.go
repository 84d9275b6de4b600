package policy

import (
	"time"

	"github.com/mailguard/mailguard/reason"
)

// Defaults live here and only here. docs/policy.md repeats them for the
// administrator; TestDocsMentionEveryKey keeps the key list in step.
const (
	DefaultHostname            = "localhost"
	DefaultMaxMessageBytes     = 50 << 20
	DefaultMaxRecipients       = 1000
	DefaultMaxConnections      = 500
	DefaultMaxConnectionsPerIP = 20
	DefaultCommandTimeout      = 5 * time.Minute
	DefaultDataTimeout         = 10 * time.Minute
	DefaultInspectTimeout      = 120 * time.Second
	DefaultShutdownTimeout     = 30 * time.Second

	DefaultStorePath = "./var"
	DefaultMaildir   = "./var/maildir"

	DefaultDeliveryTLS         = "opportunistic"
	DefaultDeliveryConcurrency = 20
	DefaultMaxQueueAge         = 5 * 24 * time.Hour
	DefaultRetryMin            = time.Minute
	DefaultRetryMax            = time.Hour

	DefaultDNSTimeout   = 5 * time.Second
	DefaultDNSCacheSize = 10000

	DefaultTemperrorAction   = "tempfail"
	DefaultDKIMMaxSignatures = 5

	DefaultArchiveMaxDepth   = 8
	DefaultArchiveMaxFiles   = 2000
	DefaultArchiveMaxTotal   = 512 << 20
	DefaultArchiveMaxFile    = 128 << 20
	DefaultArchiveMaxRatio   = 250
	DefaultArchiveTimeout    = 60 * time.Second
	DefaultYARATimeout       = 10 * time.Second
	DefaultSandboxHold       = 30 * time.Minute
	DefaultSandboxOnTimeout  = "quarantine"
	DefaultMalscoreThreshold = 5.0
	DefaultSandboxConcurrent = 4
	DefaultSandboxRPM        = 60
	DefaultSandboxCacheTTL   = 7 * 24 * time.Hour
	DefaultSandboxAnalysis   = 5 * time.Minute
	DefaultSandboxPoll       = time.Minute
	MinSandboxPoll           = time.Second

	DefaultIPRejectScore   = 3.0
	DefaultIPTagScore      = 1.0
	DefaultRejectAt        = "rcpt"
	DefaultReputationQuery = 2 * time.Second

	DefaultRetention      = 365 * 24 * time.Hour
	DefaultPasswordWindow = 30 * time.Minute
	DefaultYoungDays      = 14
	DefaultYoungExchanges = 5
	DefaultReviveAfter    = 90 * 24 * time.Hour

	DefaultScoreQuarantine = 10.0
	DefaultScoreTag        = 4.0

	DefaultRetainDelivered   = 30 * 24 * time.Hour
	DefaultRetainQuarantined = 90 * 24 * time.Hour
	DefaultRetainRejected    = 7 * 24 * time.Hour
	DefaultRetainRecords     = 365 * 24 * time.Hour
	DefaultRetentionInterval = time.Hour

	DefaultOnError = "tempfail"
	DefaultLevel   = "info"
)

// DefaultSandboxSubmit are the file classes sent to the sandbox.
var DefaultSandboxSubmit = []string{"executable", "script", "macro_document", "pdf_active",
	"html_smuggling", "lnk", "onenote", "first_contact"}

// DefaultWeights score the findings that are not decisive on their own.
var DefaultWeights = map[reason.Tag]float64{
	reason.SPFSoftfail:              1,
	reason.SPFFail:                  3,
	reason.SPFPermerror:             1,
	reason.DKIMFail:                 1,
	reason.DMARCNoneFail:            2,
	reason.DoubleExtension:          5,
	reason.LookalikeDomain:          6,
	reason.DisplayNameImpersonation: 6,
	reason.FirstContactAttachment:   2,
	reason.PasswordFoundBody:        1,
	reason.PasswordFoundThread:      1,
	reason.ForgedAuthResults:        3,
	reason.PathTraversal:            4,
	reason.UnsupportedContainer:     2,
	reason.PDFActiveContent:         3,
	reason.MacroDocument:            3,
	reason.IPBlocklisted:            3,
	reason.URLBlocklisted:           6,
	reason.HTMLSmuggling:            6,
	reason.MalformedMIME:            2,
	reason.RemoteTemplate:           6,
	reason.ExploitObject:            8,
	reason.CredentialForm:           6,
}
