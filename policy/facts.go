package policy

import (
	"net/netip"
	"path"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/mailguard/mailguard/reason"
)

// Facts is everything the stages learned about one message: the input of
// Evaluate. The gateway fills it from the results of auth, attach, scan,
// sandbox, thread and reputation; policy only reads it. Each field is
// visible in `when` expressions under the name in its comment.
type Facts struct {
	Direction string     // direction: "inbound", "outbound" or "internal"
	ClientIP  netip.Addr // client_ip
	HELO      string     // helo
	MailFrom  string     // mail_from (and mail_from_domain)
	Rcpts     []string   // rcpts (and rcpt_domains, rcpt_groups)
	Size      int64      // size

	From      Address // from, from_domain, from_name
	FromCount int     // from_count: addresses in From fields
	ReplyTo   string  // reply_to
	Subject   string  // subject
	MessageID string  // message_id

	Auth       AuthFacts        // auth.*
	Files      []FileFacts      // files[*].*
	Findings   []reason.Finding // findings (tags), has("tag")
	Thread     ThreadFacts      // thread.*
	Reputation ReputationFacts  // reputation.*
	Sandbox    SandboxFacts     // sandbox.*
}

// Address is a mailbox with its display name.
type Address struct {
	Name string
	Addr string
}

// Domain is the lowercased domain part of the address.
func (a Address) Domain() string { return domainOf(a.Addr) }

// AuthFacts summarises authentication for rules.
type AuthFacts struct {
	SPF         string   // auth.spf: pass, fail, softfail, neutral, none, temperror, permerror
	HELO        string   // auth.helo: SPF result of the HELO identity
	DKIM        string   // auth.dkim: pass if any signature passed, fail if some failed, none
	DKIMDomains []string // auth.dkim_domains: d= of passing signatures
	DMARC       string   // auth.dmarc: pass, fail, none, temperror, permerror
	DMARCPolicy string   // auth.dmarc_policy: policy applied: none, quarantine, reject
	Forwarder   bool     // auth.forwarder: client is a trusted forwarder
}

// FileFacts is one file of the attachment tree for rules.
type FileFacts struct {
	Path           string   // path
	Name           string   // name
	Type           string   // type: true MIME type
	Size           int64    // size
	SHA256         string   // sha256
	Depth          int      // depth
	Encrypted      bool     // encrypted
	Decrypted      bool     // decrypted
	PasswordSource string   // password_source
	Findings       []string // findings: tags found on this file
	YARA           []string // yara: names of matching YARA rules
	Derived        bool     // derived: produced by mailguard (e.g. VBA source)
}

// ThreadFacts are the conversation signals for rules.
type ThreadFacts struct {
	Known            bool    // thread.known: the message replies to a thread mailguard saw
	FirstContact     bool    // thread.first_contact: no earlier mail with this correspondent
	Exchanges        int     // thread.exchanges: messages exchanged with the correspondent
	RelationshipDays float64 // thread.relationship_days: since first contact
	SilenceDays      float64 // thread.silence_days: since the thread's previous message
	PasswordPending  bool    // thread.password_pending: waiting for a password mail
	ArchivePending   bool    // thread.archive_pending: a password mail waiting for the decision on its archive
}

// ReputationFacts are the reputation results for rules.
type ReputationFacts struct {
	IPScore    float64  // reputation.ip_score
	IPListed   []string // reputation.ip_listed: zones listing the client
	URLs       int      // reputation.urls
	URLDomains int      // reputation.url_domains
	Mismatches int      // reputation.mismatches: anchor text shows another domain
	IPLiterals int      // reputation.ip_literals
	Shorteners int      // reputation.shorteners
	URLListed  []string // reputation.url_listed: listed domains
}

// SandboxFacts are the sandbox state for rules.
type SandboxFacts struct {
	Configured bool    // sandbox.configured
	Candidates int     // sandbox.candidates: files of the submit classes
	Unjudged   int     // sandbox.unjudged: candidates without a verdict yet
	Malscore   float64 // sandbox.malscore: the highest malscore seen
	TimedOut   bool    // sandbox.timed_out: the hold deadline passed
}

// Tags returns the distinct finding tags in order of first appearance.
func (f *Facts) Tags() []reason.Tag {
	seen := map[reason.Tag]bool{}
	var out []reason.Tag
	for _, fd := range f.Findings {
		if !seen[fd.Tag] {
			seen[fd.Tag] = true
			out = append(out, fd.Tag)
		}
	}
	return out
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
	}
	return ""
}

// fileType is the object type of one element of `files`; it is fixed so
// that an empty list still has a type to check expressions against.
var fileType = cty.Object(map[string]cty.Type{
	"path": cty.String, "name": cty.String, "ext": cty.String, "type": cty.String,
	"size": cty.Number, "sha256": cty.String, "depth": cty.Number,
	"encrypted": cty.Bool, "decrypted": cty.Bool, "password_source": cty.String,
	"findings": cty.List(cty.String), "yara": cty.List(cty.String), "derived": cty.Bool,
})

func strList(l []string) cty.Value {
	if len(l) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vs := make([]cty.Value, len(l))
	for i, s := range l {
		vs[i] = cty.StringVal(s)
	}
	return cty.ListVal(vs)
}

func fileVal(f FileFacts) cty.Value {
	ext := strings.ToLower(strings.TrimPrefix(path.Ext(f.Name), "."))
	return cty.ObjectVal(map[string]cty.Value{
		"path": cty.StringVal(f.Path), "name": cty.StringVal(f.Name), "ext": cty.StringVal(ext),
		"type": cty.StringVal(f.Type), "size": cty.NumberIntVal(f.Size),
		"sha256": cty.StringVal(f.SHA256), "depth": cty.NumberIntVal(int64(f.Depth)),
		"encrypted": cty.BoolVal(f.Encrypted), "decrypted": cty.BoolVal(f.Decrypted),
		"password_source": cty.StringVal(f.PasswordSource), "findings": strList(f.Findings),
		"yara": strList(f.YARA), "derived": cty.BoolVal(f.Derived),
	})
}
