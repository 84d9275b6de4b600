package attach

import (
	"bytes"
	"crypto/rc4"
	"crypto/sha1"
	"encoding/binary"
	"os"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

func xlsWorkbook(t *testing.T, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/office/" + file)
	if err != nil {
		t.Fatal(err)
	}
	d, err := openOLE(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return readStream(d.stream("Workbook"), maxStream)
}

// TestXLSDecrypt: workbooks LibreOffice 7.4 saved with a password to open
// decrypt to their content (the cell text is in the shared strings) and
// to well-formed sheet records.
func TestXLSDecrypt(t *testing.T) {
	for _, c := range []struct{ file, password string }{{"lo-rc4.xls", "Xy7#kQ2p"}, {"lo-velvet.xls", officePassword}} {
		wb := xlsWorkbook(t, c.file)
		var fp []byte
		biffEach(wb, func(typ uint16, rec []byte) bool {
			if typ == 0x002F {
				fp = rec
				return false
			}
			return true
		})
		xc, err := parseFilePass(fp)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if _, ok := xc.Key("wrong"); ok {
			t.Fatalf("%s: wrong password accepted", c.file)
		}
		base, ok := xc.Key(c.password)
		if !ok {
			t.Fatalf("%s: password refused", c.file)
		}
		clear := xc.Decrypt(base, wb)
		if bytes.Contains(wb, []byte("mailguard xls canary")) || !bytes.Contains(clear, []byte("mailguard xls canary")) {
			t.Fatalf("%s: the cell text is not in the decrypted stream only", c.file)
		}
		sheets := 0
		biffEach(clear, func(typ uint16, rec []byte) bool {
			if typ == 0x0085 {
				sheets++
				if len(rec) < 8 || rec[5] != 0 {
					t.Errorf("%s: sheet record %x is not a worksheet's", c.file, rec)
				}
			}
			return true
		})
		if sheets == 0 {
			t.Errorf("%s: no sheet records", c.file)
		}
	}
}

// TestXLSMessage: the password in the body opens the workbook; Excel's
// own opens the other; without one it stays locked.
func TestXLSMessage(t *testing.T) {
	rc4x, _ := os.ReadFile("testdata/office/lo-rc4.xls")
	velvet, _ := os.ReadFile("testdata/office/lo-velvet.xls")
	res := walk(t, mkMessage("x", textPart("パスワード：Xy7#kQ2p"), attachment("a.xls", "application/vnd.ms-excel", rc4x)), Options{})
	if f := file(t, res, "a.xls"); !f.Decrypted || f.PasswordSource != SourceBody {
		t.Errorf("body password: decrypted %v source %q %+v", f.Decrypted, f.PasswordSource, f.Findings)
	}
	res = walk(t, mkMessage("x", textPart("see attached"), attachment("b.xls", "application/vnd.ms-excel", velvet)), Options{})
	if f := file(t, res, "b.xls"); !f.Decrypted || f.PasswordSource != SourcePolicy {
		t.Errorf("VelvetSweatshop: decrypted %v source %q %+v", f.Decrypted, f.PasswordSource, f.Findings)
	}
	res = walk(t, mkMessage("x", textPart("password follows"), attachment("c.xls", "application/vnd.ms-excel", rc4x)), Options{})
	f := file(t, res, "c.xls")
	if f.Decrypted {
		t.Error("opened without its password")
	}
	wantTag(t, f.Findings, reason.EncryptedUnscannable)
}

// cryptoAPIFilePass builds the FILEPASS data of RC4 CryptoAPI encryption
// (MS-OFFCRYPTO §2.3.5.1) for password, as Excel 2003 and later write it.
func cryptoAPIFilePass(t testing.TB, password string, bits int) []byte {
	salt := []byte("saltsaltsaltsalt")
	h0 := sha1.Sum(append(append([]byte(nil), salt...), passwordUTF16(password)...))
	hf := sha1.Sum(append(h0[:], 0, 0, 0, 0))
	key := hf[:bits/8]
	if bits == 40 {
		key = append(append([]byte(nil), hf[:5]...), make([]byte, 11)...)
	}
	r, err := rc4.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	verifier := []byte("0123456789abcdef")
	vh := sha1.Sum(verifier)
	ev, evh := make([]byte, 16), make([]byte, 20)
	r.XORKeyStream(ev, verifier)
	r.XORKeyStream(evh, vh[:])
	hdr := make([]byte, 32)
	binary.LittleEndian.PutUint32(hdr[0:], 0x04)    // fCryptoAPI
	binary.LittleEndian.PutUint32(hdr[8:], 0x6801)  // RC4
	binary.LittleEndian.PutUint32(hdr[12:], 0x8004) // SHA-1
	binary.LittleEndian.PutUint32(hdr[16:], uint32(bits))
	b := []byte{1, 0, 4, 0, 2, 0}
	b = binary.LittleEndian.AppendUint32(b, 0x04)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hdr)))
	b = append(b, hdr...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = append(append(append(b, salt...), ev...), 0x14, 0, 0, 0)
	return append(b, evh...)
}

// TestXLSCryptoAPIKey: the CryptoAPI variant's password check, with
// 128-bit and 40-bit keys.
func TestXLSCryptoAPIKey(t *testing.T) {
	for _, bits := range []int{128, 40} {
		c, err := parseFilePass(cryptoAPIFilePass(t, "Xy7#kQ2p", bits))
		if err != nil || !c.cryptoAPI {
			t.Fatalf("%d bits: %v %+v", bits, err, c)
		}
		if _, ok := c.Key("Xy7#kQ2p"); !ok {
			t.Errorf("%d bits: password refused", bits)
		}
		if _, ok := c.Key("other"); ok {
			t.Errorf("%d bits: wrong password accepted", bits)
		}
	}
	for n := 0; n < 120; n++ {
		parseFilePass(cryptoAPIFilePass(t, "x", 128)[:n]) // truncations: no panic
	}
}

// FuzzXLSCrypt: any FILEPASS and stream, no panic.
func FuzzXLSCrypt(f *testing.F) {
	f.Add(cryptoAPIFilePass(f, "pw", 128), []byte{0x09, 0x08, 0x02, 0x00, 0x00, 0x06})
	f.Add([]byte{1, 0, 1, 0, 1, 0}, []byte{0x85, 0x00, 0x08, 0x00, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, fp, stream []byte) {
		c, err := parseFilePass(fp)
		if err != nil {
			return
		}
		base, ok := c.Key("pw")
		if !ok {
			base = make([]byte, 20)
		}
		if out := c.Decrypt(base, stream); out != nil && len(out) != len(stream) {
			t.Fatalf("decrypted %d bytes of %d", len(out), len(stream))
		}
	})
}

// TestXLSHiddenMacroSheet: the 2019–2021 trick, an Excel 4.0 macro sheet
// in a workbook encrypted with Excel's own password so that scanners see
// only ciphertext. The macro sheet is found after decryption.
func TestXLSHiddenMacroSheet(t *testing.T) {
	wb := xlsWorkbook(t, "lo-velvet.xls")
	var fp []byte
	biffEach(wb, func(typ uint16, rec []byte) bool {
		if typ == 0x002F {
			fp = rec
			return false
		}
		return true
	})
	c, err := parseFilePass(fp)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := c.Key(officePassword)
	clear := c.Decrypt(base, wb)
	// Make the first sheet a hidden macro sheet (BoundSheet8: hsState,
	// dt), then encrypt again: RC4 is its own inverse, and Decrypt puts
	// the clear-text parts back from its input.
	for pos := 0; pos+4 <= len(clear); {
		typ := binary.LittleEndian.Uint16(clear[pos:])
		n := int(binary.LittleEndian.Uint16(clear[pos+2:]))
		if typ == 0x0085 {
			clear[pos+4+4], clear[pos+4+5] = 1, 1
			break
		}
		pos += 4 + n
	}
	doc := buildCFB([]cfbEntry{{path: "Workbook", data: c.Decrypt(base, clear)}}, nil)
	res := walk(t, mkMessage("x", textPart("see attached"), attachment("invoice.xls", "application/vnd.ms-excel", doc)), Options{})
	f := file(t, res, "invoice.xls")
	if !f.Decrypted {
		t.Fatalf("not decrypted: %+v", f.Findings)
	}
	wantTag(t, f.Findings, reason.MacroDocument)
	wantNoTag(t, f.Findings, reason.EncryptedUnscannable)
}
