package scan

// Generators for the starter rules' test samples. Every sample is built
// here from the file formats' specifications, so the tests need no
// binary fixtures.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// utf16le encodes s as UTF-16 little-endian.
func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// psEncoded returns the -EncodedCommand form of a PowerShell script:
// base64 of its UTF-16LE text.
func psEncoded(script string) string {
	return base64.StdEncoding.EncodeToString(utf16le(script))
}

// lnkFile builds a Windows shortcut (MS-SHLLINK): a ShellLinkHeader and
// the StringData structures for a relative target path and, when args is
// not empty, command line arguments (LinkFlags HasArguments).
func lnkFile(target, args string) []byte {
	const (
		hasName         = 0x00000004
		hasRelativePath = 0x00000008
		hasArguments    = 0x00000020
		isUnicode       = 0x00000080
	)
	flags := uint32(hasName | hasRelativePath | isUnicode)
	if args != "" {
		flags |= hasArguments
	}
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	le(uint32(0x4C))                                                         // HeaderSize
	b.Write([]byte{1, 0x14, 2, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46}) // LinkCLSID
	le(flags)                                                                // LinkFlags
	le(uint32(0x20))                                                         // FileAttributes: archive
	b.Write(make([]byte, 24))                                                // creation, access, write times
	le(uint32(0))                                                            // FileSize
	le(uint32(0))                                                            // IconIndex
	le(uint32(7))                                                            // ShowCommand: SW_SHOWMINNOACTIVE
	le(uint16(0))                                                            // HotKey
	b.Write(make([]byte, 10))                                                // reserved
	str := func(s string) {
		le(uint16(len(utf16.Encode([]rune(s)))))
		b.Write(utf16le(s))
	}
	str("Invoice details") // NAME_STRING
	str(target)            // RELATIVE_PATH
	if args != "" {
		str(args) // COMMAND_LINE_ARGUMENTS
	}
	return b.Bytes()
}

// oneNote builds the start of a OneNote section file: the file format
// GUID, some page data and one FileDataStoreObject per embedded payload.
func oneNote(pageText string, payloads ...[]byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xE4, 0x52, 0x5C, 0x7B, 0x8C, 0xD8, 0xA7, 0x4D, 0xAE, 0xB1, 0x53, 0x78, 0xD0, 0x29, 0x96, 0xD3})
	b.Write(make([]byte, 1024))
	b.Write(utf16le(pageText))
	for _, p := range payloads {
		b.Write(make([]byte, 64))
		b.Write([]byte{0xE7, 0x16, 0xE3, 0xBD, 0x65, 0x26, 0x11, 0x45, 0xA4, 0xC4, 0x8D, 0x4D, 0x0B, 0x7A, 0x9E, 0xAC})
		_ = binary.Write(&b, binary.LittleEndian, uint64(len(p))) // cbLength
		b.Write(make([]byte, 4+8))                                // unused, reserved
		b.Write(p)
		b.Write(make([]byte, (8-len(p)%8)%8))
		b.Write([]byte{0x22, 0xA7, 0xFC, 0x71, 0x71, 0x26, 0x46, 0x45, 0x88, 0xB2, 0x7F, 0xC9, 0x27, 0x1E, 0x8B, 0x17}) // footer GUID
	}
	return b.Bytes()
}

// peStub is the start of a Windows executable.
func peStub() []byte {
	b := make([]byte, 256)
	copy(b, "MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff")
	copy(b[0x4E:], "This program cannot be run in DOS mode.\r\r\n$")
	return b
}

// pngStub is the start of a PNG image.
func pngStub() []byte {
	return append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 200)...)
}

// pdfFile builds a small PDF whose catalog has the given extra entries.
func pdfFile(catalogExtra, pageText string) []byte {
	content := "BT /F1 12 Tf 72 712 Td (" + pageText + ") Tj ET"
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R " + catalogExtra + " >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
		"<< /Length " + strconv.Itoa(len(content)) + " >>\nstream\n" + content + "\nendstream",
	}
	var b strings.Builder
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		b.WriteString(strconv.Itoa(i+1) + " 0 obj\n" + o + "\nendobj\n")
	}
	xref := b.Len()
	b.WriteString("xref\n0 " + strconv.Itoa(len(objs)+1) + "\n0000000000 65535 f \n")
	for _, off := range offsets {
		s := strconv.Itoa(off)
		b.WriteString(strings.Repeat("0", 10-len(s)) + s + " 00000 n \n")
	}
	b.WriteString("trailer\n<< /Size " + strconv.Itoa(len(objs)+1) + " /Root 1 0 R >>\nstartxref\n" + strconv.Itoa(xref) + "\n%%EOF\n")
	return []byte(b.String())
}

// biffRecord is one BIFF8 record: type, length, data.
func biffRecord(typ uint16, data []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, typ)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

// xlsBIFF builds bytes shaped like an .xls: the OLE2 signature, a Workbook
// stream name, a BOUNDSHEET record of the given sheet type (0 worksheet,
// 1 macro sheet) and hidden state, and a FORMULA record whose tokens end
// with a ptgFuncVar calling function index fn with argc arguments.
func xlsBIFF(sheetType, hidden byte, fn uint16, argc byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1})
	b.Write(make([]byte, 504))
	b.Write(utf16le("Workbook"))
	b.Write(make([]byte, 512))
	b.Write(biffRecord(0x0809, []byte{0, 6, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})) // BOF
	name := "Macro1"
	bs := binary.LittleEndian.AppendUint32(nil, 0x1000) // lbPlyPos
	bs = append(bs, hidden, sheetType, byte(len(name)), 0)
	bs = append(bs, name...)
	b.Write(biffRecord(0x0085, bs))
	// FORMULA: row, col, ixfe, cached value, flags, chn, then cce + rgce.
	rgce := []byte{0x17, 8, 0}
	rgce = append(rgce, "calc.exe"...)                     // ptgStr "calc.exe"
	rgce = append(rgce, 0x42, argc, byte(fn), byte(fn>>8)) // ptgFuncVar
	f := make([]byte, 20)
	f = binary.LittleEndian.AppendUint16(f, uint16(len(rgce)))
	f = append(f, rgce...)
	b.Write(biffRecord(0x0006, f))
	b.Write(biffRecord(0x000A, nil)) // EOF
	return b.Bytes()
}

// makeISO builds an ISO 9660 image (with Joliet names) holding files.
func makeISO(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	// The ISO is built from a separate workspace directory: Finalize packs
	// everything in the workspace, so the image must not live inside it.
	path := filepath.Join(t.TempDir(), "image.iso")
	work := t.TempDir()
	d, err := diskfs.Create(path, 4<<20, diskfs.SectorSize(2048))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	iso, ok := fs.(*iso9660.FileSystem)
	if !ok {
		t.Fatalf("filesystem is %T", fs)
	}
	if err := iso.Finalize(iso9660.FinalizeOptions{Joliet: true}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeFAT builds a FAT32 disk image (.img) holding files.
func makeFAT(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	d, err := diskfs.Create(path, 40<<20, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeFat32, VolumeLabel: "INVOICE"})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
