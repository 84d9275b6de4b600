// Package attach owns everything mailguard learns from the bytes of one
// message: the MIME walk (every leaf, nested messages, TNEF, uuencode), true
// file types, recursion into archives and disk images through attach/archive,
// password discovery in the message text, and content features (executables,
// macros with decompressed VBA source, PDF active content, LNK targets, HTML
// smuggling, OneNote embedded files). It returns a deterministic file tree
// with findings; it never decides what happens to the message.
//
// It must not know about YARA (package scan), the sandbox, policy or the
// conversation store: callers hand it candidate passwords and consume its
// Result. Hostile input yields findings, never panics or errors; every
// walk is bounded in depth, file count, bytes, memory and time.
package attach

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mailguard/mailguard/reason"
)

// Limits bound one Walk. The zero value of a field means "use the default"
// (see DefaultLimits); limits are never unlimited.
type Limits struct {
	// MaxDepth is the container nesting limit (archive in archive in mail);
	// deeper containers are not opened and yield archive_depth.
	MaxDepth int
	// MaxFiles is the number of files in the whole tree; more yield
	// archive_bomb and the walk stops adding files.
	MaxFiles int
	// MaxTotalBytes is the number of bytes extracted in the whole tree
	// (decoded attachments included); more yield archive_bomb.
	MaxTotalBytes int64
	// MaxFileBytes bounds one extracted file; a larger one is kept
	// truncated to this size and yields archive_bomb.
	MaxFileBytes int64
	// MaxRatio is the per-entry compression ratio above which an archive
	// entry is treated as a bomb.
	MaxRatio float64
	// MaxMIMEParts bounds the number of MIME entities; more yield
	// malformed_mime and the rest of the message is not parsed.
	MaxMIMEParts int
	// MaxMIMEDepth bounds multipart and message/rfc822 nesting; deeper
	// entities yield malformed_mime and are kept as opaque leaves.
	MaxMIMEDepth int
	// MaxPasswords caps the candidate passwords tried per archive (body
	// candidates first, then the caller's).
	MaxPasswords int
	// MemoryFileBytes is the size above which an extracted file is spilled
	// to Options.TempDir instead of kept in memory.
	MemoryFileBytes int64
	// MaxDuration is the wall-clock budget of one Walk; when it is spent
	// the walk stops opening containers and the Result is incomplete.
	MaxDuration time.Duration
	// MaxTextBytes bounds Result.Text and the body text scanned for
	// passwords and smuggling.
	MaxTextBytes int
}

// DefaultLimits returns the production defaults:
//
//	MaxDepth        8        containers nested in containers; real mail rarely exceeds 3
//	MaxFiles        2000     files in the whole tree
//	MaxTotalBytes   512 MiB  decoded and extracted bytes in the whole tree
//	MaxFileBytes    128 MiB  one file
//	MaxRatio        250      per archive entry (deflate's ceiling is ~1030; text rarely beats 100)
//	MaxMIMEParts    1000     MIME entities (enmime needs 0.35 s for 10,000; mail has < 100)
//	MaxMIMEDepth    50       multipart/message nesting (real mail: < 10)
//	MaxPasswords    20       candidate passwords per archive
//	MemoryFileBytes 8 MiB    larger files are spilled to TempDir
//	MaxDuration     60 s     wall clock for one message
//	MaxTextBytes    1 MiB    Result.Text and body text analysed
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:        8,
		MaxFiles:        2000,
		MaxTotalBytes:   512 << 20,
		MaxFileBytes:    128 << 20,
		MaxRatio:        250,
		MaxMIMEParts:    1000,
		MaxMIMEDepth:    50,
		MaxPasswords:    20,
		MemoryFileBytes: 8 << 20,
		MaxDuration:     60 * time.Second,
		MaxTextBytes:    1 << 20,
	}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	if l.MaxFileBytes > l.MaxTotalBytes {
		l.MaxFileBytes = l.MaxTotalBytes
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = d.MaxRatio
	}
	if l.MaxMIMEParts <= 0 {
		l.MaxMIMEParts = d.MaxMIMEParts
	}
	if l.MaxMIMEDepth <= 0 {
		l.MaxMIMEDepth = d.MaxMIMEDepth
	}
	if l.MaxPasswords <= 0 {
		l.MaxPasswords = d.MaxPasswords
	}
	if l.MemoryFileBytes <= 0 {
		l.MemoryFileBytes = d.MemoryFileBytes
	}
	if l.MaxDuration <= 0 {
		l.MaxDuration = d.MaxDuration
	}
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = d.MaxTextBytes
	}
	return l
}

// PasswordSource says where the password that opened a file came from.
type PasswordSource string

// Password sources, spelled as in the DESIGN.md JSON contract.
const (
	SourceBody   PasswordSource = "body"   // found in this message's subject or body
	SourceThread PasswordSource = "thread" // from another mail of the conversation
	SourcePolicy PasswordSource = "policy" // from the administrator's list
	SourceNone   PasswordSource = "none"   // not encrypted, or not decrypted
)

// Password is one candidate password and its origin. Value is secret: it
// never appears in findings, JSON or logs.
type Password struct {
	Value  string
	Source PasswordSource
}

// String hides the value so that a Password printed by mistake leaks nothing.
func (p Password) String() string { return "Password{source=" + string(p.Source) + "}" }

// Options configure one Walk.
type Options struct {
	// Limits bound the walk; zero fields take DefaultLimits values.
	Limits Limits
	// Passwords from the caller (thread, then policy), tried after the
	// candidates found in the message itself.
	Passwords []Password
	// TempDir is where large files are spilled; "" means os.TempDir().
	TempDir string
}

// Result is what Walk learned from one message.
type Result struct {
	// Header is the decoded summary of the top-level header.
	Header Header `json:"header"`
	// Files is the attachment tree, depth-first: children follow their parent.
	Files []*File `json:"files"`
	// Bodies are the text/plain and text/html body parts (decoded to UTF-8),
	// for YARA and URL extraction; they are not in Files.
	Bodies []*File `json:"-"`
	// Findings are message-level findings (malformed_mime, limits, body
	// smuggling); file findings live on the files. See AllFindings.
	Findings []reason.Finding `json:"findings"`
	// Passwords are the candidates found in this message (for PPAP linking
	// by the thread stage). Never logged.
	Passwords []string `json:"-"`
	// PasswordAnnounced is set when the text announces an encrypted
	// attachment or a password sent separately.
	PasswordAnnounced bool `json:"password_announced"`
	// Complete is false when a limit, the time budget or a parse failure
	// cut the walk short.
	Complete bool `json:"complete"`
	// Text is the NFKC plain text of subject and bodies (HTML converted),
	// bounded by Limits.MaxTextBytes.
	Text string `json:"-"`
	// Panics holds the stack traces of parser panics that were recovered
	// (each is also a malformed_mime finding), for the caller's log and
	// panic metric; attach itself neither logs nor counts.
	Panics []string `json:"-"`

	spill *spillDir
}

// Close removes the spill files of the walk. It is safe to call twice.
func (r *Result) Close() error {
	if r == nil || r.spill == nil {
		return nil
	}
	return r.spill.close()
}

// AllFindings returns the message findings followed by every file's
// findings, in tree order.
func (r *Result) AllFindings() []reason.Finding {
	out := append([]reason.Finding(nil), r.Findings...)
	for _, f := range r.Files {
		out = append(out, f.Findings...)
	}
	return out
}

// TotalBytes is the number of bytes extracted into the tree (files and
// bodies), the quantity bounded by Limits.MaxTotalBytes.
func (r *Result) TotalBytes() int64 {
	var n int64
	for _, f := range r.Files {
		if !f.Derived {
			n += f.Size
		}
	}
	for _, f := range r.Bodies {
		n += f.Size
	}
	return n
}

// Header is the decoded summary of a message header.
type Header struct {
	From       []Address `json:"from"`
	FromFields int       `json:"from_fields"`
	Sender     []Address `json:"sender,omitempty"`
	ReplyTo    []Address `json:"reply_to,omitempty"`
	To         []Address `json:"to,omitempty"`
	Cc         []Address `json:"cc,omitempty"`
	Subject    string    `json:"subject"`
	MessageID  string    `json:"message_id"`
	InReplyTo  []string  `json:"in_reply_to,omitempty"`
	References []string  `json:"references,omitempty"`
	Date       time.Time `json:"date,omitzero"`
	// List is set when the message says it came through a mailing list
	// (List-Id or List-Post), which rewrites From on its members' behalf.
	List bool `json:"list,omitempty"`
}

// Address is one decoded mailbox.
type Address struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// File is one node of the tree: an attachment, an archive entry, an
// embedded object or a derived file (such as decompressed VBA source).
type File struct {
	Path           string           `json:"path"`
	Name           string           `json:"name"`
	Type           string           `json:"type"`
	Size           int64            `json:"size"`
	SHA256         string           `json:"sha256"`
	Depth          int              `json:"depth"`
	Encrypted      bool             `json:"encrypted"`
	Decrypted      bool             `json:"decrypted"`
	PasswordSource PasswordSource   `json:"password_source"`
	Findings       []reason.Finding `json:"findings"`
	Features       Features         `json:"features,omitzero"`
	Derived        bool             `json:"derived,omitempty"`
	// Truncated is set when the file was cut at Limits.MaxFileBytes.
	Truncated bool `json:"truncated,omitempty"`

	parent    *File
	inArchive bool   // the parent is an archive or disk image
	readErr   string // the content could not be read to its end
	declared  string // the MIME Content-Type it was attached with

	data []byte // content when kept in memory
	path string // spill file otherwise
	once sync.Once
	fh   *os.File
	ferr error
}

// ErrNoContent is returned by Open when a file has no stored content.
var ErrNoContent = errors.New("attach: file content not available")

// Open returns the file's bytes, from memory or from the spill file.
func (f *File) Open() (io.ReadSeekCloser, error) {
	if f.path != "" {
		h, err := os.Open(f.path)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", f.Path, err)
		}
		return h, nil
	}
	return nopCloser{bytesReader(f.data)}, nil
}

// ReaderAt returns random access to the file's bytes. For a spilled file
// the handle stays open until Result.Close.
func (f *File) ReaderAt() (io.ReaderAt, int64, error) {
	if f.path == "" {
		return bytesReader(f.data), int64(len(f.data)), nil
	}
	f.once.Do(func() { f.fh, f.ferr = os.Open(f.path) })
	if f.ferr != nil {
		return nil, 0, fmt.Errorf("open %s: %w", f.Path, f.ferr)
	}
	return f.fh, f.Size, nil
}

func (f *File) closeHandle() error {
	if f.fh != nil {
		err := f.fh.Close()
		f.fh = nil
		return err
	}
	return nil
}

// Features are the content facts of one file, kept for policy, YARA rule
// writers and the quarantine view.
type Features struct {
	Executable   string     `json:"executable,omitempty"`     // pe, elf, macho, msi, script:<ext>
	Macros       *MacroInfo `json:"macros,omitempty"`         // VBA / XLM in OLE or OOXML
	PDF          *PDFInfo   `json:"pdf,omitempty"`            // active-content keywords
	LNK          *LNKInfo   `json:"lnk,omitempty"`            // shell link target
	HTML         []string   `json:"html_smuggling,omitempty"` // smuggling indicators
	OneNote      int        `json:"onenote_embedded,omitempty"`
	Container    string     `json:"container,omitempty"`          // archive/image format opened
	Unsupported  string     `json:"unsupported,omitempty"`        // container format not opened
	Entries      []string   `json:"entries,omitempty"`            // listable names of a locked container
	EncryptedDoc string     `json:"encrypted_document,omitempty"` // ooxml-agile, doc-fib, pdf-standard …
}

// Locked reports a file that stayed encrypted but that a password could
// still open: an archive or disk image, or a password-protected OOXML
// document, an RC4-encrypted Excel 97-2003 workbook, or a PDF with a
// document open password (not the .doc/.ppt nothing here decrypts). The
// conversation stage waits for such a file's password mail.
func (f *File) Locked() bool {
	return f.Encrypted && !f.Decrypted &&
		(f.Features.Container != "" || strings.HasPrefix(f.Features.EncryptedDoc, "ooxml-encrypted-package") ||
			strings.HasPrefix(f.Features.EncryptedDoc, "xls-filepass") || f.Features.EncryptedDoc == pdfUserPassword)
}

func (f *Features) empty() bool {
	return (f.Executable == "" && f.Macros == nil && f.PDF == nil && f.LNK == nil &&
		len(f.HTML) == 0 && f.OneNote == 0 && f.Container == "" && f.Unsupported == "" &&
		len(f.Entries) == 0 && f.EncryptedDoc == "")
}

// MacroInfo describes macros found in an Office document.
type MacroInfo struct {
	VBA     bool     `json:"vba"`
	XLM     bool     `json:"xlm"`
	Modules []string `json:"modules,omitempty"` // VBA module stream names
	AutoRun []string `json:"autorun,omitempty"` // AutoOpen, Document_Open, Workbook_Open, Auto_Open …
	Where   string   `json:"where,omitempty"`   // e.g. "word/vbaProject.bin"
	Note    string   `json:"note,omitempty"`    // what could not be done (e.g. PPT VBA)
}

// PDFInfo lists PDF active-content keywords and how they were found.
type PDFInfo struct {
	Keywords  []string `json:"keywords,omitempty"`
	Method    string   `json:"method"` // "pdfcpu" or "raw-scan"
	Encrypted bool     `json:"encrypted,omitempty"`
	Error     string   `json:"error,omitempty"` // pdfcpu's error when the raw scan was used
}

// LNKInfo is the parsed content of a Windows shell link (MS-SHLLINK).
type LNKInfo struct {
	Target       string `json:"target,omitempty"`
	Arguments    string `json:"arguments,omitempty"`
	WorkingDir   string `json:"working_dir,omitempty"`
	IconLocation string `json:"icon_location,omitempty"`
	RelativePath string `json:"relative_path,omitempty"`
	Name         string `json:"name,omitempty"`
	Error        string `json:"error,omitempty"`
}
