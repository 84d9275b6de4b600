// Package archive opens one level of a container and streams its entries
// to a callback, decrypting with candidate passwords where it can. It owns
// the container formats, the decryptors, the password trial order and the
// resource limits (entry count, bytes, compression ratio, declared
// dictionary sizes, password attempts and time).
//
// It must not know about MIME, file typing, YARA, policy or where the
// candidate passwords came from: the caller recurses into inner containers,
// spills content to disk, and turns Problems into findings (archive_bomb,
// encrypted_unscannable, unsupported_container, path_traversal, …).
//
// Readers: zip (stdlib archive/zip for the directory, own streaming
// ZipCrypto and WinZip AES decryptors, deflate, bzip2, LZMA), 7z
// (bodgit/sevenzip behind an own header check), RAR 4/5
// (nwaples/rardecode/v2), tar, gzip, bzip2, xz (ulikunitz/xz behind an own
// index check), and own readers for ISO 9660 (Joliet, Rock Ridge), FAT
// images and CAB (stored, MSZIP). The optional 7z subprocess covers UDF,
// CAB LZX/Quantum, CHM, WIM, VHD(X), ARJ, LZH, cpio, SZDD, MSI and rare zip
// methods (implode, deflate64, PPMd); without it they are Unsupported.
//
// Hostile input yields Problems in the Result, never a panic, an unbounded
// allocation or a hang. Nothing is ever written to disk under a name chosen
// by the archive, and a password never appears in a result or an error;
// only its Source label does.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Format names a container format. The values are stable and may appear in
// results and logs.
type Format string

// The formats Walk understands.
const (
	Zip      Format = "zip"
	SevenZip Format = "7z"
	RAR      Format = "rar"
	Tar      Format = "tar"
	Gzip     Format = "gzip"
	Bzip2    Format = "bzip2"
	XZ       Format = "xz"
	ISO      Format = "iso9660"
	UDF      Format = "udf"
	FAT      Format = "fat"
	CAB      Format = "cab"

	// The formats below have no Go reader: Walk lists and streams them
	// through the 7z subprocess when Options.SevenZipPath (or "7z" on PATH)
	// is usable, and reports them Unsupported otherwise.
	CHM  Format = "chm"
	ARJ  Format = "arj"
	LZH  Format = "lzh"
	CPIO Format = "cpio"
	WIM  Format = "wim"
	VHD  Format = "vhd"
	VHDX Format = "vhdx"
	MSLZ Format = "mslz" // MS-DOS COMPRESS.EXE "SZDD" files (name.ex_)
	MSI  Format = "msi"  // never sniffed (an MSI is an OLE2 file); the caller decides

	// Archives recognised but not read by any reader here or by 7z: Walk
	// reports them Unsupported, so a payload in one is never passed as an
	// ordinary file. ACE was the vehicle of the WinRAR CVE-2018-20250
	// attacks; ALZ and EGG are Korean formats seen in targeted mail.
	ACE     Format = "ace"
	ALZ     Format = "alz"
	EGG     Format = "egg"
	ZOO     Format = "zoo"
	StuffIt Format = "stuffit"
)

// Password is one candidate password. Source is an opaque label (for
// example "body", "thread" or "policy") that is reported in Entry when the
// candidate works; Value is never reported anywhere.
type Password struct {
	Value  string
	Source string
}

// String hides the value so that a Password printed by mistake leaks nothing.
func (p Password) String() string { return "password(" + p.Source + ")" }

// Limits bound the work done on one archive. A zero field takes the
// Default value below; a negative field disables that limit (for tests and
// benchmarks only).
type Limits struct {
	MaxEntries      int           // entries visited; more is ProblemTooManyEntries
	MaxEntryBytes   int64         // bytes delivered from one entry; more is ProblemTooLarge
	MaxTotalBytes   int64         // bytes delivered from the whole archive; more is ProblemTotalSize
	MaxRatio        float64       // uncompressed/compressed per entry (when known) and for the archive
	MaxAttempts     int           // wrong-password attempts per archive
	MaxPasswordTime time.Duration // time spent on password trials per archive
	MaxDictionary   int64         // largest decoder dictionary or window an archive may declare
}

// Default limits, used for zero Limits fields.
const (
	DefaultMaxEntries      = 10000
	DefaultMaxEntryBytes   = 256 << 20
	DefaultMaxTotalBytes   = 1 << 30
	DefaultMaxRatio        = 100
	DefaultMaxAttempts     = 20
	DefaultMaxPasswordTime = 5 * time.Second
	DefaultMaxDictionary   = 256 << 20
)

// ratioFloor is the output size below which no ratio is judged: a small
// file of zeros compresses a thousandfold and harms nobody.
const ratioFloor = 1 << 20

// Options configure one Walk.
type Options struct {
	Limits    Limits
	Passwords []Password // candidates, tried in this order
	Name      string     // the container's own file name (names the gzip/bzip2/xz entry)
	TempDir   string     // where a reader may spill when a library needs a file; "" is os.TempDir

	// SevenZipPath is the 7z binary used as a fallback for formats and
	// methods no Go reader handles (UDF, CAB-LZX/Quantum, CHM, WIM, VHD, …).
	// "" looks up "7z" on PATH; "-" disables the fallback.
	SevenZipPath string
	// SevenZipTimeout bounds one 7z invocation; zero is 30 seconds.
	SevenZipTimeout time.Duration
}

// Entry describes one member of an archive. Name and Link are returned
// exactly as stored: they may contain "../", absolute paths, drive letters,
// backslashes, NUL or bidi controls, and are for the caller to judge.
type Entry struct {
	Name           string    // as stored
	Size           int64     // declared uncompressed size, -1 if unknown
	CompressedSize int64     // -1 if unknown
	Modified       time.Time // zero if unknown
	Dir            bool
	Link           string // symlink or hard-link target, as stored; content is not delivered
	Method         string // compression and encryption method, e.g. "deflate", "deflate+aes256"
	Encrypted      bool
	Decrypted      bool   // content was decrypted with a candidate password
	PasswordSource string // Source of the candidate that worked, "" otherwise
	Locked         bool   // encrypted and no candidate worked: content not delivered
}

// ProblemKind classifies something wrong with an archive. The values are
// stable.
type ProblemKind string

// The problems Walk reports.
const (
	ProblemRatio             ProblemKind = "ratio"              // expands beyond MaxRatio
	ProblemTooManyEntries    ProblemKind = "too_many_entries"   // more than MaxEntries: walk stopped
	ProblemTooLarge          ProblemKind = "too_large"          // entry beyond MaxEntryBytes: content truncated
	ProblemTotalSize         ProblemKind = "total_size"         // archive beyond MaxTotalBytes: walk stopped
	ProblemOverlap           ProblemKind = "overlap"            // zip entries share compressed bytes (Fifield bomb)
	ProblemBomb              ProblemKind = "bomb"               // declared resource needs beyond limits (dictionary, counts)
	ProblemCorrupt           ProblemKind = "corrupt"            // malformed structure or content
	ProblemTruncated         ProblemKind = "truncated"          // data ends early or sizes point past the end
	ProblemUnsupportedMethod ProblemKind = "unsupported_method" // entry uses a method no reader here decodes
	ProblemChecksum          ProblemKind = "wrong_checksum"     // CRC or MAC mismatch (or a wrong password that passed the quick check)
	ProblemAttempts          ProblemKind = "password_attempts"  // MaxAttempts or MaxPasswordTime used up
	ProblemTimeout           ProblemKind = "timeout"            // the 7z subprocess exceeded its time limit
)

// Bomb reports whether the problem is a resource-exhaustion sign that the
// caller should treat as archive_bomb.
func (k ProblemKind) Bomb() bool {
	switch k {
	case ProblemRatio, ProblemTooManyEntries, ProblemTooLarge, ProblemTotalSize, ProblemOverlap, ProblemBomb:
		return true
	}
	return false
}

// Problem is one thing wrong with an archive. Entry is the member's stored
// name ("" for the archive as a whole). Detail is for humans and never
// holds a password.
type Problem struct {
	Kind   ProblemKind
	Entry  string
	Detail string
}

// String formats the problem for logs: kind, quoted entry, detail.
func (p Problem) String() string {
	if p.Entry == "" {
		return fmt.Sprintf("%s: %s", p.Kind, p.Detail)
	}
	return fmt.Sprintf("%s: %q: %s", p.Kind, p.Entry, p.Detail)
}

// Result summarises one Walk.
type Result struct {
	Format           Format
	Entries          int       // entries visited (passed to fn)
	Bytes            int64     // content bytes delivered to fn
	Encrypted        bool      // some entry (or the headers) is encrypted
	HeadersEncrypted bool      // the names themselves are encrypted (7z -mhe, RAR -hp)
	PasswordSource   string    // Source of the candidate that opened encrypted headers
	Locked           []string  // names of entries left locked
	Problems         []Problem // in the order found
	Unsupported      string    // non-empty when the format or a method cannot be opened, e.g. "cab: LZX"
}

// HasProblem reports whether the result holds a problem of kind k.
func (r *Result) HasProblem(k ProblemKind) bool {
	for _, p := range r.Problems {
		if p.Kind == k {
			return true
		}
	}
	return false
}

// ErrLimit is wrapped by the EntryError an entry reader returns when a
// limit stops delivery.
var ErrLimit = errors.New("archive: limit reached")

// EntryError is what an entry's reader returns when delivery stops early:
// a limit was reached or the content is corrupt. The matching Problem is
// already in the Result. fn may return it unchanged: Walk then goes on
// with the next entry (or stops, when the limit was archive-wide).
type EntryError struct {
	Entry string
	Kind  ProblemKind
	Err   error
}

// Error describes the entry, the problem kind and the cause.
func (e *EntryError) Error() string {
	return fmt.Sprintf("archive: entry %q: %s: %v", e.Entry, e.Kind, e.Err)
}

// Unwrap returns the cause (ErrLimit for limits).
func (e *EntryError) Unwrap() error { return e.Err }

// Walk visits the entries of one archive in archive order and calls fn
// with each entry and a reader of its content, bounded by the limits. The
// reader is nil for directories, links, locked entries and entries whose
// method is unsupported; it is valid only until fn returns. fn may read
// all, part or none of it.
//
// Corrupt or hostile content ends up in Result.Problems; the error is only
// ctx's error or an error returned by fn (other than an EntryError from the
// entry's own reader, which Walk has already recorded).
func Walk(ctx context.Context, f Format, ra io.ReaderAt, size int64, opt Options,
	fn func(e Entry, r io.Reader) error) (Result, error) {
	w := newWalker(ctx, f, ra, size, opt, fn)
	err := w.run(walkerFor(f))
	return w.res, err
}

// walkerFor returns the reader of format f, or nil when f is unknown.
func walkerFor(f Format) func(*walker) error {
	switch f {
	case Zip:
		return walkZip
	case SevenZip:
		return walk7z
	case RAR:
		return walkRAR
	case Tar:
		return walkTar
	case Gzip:
		return walkGzip
	case Bzip2:
		return walkBzip2
	case XZ:
		return walkXZ
	case ISO:
		return walkISO
	case FAT:
		return walkFAT
	case CAB:
		return walkCAB
	case UDF, CHM, ARJ, LZH, CPIO, WIM, VHD, VHDX, MSLZ, MSI:
		return walkCLI
	}
	return nil
}
