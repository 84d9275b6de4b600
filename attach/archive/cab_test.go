package archive

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"path/filepath"
	"testing"
)

// buildCAB writes a one-folder cabinet ([MS-CAB]) of the files, stored
// or MSZIP (each 32 KiB block a deflate stream whose dictionary is the
// previous output), with CFDATA checksums.
func buildCAB(t testing.TB, files []rarFile, method uint16) []byte {
	t.Helper()
	le := binary.LittleEndian
	var all []byte
	var cfFiles []byte
	for _, f := range files {
		cfFiles = le.AppendUint32(cfFiles, uint32(len(f.data)))
		cfFiles = le.AppendUint32(cfFiles, uint32(len(all)))
		cfFiles = le.AppendUint16(cfFiles, 0)      // folder 0
		cfFiles = le.AppendUint16(cfFiles, 0x5a8e) // date
		cfFiles = le.AppendUint16(cfFiles, 0x6000) // time
		cfFiles = le.AppendUint16(cfFiles, 0x20)   // attributes
		cfFiles = append(append(cfFiles, f.name...), 0)
		all = append(all, f.data...)
	}
	var blocks [][]byte
	var dict []byte
	for off := 0; off < len(all) || off == 0; off += cabMaxBlock {
		chunk := all[off:min(off+cabMaxBlock, len(all))]
		data := chunk
		if method == cabMSZIP {
			var b bytes.Buffer
			b.WriteString("CK")
			fw, _ := flate.NewWriterDict(&b, 6, dict)
			fw.Write(chunk)
			fw.Close()
			data = b.Bytes()
			dict = append(dict, chunk...)
			if len(dict) > cabMaxBlock {
				dict = dict[len(dict)-cabMaxBlock:]
			}
		}
		hdr := le.AppendUint16(le.AppendUint16(nil, uint16(len(data))), uint16(len(chunk)))
		blk := le.AppendUint32(nil, cabChecksum(hdr, cabChecksum(data, 0)))
		blocks = append(blocks, append(append(blk, hdr...), data...))
		if len(all) == 0 {
			break
		}
	}
	const headerLen, folderLen = 36, 8
	filesOff := headerLen + folderLen
	dataOff := filesOff + len(cfFiles)
	var out []byte
	out = append(out, "MSCF"...)
	out = le.AppendUint32(out, 0)
	out = le.AppendUint32(out, 0) // cbCabinet, patched below
	out = le.AppendUint32(out, 0)
	out = le.AppendUint32(out, uint32(filesOff))
	out = le.AppendUint32(out, 0)
	out = append(out, 3, 1)
	out = le.AppendUint16(out, 1) // folders
	out = le.AppendUint16(out, uint16(len(files)))
	out = le.AppendUint16(out, 0) // flags
	out = le.AppendUint16(out, 0x1234)
	out = le.AppendUint16(out, 0)
	out = le.AppendUint32(out, uint32(dataOff))
	out = le.AppendUint16(out, uint16(len(blocks)))
	out = le.AppendUint16(out, method)
	out = append(out, cfFiles...)
	for _, b := range blocks {
		out = append(out, b...)
	}
	le.PutUint32(out[8:], uint32(len(out)))
	return out
}

func TestCAB(t *testing.T) {
	files := []rarFile{
		{name: "setup.inf", data: []byte("[Version]\r\n")},
		{name: "big.bin", data: bytes.Repeat([]byte("0123456789abcdefghij"), 9000)},
		{name: `..\..\Windows\evil.dll`, data: []byte("MZ evil")},
		{name: "empty.txt"},
	}
	for _, method := range []uint16{cabNone, cabMSZIP} {
		data := buildCAB(t, files, method)
		if got := Sniff(bytes.NewReader(data), int64(len(data))); got != CAB {
			t.Errorf("Sniff = %q", got)
		}
		w := walkBytes(t, CAB, data, Options{SevenZipPath: "-"})
		if w.err != nil || len(w.res.Problems) > 0 || w.res.Entries != len(files) {
			t.Fatalf("method %d: err %v problems %v entries %d", method, w.err, w.res.Problems, w.res.Entries)
		}
		for _, f := range files {
			if !bytes.Equal(w.content[f.name], f.data) {
				t.Errorf("method %d: %q: %d bytes, want %d", method, f.name, len(w.content[f.name]), len(f.data))
			}
		}
	}
	// Reading the big file partly, then the next, still works (the stream
	// is skipped forward).
	data := buildCAB(t, files, cabMSZIP)
	w := walkBytes(t, CAB, data, Options{SevenZipPath: "-", Limits: Limits{MaxEntryBytes: 1000}})
	if !bytes.Equal(w.content[files[2].name], files[2].data) || !w.res.HasProblem(ProblemTooLarge) {
		t.Errorf("after a truncated entry: %q, problems %v", w.content[files[2].name], w.res.Problems)
	}
	// A corrupted data block is reported, not fatal.
	bad := append([]byte{}, data...)
	bad[len(bad)-40] ^= 0xff
	w = walkBytes(t, CAB, bad, Options{SevenZipPath: "-"})
	if !w.res.HasProblem(ProblemChecksum) {
		t.Errorf("corrupted: problems %v", w.res.Problems)
	}
}

// TestCABLZX: a real LZX cabinet (the one inside ClamAV's InstallShield
// sample) goes through the 7z fallback; without 7z its names are listed
// and it is reported unsupported.
func TestCABLZX(t *testing.T) {
	need(t, "7z")
	needClamAV(t)
	exe := readFile(t, filepath.Join(clamDir, "clam_IScab_ext.exe"))
	i := bytes.Index(exe, []byte("MSCF\x00\x00\x00\x00"))
	if i < 0 {
		t.Fatal("no cabinet in clam_IScab_ext.exe")
	}
	cab := exe[i : i+int(binary.LittleEndian.Uint32(exe[i+8:]))]
	w := walkBytes(t, CAB, cab, Options{})
	var total int64
	for _, e := range w.entries {
		if int64(len(w.content[e.Name])) != e.Size {
			t.Errorf("%s: %d bytes, listed %d", e.Name, len(w.content[e.Name]), e.Size)
		}
		total += e.Size
	}
	if w.res.Entries != 13 || total != 1796193 || len(w.res.Problems) > 0 {
		t.Errorf("via 7z: %d entries, %d bytes, problems %v", w.res.Entries, total, w.res.Problems)
	}
	w = walkBytes(t, CAB, cab, Options{SevenZipPath: "-"})
	if w.res.Entries != 13 || len(w.content) != 0 || w.res.Unsupported != "cab: lzx" {
		t.Errorf("without 7z: %d entries, %d with content, unsupported %q", w.res.Entries, len(w.content), w.res.Unsupported)
	}
}

// TestWIMVia7z: a format with no Go reader at all (WIM, made here by 7z)
// is sniffed, listed and streamed through 7z, or reported unsupported.
func TestWIMVia7z(t *testing.T) {
	need(t, "7z")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Windows/System32/evil.dll": "MZ evil", "readme.txt": "hi"})
	run(t, dir, "7z", "a", "-bd", "-twim", "x.wim", "Windows", "readme.txt")
	data := readFile(t, filepath.Join(dir, "x.wim"))
	if got := Sniff(bytes.NewReader(data), int64(len(data))); got != WIM {
		t.Fatalf("Sniff = %q", got)
	}
	w := walkBytes(t, WIM, data, Options{})
	if string(w.content["Windows/System32/evil.dll"]) != "MZ evil" || string(w.content["readme.txt"]) != "hi" {
		t.Errorf("via 7z: entries %+v problems %v", w.entries, w.res.Problems)
	}
	w = walkBytes(t, WIM, data, Options{SevenZipPath: "-"})
	if w.res.Unsupported == "" || w.res.Entries != 0 {
		t.Errorf("without 7z: %+v", w.res)
	}
}
