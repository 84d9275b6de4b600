package scan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeFiles creates files (path → content) under a new temp dir and
// returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mustCompile compiles globs under dir and fails on any error (warnings
// are allowed).
func mustCompile(t *testing.T, dir string, globs ...string) *Rules {
	t.Helper()
	r, problems, err := Compile(globs, dir)
	if err != nil {
		t.Fatalf("Compile(%v): %v", globs, err)
	}
	for _, p := range problems {
		if !p.Warning {
			t.Fatalf("Compile(%v): %v", globs, p)
		}
	}
	if r == nil {
		t.Fatalf("Compile(%v) returned no rules", globs)
	}
	return r
}

const goodRule = `rule good { strings: $a = "hello world" condition: $a }
`

func TestCompileSyntaxErrorFileAndLine(t *testing.T) {
	bad := strings.Join([]string{
		"// line 1",
		"rule fine {",
		"  condition: true",
		"}",
		"",
		"rule broken {",
		"  strings: $a = \"xyzzy\" condition: $a and and", // line 7
		"}",
	}, "\n")
	dir := writeFiles(t, map[string]string{"a.yar": goodRule, "b.yar": bad})
	r, problems, err := Compile([]string{"*.yar"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if r != nil {
		t.Errorf("Compile returned rules despite a syntax error")
	}
	if len(problems) != 1 {
		t.Fatalf("problems = %v, want one", problems)
	}
	p := problems[0]
	if p.File != filepath.Join(dir, "b.yar") || p.Line != 7 || p.Warning || p.Message == "" {
		t.Errorf("problem = %+v, want error at %s line 7", p, filepath.Join(dir, "b.yar"))
	}
	if got, want := p.Error(), filepath.Join(dir, "b.yar")+":7: error: "; !strings.HasPrefix(got, want) {
		t.Errorf("Error() = %q, want prefix %q", got, want)
	}
}

func TestCompileReportsEveryFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"1.yar": "rule one { condition: undefined_thing }\n",
		"2.yar": goodRule,
		"3.yar": "\n\nrule three { strings: $a = \"xyzzy\" condition: $b }\n",
	})
	_, problems, err := Compile([]string{"*.yar"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, filepath.Base(p.File)+":"+strconv.Itoa(p.Line))
	}
	if want := []string{"1.yar:1", "3.yar:3"}; !cmp.Equal(got, want) {
		t.Errorf("problem locations = %v, want %v (%v)", got, want, problems)
	}
}

func TestCompileIncludesRelativeToIncludingFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"rules/main.yar":          "include \"lib/common.yar\"\nrule main_rule { condition: shared_rule }\n",
		"rules/lib/common.yar":    "include \"deep/leaf.yar\"\nrule shared_rule { condition: leaf }\n",
		"rules/lib/deep/leaf.yar": "rule leaf { strings: $a = \"leafmarker\" condition: $a }\n",
	})
	// Compile from another working directory's point of view: only the
	// including file's location may matter.
	r := mustCompile(t, dir, "rules/main.yar")
	e := NewEngine(r, 0)
	defer e.Close()
	m, err := e.ScanBytes(context.Background(), []byte("xx leafmarker xx"), Vars{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ruleNames(m); !cmp.Equal(got, []string{"leaf", "main_rule", "shared_rule"}) {
		t.Errorf("matches = %v", got)
	}
}

func TestCompileErrorInIncludedFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.yar":      "include \"inc/bad.yar\"\nrule m { condition: true }\n",
		"inc/bad.yar":   "rule ok { condition: true }\n\nrule bad {\n  condition: nope\n}\n",
		"inc/other.yar": goodRule,
	})
	_, problems, err := Compile([]string{"main.yar"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) == 0 {
		t.Fatal("no problems reported")
	}
	if p := problems[0]; p.File != filepath.Join(dir, "inc/bad.yar") || p.Line != 4 {
		t.Errorf("problem = %+v, want %s line 4", p, filepath.Join(dir, "inc/bad.yar"))
	}
}

func TestCompileGlobMatchingNothing(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yar": goodRule})
	for _, globs := range [][]string{
		{"rules/*.yar"},
		{"*.yar", "missing/*.yara"},
		{"nothere.yar"},
		nil,
	} {
		r, _, err := Compile(globs, dir)
		if !errors.Is(err, ErrNoRuleFiles) || r != nil {
			t.Errorf("Compile(%q) = %v, %v; want ErrNoRuleFiles", globs, r, err)
		}
	}
	if _, _, err := Compile([]string{"[.yar"}, dir); err == nil {
		t.Errorf("Compile with a malformed glob succeeded")
	}
}

func TestCompileDirectoriesIgnoredAndDuplicatesOnce(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yar": goodRule, "d.yar/x": ""})
	r := mustCompile(t, dir, "*.yar", "a.yar", filepath.Join(dir, "a.yar"))
	defer r.Close()
	if got := r.Files(); !cmp.Equal(got, []string{filepath.Join(dir, "a.yar")}) {
		t.Errorf("Files() = %v", got)
	}
}

func TestCompileWarningKeepsRules(t *testing.T) {
	dir := writeFiles(t, map[string]string{"w.yar": "rule slow {\n strings: $a = { 00 ?? }\n condition: $a\n}\n"})
	r, problems, err := Compile([]string{"w.yar"}, dir)
	if err != nil || r == nil {
		t.Fatalf("Compile = %v, %v", r, err)
	}
	defer r.Close()
	if len(problems) != 1 || !problems[0].Warning || problems[0].Line != 2 {
		t.Errorf("problems = %+v, want one warning on line 2", problems)
	}
}

func TestCompileMetaChecks(t *testing.T) {
	src := strings.Join([]string{
		"rule a { meta: severity = \"critical\" action = \"quarantine\" condition: true }",
		"",
		"private rule b {",
		"  meta: action = \"quarantien\"",
		"  condition: true",
		"}",
		"rule c { meta: severity = \"urgent\" condition: true }",
		"rule d { meta: severity = 5 condition: true }",
	}, "\n")
	dir := writeFiles(t, map[string]string{"m.yar": src})
	r, problems, err := Compile([]string{"m.yar"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if r != nil {
		t.Errorf("an invalid action must fail the compile")
	}
	type loc struct {
		Line    int
		Warning bool
	}
	var got []loc
	for _, p := range problems {
		got = append(got, loc{p.Line, p.Warning})
		if p.File != filepath.Join(dir, "m.yar") {
			t.Errorf("problem file = %q", p.File)
		}
	}
	want := []loc{{3, false}, {7, true}, {8, true}}
	if !cmp.Equal(got, want) {
		t.Errorf("problems = %v (%v), want %v", got, problems, want)
	}
}

func TestCompileSameRuleNameInTwoFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"one.yar":     "rule dup { condition: true }\n",
		"two.yar":     "rule dup { condition: true }\n",
		"sub/one.yar": "rule dup { condition: true }\n",
	})
	r := mustCompile(t, dir, "*.yar", "sub/*.yar")
	e := NewEngine(r, 0)
	defer e.Close()
	m, err := e.ScanBytes(context.Background(), nil, Vars{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range m {
		got = append(got, x.Name())
	}
	if want := []string{"one:dup", "two:dup", "sub/one:dup"}; !cmp.Equal(got, want) {
		t.Errorf("matches = %v, want %v", got, want)
	}
}

func ruleNames(ms []Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Rule)
	}
	slices.Sort(out)
	return out
}
