// Package scan owns YARA for mailguard: it loads rule files from globs,
// compiles them (reporting every error with the rule file's own name and
// line), and scans bytes or files with a pool of go-yara scanners that is
// safe for concurrent use and can be given a new rule set at any time
// (hot reload) while scans are running.
//
// It knows nothing of MIME, archives, policy or SMTP: the caller hands it
// one file's bytes (or an io.ReaderAt) plus the file's name and true type,
// and gets back the rules that matched. Turning a Match into a
// malware_yara finding, and deciding what a rule's requested action means,
// is the caller's job (see Match.Finding for the usual conversion).
//
// # Rule metadata
//
// Rules may carry these meta keys; mailguard reads them, YARA does not:
//
//	description = "what the rule detects"          (free text, shown to operators)
//	severity    = "low" | "medium" | "high" | "critical"
//	action      = "tag" | "hold" | "quarantine" | "reject"
//	reference   = "URL or document the rule is based on"
//
// A missing severity means "high": a YARA match is a malware finding unless
// the rule says otherwise. An unknown severity value is a compile warning
// and is treated as "high". An unknown action value is a compile error,
// because a mistyped action would otherwise silently do nothing. A missing
// action means the rule requests nothing: policy alone decides.
//
// # External variables
//
// Every rule can use four string variables, set per scan from Vars:
// filename (base name of the file), filepath (its path inside the
// message, e.g. "invoice.zip/doc/report.docm"), extension (lowercase, without
// the dot) and filetype (the true MIME type the caller detected). They are
// the empty string when unknown.
package scan

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/mailguard/mailguard/reason"
)

// Severity is how bad a rule considers its match, from the rule's
// "severity" meta.
type Severity string

// The accepted severities, from least to most severe.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// DefaultSeverity is the severity of a rule without a valid "severity" meta.
const DefaultSeverity = SeverityHigh

// Rank orders severities: 1 for low up to 4 for critical, 0 if unknown.
func (s Severity) Rank() int {
	switch s {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return 0
}

// parseSeverity accepts the four severities in any letter case.
func parseSeverity(v string) (Severity, bool) {
	s := Severity(strings.ToLower(strings.TrimSpace(v)))
	return s, s.Rank() > 0
}

// actions a rule may request with its "action" meta, weakest first.
var actions = [...]string{"tag", "hold", "quarantine", "reject"}

// Actions returns the actions a rule may request with its "action" meta,
// weakest first. They are a subset of the decision actions of DESIGN.md;
// "deliver" and "tempfail" cannot be requested by a rule.
func Actions() []string { return append([]string(nil), actions[:]...) }

func validAction(v string) bool {
	for _, a := range actions {
		if v == a {
			return true
		}
	}
	return false
}

// Vars are the external variables a scan defines for the rules. Empty
// fields are passed as empty strings.
type Vars struct {
	Filename  string // base name, e.g. "report.docm"
	Filepath  string // path inside the message, e.g. "invoice.zip/report.docm"
	Extension string // lowercase, without the dot, e.g. "docm"; derived from Filename when empty
	Filetype  string // true MIME type as detected by the caller, e.g. "application/pdf"
}

// extension returns v.Extension, or the lowercase extension of v.Filename.
func (v Vars) extension() string {
	if v.Extension != "" {
		return strings.ToLower(strings.TrimPrefix(v.Extension, "."))
	}
	i := strings.LastIndexByte(v.Filename, '.')
	if i < 0 || i == len(v.Filename)-1 {
		return ""
	}
	return strings.ToLower(v.Filename[i+1:])
}

// Match is one rule that matched one scanned object.
type Match struct {
	Rule      string         `json:"rule"`
	Namespace string         `json:"namespace"`
	Tags      []string       `json:"tags,omitempty"`
	Meta      map[string]any `json:"meta,omitempty"`    // string, int or bool values
	Strings   []string       `json:"strings,omitempty"` // identifiers of the strings that matched, e.g. "$eicar"; never the data
}

// Severity returns the rule's "severity" meta, or DefaultSeverity.
func (m Match) Severity() Severity {
	if v, ok := m.Meta["severity"].(string); ok {
		if s, ok := parseSeverity(v); ok {
			return s
		}
	}
	return DefaultSeverity
}

// Action returns the action the rule requests with its "action" meta
// (one of Actions), or "" when it requests none.
func (m Match) Action() string {
	if v, ok := m.Meta["action"].(string); ok && validAction(v) {
		return v
	}
	return ""
}

// Description returns the rule's "description" meta, or "".
func (m Match) Description() string {
	v, _ := m.Meta["description"].(string)
	return v
}

// Name is the rule's name qualified by its namespace, "namespace:rule".
func (m Match) Name() string {
	if m.Namespace == "" || m.Namespace == "default" {
		return m.Rule
	}
	return m.Namespace + ":" + m.Rule
}

// actionRank orders the actions a rule may request, weakest first.
var actionRank = map[string]int{"tag": 1, "hold": 2, "quarantine": 3, "reject": 4}

// Strongest returns the highest severity among matches ("" when there are
// none) and the strongest action any of them requests (reject >
// quarantine > hold > tag; "" when none requests one).
func Strongest(matches []Match) (Severity, string) {
	var sev Severity
	var action string
	for _, m := range matches {
		if s := m.Severity(); s.Rank() > sev.Rank() {
			sev = s
		}
		if a := m.Action(); actionRank[a] > actionRank[action] {
			action = a
		}
	}
	return sev, action
}

// Finding turns the matches on one file into a single malware_yara finding
// naming every rule (sorted, with severities), or reports false when there
// are no matches. path is the file's path in the attachment tree.
func Finding(matches []Match, path string) (reason.Finding, bool) {
	if len(matches) == 0 {
		return reason.Finding{}, false
	}
	names := make([]string, 0, len(matches))
	for _, m := range matches {
		names = append(names, fmt.Sprintf("%s (%s)", m.Name(), m.Severity()))
	}
	sort.Strings(names)
	return reason.Finding{
		Tag:    reason.MalwareYARA,
		Detail: "yara: " + strings.Join(names, ", "),
		Path:   path,
	}, true
}

// Errors returned by the Engine. Test for them with errors.Is.
var (
	// ErrTimeout: the scan ran longer than the engine's per-scan timeout.
	ErrTimeout = errors.New("scan: timeout")
	// ErrNoRuleFiles: a rule glob matched no file.
	ErrNoRuleFiles = errors.New("scan: no rule files match")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("scan: engine closed")
)
