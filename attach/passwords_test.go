package attach

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// The vectors of targeted-mail-signals.md §b.5.
func TestPasswordCandidates(t *testing.T) {
	cases := []struct {
		in        string
		want      string // expected first candidate, "" for none
		announced bool
	}{
		{"パスワード：Abc12345", "Abc12345", false},
		{"解凍パスワードは「x8Kq#2pL」です。", "x8Kq#2pL", false},
		{"【パスワード】\nQw3rty99", "Qw3rty99", false},
		{"PW: s3cr3t!", "s3cr3t!", false},
		{"pw:abcd1234", "abcd1234", false},
		{"Password: hunter22", "hunter22", false},
		{"パスワード → 20240401", "20240401", false},
		{"ﾊﾟｽﾜｰﾄﾞ：ＡＢＣ１２３", "ABC123", false},
		{"添付ファイルのパスワード：７７３１", "7731", false},
		{"暗号化ファイルのパスワード＝Zx9-Lm2!", "Zx9-Lm2!", true},
		{"【PW】 pA55w0rd", "pA55w0rd", false},
		{"パスワード:　12345678　です", "12345678", false},
		{"パスワード通知: 9f3Kd2Lq", "9f3Kd2Lq", false},
		{"パスワードは下記の通りです。\n\n　ab12cd34\n", "ab12cd34", false},
		{"パスワードは下記の通りです。\r\n\r\n　ab12cd34\r\n", "ab12cd34", false},
		{"The password for the zip file is Tr0ub4dor", "Tr0ub4dor", false},
		{"パスワードは別途お送りします。", "", true},
		{"※パスワードは追ってご連絡いたします。", "", true},
		{"パスワードを別メールにてお送りいたします", "", true},
		{"解凍用パスワードは後ほどお送りします", "", true},
		{"Password will be sent in a separate email.", "", true},
		{"パスワード付きZIPファイルを添付しております。", "", true},
		{"パスワード：********", "", false},
		{"パスワードの有効期限が切れます", "", false},
		{"パスワードポリシーを変更しました", "", false},
		{"Reset your password: click here", "", false},
		{"password: https://evil.example/x", "", false},
	}
	for _, c := range cases {
		got, ann := PasswordCandidates(c.in)
		first := ""
		if len(got) > 0 {
			first = got[0]
		}
		if first != c.want {
			t.Errorf("PasswordCandidates(%q) = %q, want first %q", c.in, got, c.want)
		}
		if ann != c.announced {
			t.Errorf("PasswordCandidates(%q) announced = %v, want %v", c.in, ann, c.announced)
		}
	}
}

func TestPasswordVariants(t *testing.T) {
	got, _ := PasswordCandidates("パスワード：Abc12345。")
	if !slices.Contains(got, "Abc12345") {
		t.Errorf("trailing 。 not trimmed: %q", got)
	}
	got, _ = PasswordCandidates(`The password is "Secr3t99".`)
	if !slices.Contains(got, "Secr3t99") {
		t.Errorf("quotes not trimmed: %q", got)
	}
}

func TestSubjectAnnouncesPassword(t *testing.T) {
	for _, s := range []string{"【パスワード通知】Re: 見積書送付の件", "Re: 見積書送付の件（パスワード）", "[パスワード] 見積書.zip",
		"【PW】見積書", "パスワードのお知らせ", "パスワード送付", "Password for 見積書.zip", "【解凍パスワード】2024年度資料"} {
		if !SubjectAnnouncesPassword(s) {
			t.Errorf("SubjectAnnouncesPassword(%q) = false", s)
		}
	}
	for _, s := range []string{"RE: 見積書送付の件", "FW: 請求書"} {
		if SubjectAnnouncesPassword(s) {
			t.Errorf("SubjectAnnouncesPassword(%q) = true", s)
		}
	}
}

func TestWalkCollectsPasswords(t *testing.T) {
	raw := mkMessage("見積書", textPart("お世話になっております。\r\n添付ファイルのパスワード：Kx7-pQ2z\r\n"),
		part{header: "Content-Type: text/html; charset=utf-8\r\n", body: "<p>The password is <b>Html4Pass</b></p>"})
	res := walk(t, raw, Options{})
	if !slices.Contains(res.Passwords, "Kx7-pQ2z") || !slices.Contains(res.Passwords, "Html4Pass") {
		t.Errorf("passwords %q", res.Passwords)
	}
	if res.Text == "" {
		t.Error("empty Text")
	}
	for _, f := range res.AllFindings() {
		if contains(f.Detail, "Kx7-pQ2z") {
			t.Errorf("password leaked in finding %+v", f)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func FuzzPasswordCandidates(f *testing.F) {
	for _, s := range []string{"パスワード：Abc12345", "【パスワード】\nQw3rty99", "The password is x", "ﾊﾟｽﾜｰﾄﾞ：ＡＢＣ"} {
		f.Add(s)
	}
	f.Add("PASSWORD is Secr3t!\r\nnext\r\n")
	f.Add("İ PaSs\u017f: abcd1234")
	f.Fuzz(func(t *testing.T, s string) {
		got, ann := PasswordCandidates(s)
		for _, c := range got {
			if len(c) < 4 || len(c) > 64 {
				t.Fatalf("candidate of length %d", len(c))
			}
		}
		want, wantAnn := passwordCandidatesRef(s)
		if !slices.Equal(got, want) || ann != wantAnn {
			t.Fatalf("PasswordCandidates(%q) = %q %v, the reference gives %q %v", s, got, ann, want, wantAnn)
		}
	})
}

// passwordCandidatesRef is the former PasswordCandidates, which lowered
// and copied the whole text: the windowed one must find the same.
func passwordCandidatesRef(text string) (cands []string, announced bool) {
	t := norm.NFKC.String(text)
	t = strings.ReplaceAll(t, "\r\n", "\n")
	lower := strings.ToLower(t)
	has := func(l string) bool {
		for _, k := range []string{"pass", "pw", "p/w", "パスワード", "暗証番号", "解凍キー", "暗号化", "encrypted"} {
			if strings.Contains(l, k) {
				return true
			}
		}
		return false
	}
	if !has(lower) {
		return nil, false
	}
	lines, lowerLines := strings.SplitAfter(t, "\n"), strings.SplitAfter(lower, "\n")
	var wins []string
	start, end := -1, -1
	for i, l := range lowerLines {
		if !has(l) {
			continue
		}
		if start >= 0 && i > end {
			wins = append(wins, strings.Join(lines[start:end+1], ""))
			start = -1
		}
		if start < 0 {
			start = i
		}
		end = min(i+4, len(lines)-1)
	}
	if start >= 0 {
		wins = append(wins, strings.Join(lines[start:end+1], ""))
	}
	for _, win := range wins {
		c, a := passwordCandidates(win)
		announced = announced || a
		for _, v := range c {
			if !slices.Contains(cands, v) {
				cands = append(cands, v)
			}
		}
	}
	return cands, announced
}

func BenchmarkPasswordCandidates(b *testing.B) {
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
	plain := strings.Repeat(line, 100<<10/len(line))
	for _, c := range []struct{ name, text string }{
		{"100KB-none", plain},
		{"100KB-one", plain[:len(plain)/2] + "Password: Xy7zQ9wK\r\n" + plain[len(plain)/2:]},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			for b.Loop() {
				PasswordCandidates(c.text)
			}
		})
	}
}

func BenchmarkPasswordCandidatesRef(b *testing.B) {
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
	plain := strings.Repeat(line, 100<<10/len(line))
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		passwordCandidatesRef(plain)
	}
}
