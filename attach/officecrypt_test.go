package attach

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

// encryptAgile writes pkg as Office's Agile encryption does (MS-OFFCRYPTO
// §2.3.4.10–15: AES-256-CBC, SHA-512, spin rounds), the other way round
// from the reader. Its output is checked once against a real reader
// (LibreOffice opens testdata/office/agile-written.xlsx with the
// password; see TestOfficeLibreOfficeFixtures).
func encryptAgile(t testing.TB, pkg []byte, password string, spin int) []byte {
	t.Helper()
	salt := []byte("0123456789abcdef")
	dataSalt := []byte("fedcba9876543210")
	secret := bytes.Repeat([]byte{0x5a}, 32)
	verifier := []byte("verifier-input!!")
	h := iterate(sha512.New, salt, password, spin)
	derive := func(block []byte) []byte {
		s := sha512.New()
		s.Write(h)
		s.Write(block)
		return s.Sum(nil)[:32]
	}
	enc := func(key, iv, data []byte) []byte {
		blk, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		if r := len(data) % 16; r != 0 {
			data = append(append([]byte(nil), data...), make([]byte, 16-r)...)
		}
		out := make([]byte, len(data))
		cipher.NewCBCEncrypter(blk, iv).CryptBlocks(out, data)
		return out
	}
	vh := sha512.Sum512(verifier)
	b64 := base64.StdEncoding.EncodeToString
	xmlDesc := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<encryption xmlns="http://schemas.microsoft.com/office/2006/encryption" xmlns:p="http://schemas.microsoft.com/office/2006/keyEncryptor/password">`+
		`<keyData saltSize="16" blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512" saltValue="%s"/>`+
		`<keyEncryptors><keyEncryptor uri="http://schemas.microsoft.com/office/2006/keyEncryptor/password">`+
		`<p:encryptedKey spinCount="%d" saltSize="16" blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512" saltValue="%s" encryptedVerifierHashInput="%s" encryptedVerifierHashValue="%s" encryptedKeyValue="%s"/>`+
		`</keyEncryptor></keyEncryptors></encryption>`,
		b64(dataSalt), spin, b64(salt), b64(enc(derive(blockVerifierInput), salt, verifier)),
		b64(enc(derive(blockVerifierValue), salt, vh[:])), b64(enc(derive(blockKeyValue), salt, secret)))
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(pkg)))
	for i := 0; i*segmentSize < len(pkg); i++ {
		seg := pkg[i*segmentSize : min((i+1)*segmentSize, len(pkg))]
		s := sha512.New()
		s.Write(dataSalt)
		s.Write(binary.LittleEndian.AppendUint32(nil, uint32(i)))
		out = append(out, enc(secret, s.Sum(nil)[:16], seg)...)
	}
	// dataIntegrity (§2.3.4.14): an HMAC of the whole EncryptedPackage
	// stream. mailguard does not check it (whoever wrote the file chose
	// it), but Office and LibreOffice refuse a file without it.
	iv := func(block []byte) []byte {
		s := sha512.New()
		s.Write(dataSalt)
		s.Write(block)
		return s.Sum(nil)[:16]
	}
	hmacKey := bytes.Repeat([]byte{0x3c}, 64)
	mac := hmac.New(sha512.New, hmacKey)
	mac.Write(out)
	integrity := fmt.Sprintf(`<dataIntegrity encryptedHmacKey="%s" encryptedHmacValue="%s"/>`,
		b64(enc(secret, iv([]byte{0x5f, 0xb2, 0xad, 0x01, 0x0c, 0xb9, 0xe1, 0xf6}), hmacKey)),
		b64(enc(secret, iv([]byte{0xa0, 0x67, 0x7f, 0x02, 0xb2, 0x2c, 0x84, 0x33}), mac.Sum(nil))))
	xmlDesc = strings.Replace(xmlDesc, "<keyEncryptors>", integrity+"<keyEncryptors>", 1)
	info := append([]byte{4, 0, 4, 0, 0x40, 0, 0, 0}, xmlDesc...)
	return buildCFB([]cfbEntry{{path: "EncryptionInfo", data: info}, {path: "EncryptedPackage", data: out}}, nil)
}

// TestWriteAgileFixture writes testdata/office/agile-written.xlsx from a
// plain workbook when MAILGUARD_WRITE_FIXTURE names one.
func TestWriteAgileFixture(t *testing.T) {
	src := os.Getenv("MAILGUARD_WRITE_FIXTURE")
	if src == "" {
		t.Skip("set MAILGUARD_WRITE_FIXTURE to a plain .xlsx to rewrite the fixture")
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("testdata/office/agile-written.xlsx", encryptAgile(t, b, "Xy7#kQ2p", 100000), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readDecrypted(t *testing.T, res *Result, name string) []byte {
	t.Helper()
	f := file(t, res, name)
	ra, size, err := f.ReaderAt()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.NewSectionReader(ra, 0, size))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOfficeAgileRoundTrip: a macro document in Agile encryption, the
// password in the body: decrypted, and the macro inside found.
func TestOfficeAgileRoundTrip(t *testing.T) {
	xlsm := mkDocm(t)
	enc := encryptAgile(t, xlsm, "Kx9!mQ2w", 1000)
	raw := mkMessage("見積", textPart("お世話になっております。\r\nパスワード：Kx9!mQ2w\r\n"), attachment("見積書.docm", "application/octet-stream", enc))
	res := walk(t, raw, Options{})
	f := file(t, res, "見積書.docm")
	if !f.Encrypted || !f.Decrypted || f.PasswordSource != SourceBody {
		t.Fatalf("encrypted %v decrypted %v source %q; findings %+v", f.Encrypted, f.Decrypted, f.PasswordSource, f.Findings)
	}
	wantTag(t, f.Findings, reason.PasswordFoundBody)
	wantNoTag(t, f.Findings, reason.EncryptedUnscannable)
	if got := readDecrypted(t, res, "見積書.docm/見積書.docm"); !bytes.Equal(got, xlsm) {
		t.Fatalf("decrypted package differs from the original (%d vs %d bytes)", len(got), len(xlsm))
	}
	wantTag(t, file(t, res, "見積書.docm/見積書.docm").Findings, reason.MacroDocument)

	// Without the password: locked, reported, nothing guessed.
	res = walk(t, mkMessage("x", textPart("see attached"), attachment("a.xlsx", "application/octet-stream", enc)), Options{})
	f = file(t, res, "a.xlsx")
	if !f.Encrypted || f.Decrypted {
		t.Fatalf("encrypted %v decrypted %v", f.Encrypted, f.Decrypted)
	}
	wantTag(t, f.Findings, reason.EncryptedUnscannable)

	// Excel's default password opens without asking, so it is tried.
	velvet := encryptAgile(t, xlsm, officePassword, 1000)
	res = walk(t, mkMessage("x", textPart("see attached"), attachment("b.docm", "application/octet-stream", velvet)), Options{})
	if f := file(t, res, "b.docm"); !f.Decrypted || f.PasswordSource != SourcePolicy {
		t.Fatalf("VelvetSweatshop: decrypted %v source %q", f.Decrypted, f.PasswordSource)
	}
	wantTag(t, file(t, res, "b.docm/b.docm").Findings, reason.MacroDocument)
}

// TestOfficeLibreOfficeFixtures: files written by LibreOffice 7.4
// (Standard encryption: AES-128, SHA-1) open with their password, and
// agile-written.xlsx, written by encryptAgile, is the file LibreOffice
// was shown to open with its password (how: testdata/office/README).
func TestOfficeLibreOfficeFixtures(t *testing.T) {
	for _, c := range []struct{ file, password, source string }{
		{"lo-standard.xlsx", "Xy7#kQ2p", "body"},
		{"lo-standard.docx", "Doc-Pw-2026", "body"},
		{"lo-velvet.xlsx", "", "policy"},
		{"agile-written.xlsx", "Xy7#kQ2p", "body"},
	} {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/office/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			body := "see attached"
			if c.password != "" {
				body = "パスワード：" + c.password
			}
			res := walk(t, mkMessage("x", textPart(body), attachment(c.file, "application/octet-stream", b)), Options{})
			f := file(t, res, c.file)
			if !f.Decrypted || string(f.PasswordSource) != c.source {
				t.Fatalf("decrypted %v source %q; findings %+v", f.Decrypted, f.PasswordSource, f.Findings)
			}
			inner := readDecrypted(t, res, c.file+"/"+c.file)
			if !bytes.HasPrefix(inner, []byte("PK\x03\x04")) || !bytes.Contains(inner, []byte("[Content_Types].xml")) {
				t.Fatalf("decrypted content is not an OOXML package: % x", inner[:min(16, len(inner))])
			}
		})
	}
}

// A crafted header cannot make a password attempt cost more than
// maxSpinCount rounds, and a wrong password is refused.
func TestOfficeCryptLimits(t *testing.T) {
	enc := encryptAgile(t, []byte("PK\x03\x04 not really"), "right", 10)
	d, err := openOLE(bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	info := readStream(d.stream("EncryptionInfo"), 1<<20)
	c, err := parseOfficeCrypt(info)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Key("wrong"); ok {
		t.Error("wrong password accepted")
	}
	if _, ok := c.Key("right"); !ok {
		t.Error("right password refused")
	}
	huge := bytes.Replace(info, []byte(`spinCount="10"`), []byte(`spinCount="2000000000"`), 1)
	if _, err := parseOfficeCrypt(huge); err == nil {
		t.Error("2,000,000,000 hash rounds accepted")
	}
	for n := 0; n < len(info); n += 7 {
		parseOfficeCrypt(info[:n]) // truncations: no panic
	}
}

// FuzzOfficeCrypt: any EncryptionInfo and package, no panic.
func FuzzOfficeCrypt(f *testing.F) {
	enc := encryptAgile(f, []byte("PK\x03\x04 a package"), "pw", 3)
	d, err := openOLE(bytes.NewReader(enc))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(readStream(d.stream("EncryptionInfo"), 1<<20), readStream(d.stream("EncryptedPackage"), 1<<20))
	std, _ := os.ReadFile("testdata/office/lo-standard.xlsx")
	if d, err := openOLE(bytes.NewReader(std)); err == nil {
		f.Add(readStream(d.stream("EncryptionInfo"), 1<<20), readStream(d.stream("EncryptedPackage"), 1<<20))
	}
	f.Fuzz(func(t *testing.T, info, pkg []byte) {
		c, err := parseOfficeCrypt(info)
		if err != nil || c.agile && c.spin > 1000 {
			return
		}
		key, ok := c.Key("pw")
		if !ok {
			key = make([]byte, 16)
		}
		if r, _, err := c.Decrypt(key, bytes.NewReader(pkg), int64(len(pkg))); err == nil {
			io.Copy(io.Discard, io.LimitReader(r, 1<<20))
		}
	})
}

// BenchmarkOfficeKey is the cost of one password attempt.
func BenchmarkOfficeKey(b *testing.B) {
	for _, c := range []struct{ name, file string }{{"agile-100k-sha512", "agile-written.xlsx"}, {"standard-50k-sha1", "lo-standard.xlsx"}} {
		b.Run(c.name, func(b *testing.B) {
			raw, err := os.ReadFile("testdata/office/" + c.file)
			if err != nil {
				b.Fatal(err)
			}
			d, err := openOLE(bytes.NewReader(raw))
			if err != nil {
				b.Fatal(err)
			}
			oc, err := parseOfficeCrypt(readStream(d.stream("EncryptionInfo"), 1<<20))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				oc.Key("wrong password")
			}
		})
	}
}
