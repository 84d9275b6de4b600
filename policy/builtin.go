package policy

import (
	"fmt"
	"strconv"
)

// builtinSource is the built-in rule set, written in the same language as
// policy.hcl so that the administrator can read it (`mailguard check
// --builtin` prints it) and override it: the file's own rules run first,
// and `rules { builtin = false }` drops these. First match wins.
func builtinSource(p *Policy) string {
	onTimeout := DefaultSandboxOnTimeout
	if s := p.Sandbox(); s != nil {
		onTimeout = s.OnTimeout
	}
	temperror := "tempfail"
	if p.Auth.TemperrorAction == "deliver" {
		temperror = "tag"
	}
	q := func(s string) string { return strconv.Quote(s) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	return fmt.Sprintf(`
# Mail to a trap address is never legitimate.
rule "builtin-trap" {
  when   = has("trap_recipient")
  action = "quarantine"
}

# Senders and networks the administrator blocked.
rule "builtin-blocked-sender" {
  when   = has("blocked_sender")
  action = "reject"
}
rule "builtin-blocked-file" {
  when   = has("blocked_file")
  action = "quarantine"
}

# The sender domain asks receivers to reject mail that fails DMARC.
rule "builtin-dmarc-reject" {
  when   = has("dmarc_reject")
  action = "reject"
}

# Client address listed by enough DNS blocklists.
rule "builtin-ip-blocklisted" {
  when   = has("ip_blocklisted") && reputation.ip_score >= %[1]s
  action = "reject"
}

rule "builtin-malware" {
  when   = has("malware_yara", "malware_sandbox")
  action = "quarantine"
}

# Equation Editor objects: removed from Office in 2018, used only by
# exploits since.
rule "builtin-exploit-object" {
  when   = has("exploit_object")
  action = "quarantine"
}

# A mailed HTML page that asks for a password and sends it elsewhere.
rule "builtin-credential-form" {
  when   = has("credential_form")
  action = "quarantine"
}

rule "builtin-archive-bomb" {
  when   = has("archive_bomb", "archive_depth")
  action = "quarantine"
}

rule "builtin-url-blocklisted" {
  when   = has("url_blocklisted")
  action = "quarantine"
}

rule "builtin-thread-hijack" {
  when   = has("thread_hijack")
  action = "quarantine"
}

# A file name that hides its real extension with bidi controls.
rule "builtin-rtlo" {
  when   = has("rtlo_filename")
  action = "quarantine"
}

# DNS failed while authenticating: let the sender retry (or deliver with
# the finding when auth.temperror_action = "deliver").
rule "builtin-dmarc-temperror" {
  when   = has("dmarc_temperror")
  action = %[2]s
}

# The sandbox did not answer within hold_timeout.
rule "builtin-sandbox-timeout" {
  when   = sandbox.timed_out && sandbox.unjudged > 0
  action = %[3]s
  reason = "sandbox_timeout"
}

# Suspicious files wait for the sandbox's verdict.
rule "builtin-sandbox-hold" {
  when   = sandbox.configured && sandbox.unjudged > 0
  action = "hold"
}

# An encrypted archive whose password may still come in a second mail.
rule "builtin-password-pending" {
  when   = thread.password_pending
  action = "hold"
}

# A password mail waits while the archive it opens is decided: if the
# archive turns out malicious, its password mail is quarantined with it.
rule "builtin-archive-pending" {
  when   = thread.archive_pending
  action = "hold"
}

# Without a sandbox, what would have been detonated is stopped instead.
rule "builtin-active-content-unjudged" {
  when   = !sandbox.configured && has("exec_attachment", "lnk_in_container", "onenote_embedded_file", "html_smuggling", "macro_document", "remote_template")
  action = "quarantine"
}

# A new correspondent sending an archive nobody can open.
rule "builtin-first-contact-encrypted" {
  when   = has("first_contact_attachment") && anytrue([for f in files : f.encrypted])
  action = "quarantine"
}

rule "builtin-encrypted-unscannable" {
  when   = has("encrypted_unscannable")
  action = "quarantine"
}

# A container nothing here can open (ACE, ALZ, a corrupt archive…): its
# content was not inspected, so it is not delivered as if it had been.
rule "builtin-unsupported-container" {
  when   = has("unsupported_container")
  action = "quarantine"
}

# MIME that mail clients may read differently from mailguard (a multipart
# whose boundary cannot be read, differing Content-Type fields, padding
# inside base64), or that mailguard could not read to the end. Minor
# defects that every reader resolves the same way (a final boundary
# missing at the end, junk in base64) only add to the score.
rule "builtin-malformed" {
  when   = mime.ambiguous
  action = "quarantine"
}

# Allow-listed senders skip the softer checks below, but only when DMARC
# proves the sender (or the client is an allow-listed network).
rule "builtin-allowed-sender" {
  when   = (lists.sender_allowed && auth.dmarc == "pass") || lists.ip_allowed
  action = "deliver"
}

rule "builtin-dmarc-quarantine" {
  when   = has("dmarc_quarantine")
  action = "quarantine"
}

rule "builtin-impersonation" {
  when   = has("lookalike_domain", "display_name_impersonation")
  action = "quarantine"
}

rule "builtin-score-quarantine" {
  when   = score >= %[4]s
  action = "quarantine"
}

rule "builtin-score-tag" {
  when   = score >= %[5]s || reputation.ip_score >= %[6]s
  action = "tag"
}
`, f(p.Reputation.RejectScore), q(temperror), q(onTimeout), f(p.Scoring.Quarantine),
		f(p.Scoring.Tag), f(p.Reputation.TagScore))
}
