// Package reason holds the stable vocabulary of reason tags (the DESIGN.md
// contract) and the Finding that every inspection stage produces. It is the
// one small result type shared by the leaf packages (auth, attach, scan,
// sandbox, thread, reputation) and policy, so it must stay free of logic.
// Tags may be added, never renamed: scripts and SIEM rules depend on them.
package reason

// Tag is a stable, machine-readable reason for a decision.
type Tag string

// The DESIGN.md contract tags.
const (
	SPFFail                  Tag = "spf_fail"
	SPFSoftfail              Tag = "spf_softfail"
	DKIMFail                 Tag = "dkim_fail"
	DMARCReject              Tag = "dmarc_reject"
	DMARCQuarantine          Tag = "dmarc_quarantine"
	DMARCNoneFail            Tag = "dmarc_none_fail"
	MalwareYARA              Tag = "malware_yara"
	MalwareSandbox           Tag = "malware_sandbox"
	SandboxTimeout           Tag = "sandbox_timeout"
	EncryptedUnscannable     Tag = "encrypted_unscannable"
	PasswordFoundBody        Tag = "password_found_body"
	PasswordFoundThread      Tag = "password_found_thread"
	ArchiveBomb              Tag = "archive_bomb"
	ArchiveDepth             Tag = "archive_depth"
	ExecAttachment           Tag = "exec_attachment"
	DoubleExtension          Tag = "double_extension"
	RTLOFilename             Tag = "rtlo_filename"
	MacroDocument            Tag = "macro_document"
	LNKInContainer           Tag = "lnk_in_container"
	HTMLSmuggling            Tag = "html_smuggling"
	PDFActiveContent         Tag = "pdf_active_content"
	LookalikeDomain          Tag = "lookalike_domain"
	DisplayNameImpersonation Tag = "display_name_impersonation"
	ThreadHijack             Tag = "thread_hijack"
	FirstContactAttachment   Tag = "first_contact_attachment"
	TrapRecipient            Tag = "trap_recipient"
	BlockedSender            Tag = "blocked_sender"
	MalformedMIME            Tag = "malformed_mime"
	SPFPermerror             Tag = "spf_permerror"
	SPFTemperror             Tag = "spf_temperror"
	DMARCTemperror           Tag = "dmarc_temperror"
	ForgedAuthResults        Tag = "forged_auth_results"
	PathTraversal            Tag = "path_traversal"
	OneNoteEmbeddedFile      Tag = "onenote_embedded_file"
	UnsupportedContainer     Tag = "unsupported_container"
	IPBlocklisted            Tag = "ip_blocklisted"
	URLBlocklisted           Tag = "url_blocklisted"
	Clean                    Tag = "clean"
)

// Tags added by mailguard after the DESIGN.md list.
const (
	// BlockedFile: a file's SHA-256 is on the policy's block list.
	BlockedFile Tag = "blocked_file"
	// RemoteTemplate: an Office document loads a template, object or
	// frame from outside when opened (template injection, Follina's
	// ms-msdt: object), or points at a UNC path that leaks the user's
	// NTLM hash.
	RemoteTemplate Tag = "remote_template"
	// ExploitObject: a document carries an object of a class that only
	// exploits use today: Equation Editor 3.0 (CVE-2017-11882,
	// CVE-2018-0802), removed from Office in 2018 and still in RTF and
	// .doc attacks on Japanese organisations.
	ExploitObject Tag = "exploit_object"
	// CredentialForm: an HTML attachment asks for a password and sends
	// it elsewhere (a form posting to a web address, or script that does):
	// the credential-phishing page mailed as a file, which opens from
	// the local disk where no browser warning about the site applies.
	CredentialForm Tag = "credential_form"
)

// Contract lists the DESIGN.md tags in the order the document gives them.
// A test keeps it equal to the document; new tags go in Extra.
var Contract = []Tag{
	SPFFail, SPFSoftfail, DKIMFail, DMARCReject, DMARCQuarantine, DMARCNoneFail,
	MalwareYARA, MalwareSandbox, SandboxTimeout, EncryptedUnscannable,
	PasswordFoundBody, PasswordFoundThread, ArchiveBomb, ArchiveDepth,
	ExecAttachment, DoubleExtension, RTLOFilename, MacroDocument, LNKInContainer,
	HTMLSmuggling, PDFActiveContent, LookalikeDomain, DisplayNameImpersonation,
	ThreadHijack, FirstContactAttachment, TrapRecipient, BlockedSender,
	MalformedMIME, SPFPermerror, SPFTemperror, DMARCTemperror, ForgedAuthResults,
	PathTraversal, OneNoteEmbeddedFile, UnsupportedContainer, IPBlocklisted,
	URLBlocklisted, Clean,
}

// Extra lists tags mailguard added after the DESIGN.md list. Append only.
var Extra = []Tag{BlockedFile, RemoteTemplate, ExploitObject, CredentialForm}

// Known reports whether t is a tag of the vocabulary.
func Known(t Tag) bool {
	for _, k := range Contract {
		if k == t {
			return true
		}
	}
	for _, k := range Extra {
		if k == t {
			return true
		}
	}
	return false
}

// Finding is one observation of an inspection stage, before policy has
// decided anything. Detail is for humans (never a secret such as a
// password); Path points into the attachment tree when the finding is
// about a file.
type Finding struct {
	Tag    Tag    `json:"tag"`
	Detail string `json:"detail,omitempty"`
	Path   string `json:"path,omitempty"`
	// Minor marks a malformed_mime finding that every common reader
	// resolves the same way, and that mailguard read past: it adds to the
	// score but does not quarantine by itself.
	Minor bool `json:"minor,omitempty"`
}
