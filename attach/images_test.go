package attach

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailguard/mailguard/reason"
)

// TestRealDiskImages: the disk images of 2022–2024 campaigns (an ISO,
// IMG or VHD around a shortcut and a script, mailed to get past
// Mark-of-the-Web), built with the real tools rather than by hand:
// genisoimage's ISO/UDF bridge, the same image with its ISO 9660
// descriptors taken out so that only UDF is left (as Windows' oscdimg -u2
// writes them; nothing on Debian writes a UDF-only image without a
// mount), a FAT floppy image (mkfs.vfat, mcopy), and that FAT image in a
// dynamic VHD and a VHDX (qemu-img). Each must open down to the shortcut.
func TestRealDiskImages(t *testing.T) {
	need(t, "7z", "genisoimage", "mkfs.vfat", "mcopy", "qemu-img")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	lnk := mkLNK(`C:\Windows\System32\cmd.exe`, `/c start invoice.bat`, `%TEMP%`, `C:\Windows\System32\shell32.dll`)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Invoice.pdf.lnk", lnk)
	write("invoice.bat", []byte("@echo off\r\npowershell -w hidden -enc SQBFAFgA\r\n"))
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("genisoimage", "-quiet", "-udf", "-J", "-R", "-V", "INVOICE", "-o", "udf.iso", "src")
	bridge, err := os.ReadFile(filepath.Join(dir, "udf.iso"))
	if err != nil {
		t.Fatal(err)
	}
	// The bridge's recognition sequence is CD001 ×3, BEA01, NSR02, TEA01
	// from sector 16; a UDF-only image has BEA01, NSR02, TEA01 there.
	udfOnly := append([]byte(nil), bridge...)
	var vrs []byte
	for sec := 16; sec < 32; sec++ {
		d := udfOnly[sec*2048 : (sec+1)*2048]
		if string(d[1:6]) != "CD001" {
			vrs = append(vrs, d...)
		}
		clear(d)
	}
	copy(udfOnly[16*2048:], vrs)
	if err := os.WriteFile(filepath.Join(dir, "udfonly.iso"), udfOnly, 0o644); err != nil {
		t.Fatal(err)
	}
	run("mkfs.vfat", "-C", "-n", "INVOICE", "fat.img", "1440")
	run("mcopy", "-i", "fat.img", filepath.Join(src, "Invoice.pdf.lnk"), filepath.Join(src, "invoice.bat"), "::")
	run("qemu-img", "convert", "-q", "-f", "raw", "-O", "vpc", "fat.img", "fat.vhd")
	run("qemu-img", "convert", "-q", "-f", "raw", "-O", "vhdx", "fat.img", "fat.vhdx")
	for _, c := range []struct{ file, name, typ string }{
		{"udf.iso", "Invoice.iso", typeISO},
		{"udfonly.iso", "Invoice_udf.iso", typeUDF},
		{"fat.img", "Invoice.img", ""},
		{"fat.vhd", "Invoice.vhd", typeVHD},
		{"fat.vhdx", "Invoice.vhdx", typeVHDX},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, err := os.ReadFile(filepath.Join(dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			res := walk(t, mkMessage("invoice", attachment(c.name, "application/octet-stream", img)), Options{})
			if top := file(t, res, c.name); c.typ != "" && top.Type != c.typ {
				t.Errorf("type %q, want %q", top.Type, c.typ)
			}
			var lnkFile *File
			names := []string{}
			for _, f := range res.Files {
				names = append(names, f.Path)
				if strings.HasSuffix(f.Path, "Invoice.pdf.lnk") {
					lnkFile = f
				}
			}
			if lnkFile == nil {
				t.Fatalf("no shortcut found inside; files: %v; findings %+v", names, res.AllFindings())
			}
			wantTag(t, lnkFile.Findings, reason.LNKInContainer)
			for _, f := range res.AllFindings() {
				if f.Tag == reason.UnsupportedContainer {
					t.Errorf("unsupported_container: %s", f.Detail)
				}
			}
		})
	}
}

// TestLZHAndARJ: LZH, still met in Japanese mail, and ARJ, both made with
// their own tools, open through 7z down to the program inside.
func TestLZHAndARJ(t *testing.T) {
	need(t, "7z", "jlha", "arj")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "invoice.exe"), minimalPE(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"a.lzh", []string{"jlha", "a", "a.lzh", "invoice.exe"}},
		{"b.arj", []string{"arj", "a", "b.arj", "invoice.exe"}},
	} {
		cmd := exec.Command(c.args[0], c.args[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		res := walk(t, mkMessage("x", attachment(c.name, "application/octet-stream", b)), Options{})
		f := file(t, res, c.name+"/invoice.exe")
		wantTag(t, f.Findings, reason.ExecAttachment)
		wantTag(t, f.Findings, reason.LNKInContainer)
	}
}
