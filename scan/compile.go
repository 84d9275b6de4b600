package scan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	yara "github.com/hillu/go-yara/v4"
)

// RuleError is a compile error or warning located in a rule file. File is
// the path of the file that holds the problem (an included file when the
// problem is there), Line is 1-based (0 when YARA gives no line). YARA
// reports no column.
type RuleError struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
	Warning bool   `json:"warning,omitempty"`
}

// Error formats the problem as "file:line: message" (the form editors and
// `mailguard check` understand).
func (e RuleError) Error() string {
	kind := "error"
	if e.Warning {
		kind = "warning"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, kind, e.Message)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, kind, e.Message)
}

// externalVars are defined for every compiled rule set, so rules may use
// them; the scanner sets their values per scan.
var externalVars = []string{"filename", "filepath", "extension", "filetype"}

// Rules is a compiled rule set. It is immutable; hand it to NewEngine or
// Engine.Swap, which take ownership and free it when no scan uses it any
// more. A Rules that is never handed to an engine should be Closed.
type Rules struct {
	y     *yara.Rules
	files []string
	info  map[ruleKey]ruleInfo // static facts per rule, read by the scan callback
}

type ruleKey struct{ ns, name string }

type ruleInfo struct {
	tags []string
	meta map[string]any
}

// Files returns the rule files compiled into the set (not the included
// ones), in compile order.
func (r *Rules) Files() []string { return append([]string(nil), r.files...) }

// Count returns the number of rules in the set, private rules included.
func (r *Rules) Count() int { return len(r.info) }

// Close frees the compiled rules. Only for a Rules not given to an engine.
func (r *Rules) Close() {
	if r != nil && r.y != nil {
		r.y.Destroy()
		r.y = nil
	}
}

// Compile expands globs (relative ones against baseDir), compiles every
// matching file in its own namespace (the file's base name without
// extension) and returns the rule set.
//
// Problems in the rules themselves (syntax errors, undefined identifiers,
// invalid mailguard meta values) come back as RuleErrors with file and
// line, and then the returned *Rules is nil; every file is still compiled
// so that all files' errors are reported at once. Warnings come back as
// RuleErrors with Warning set, alongside a usable *Rules. The error result
// is for problems outside the rules: a bad glob, a glob that matches no
// file (ErrNoRuleFiles), an unreadable file.
//
// include statements are resolved relative to the including file.
func Compile(globs []string, baseDir string) (*Rules, []RuleError, error) {
	files, err := expandGlobs(globs, baseDir)
	if err != nil {
		return nil, nil, err
	}
	c := &compilation{}
	defer c.destroy()
	for _, f := range files {
		if err := c.addFile(f, namespaceFor(f, files, baseDir)); err != nil {
			return nil, nil, err
		}
	}
	if c.failed {
		return nil, c.problems, nil
	}
	y, err := c.compiler.GetRules()
	if err != nil {
		return nil, c.problems, fmt.Errorf("scan: get compiled rules: %w", err)
	}
	r := &Rules{y: y, files: files, info: map[ruleKey]ruleInfo{}}
	bad := r.index(c.ruleFiles)
	c.problems = append(c.problems, bad...)
	sortProblems(c.problems)
	for _, p := range bad {
		if !p.Warning {
			r.Close()
			return nil, c.problems, nil
		}
	}
	return r, c.problems, nil
}

// expandGlobs returns the regular files the globs match, deduplicated, in
// glob order and lexical order within a glob.
func expandGlobs(globs []string, baseDir string) ([]string, error) {
	if len(globs) == 0 {
		return nil, fmt.Errorf("%w: no rule globs configured", ErrNoRuleFiles)
	}
	var files []string
	var errs []error
	seen := map[string]bool{}
	for _, g := range globs {
		pattern := g
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(baseDir, pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("scan: rule glob %q: %w", g, err)
		}
		n := 0
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("scan: rule file: %w", err)
			}
			if !st.Mode().IsRegular() {
				continue
			}
			n++
			if clean := filepath.Clean(m); !seen[clean] {
				seen[clean] = true
				files = append(files, clean)
			}
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("%w: %q", ErrNoRuleFiles, g))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return files, nil
}

// namespaceFor names a file's namespace after its base name without
// extension; when two files share a base name, the later ones use their
// path relative to baseDir instead.
func namespaceFor(f string, files []string, baseDir string) string {
	base := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
	for _, o := range files {
		if o == f {
			break
		}
		if strings.TrimSuffix(filepath.Base(o), filepath.Ext(o)) == base {
			rel, err := filepath.Rel(baseDir, f)
			if err != nil {
				rel = f
			}
			return strings.TrimSuffix(filepath.ToSlash(rel), filepath.Ext(f))
		}
	}
	return base
}

// compilation compiles files one by one. A YARA compiler is unusable after
// a file fails, so a failure swaps in a fresh compiler: the remaining files
// are still checked (each file is its own namespace, so they do not depend
// on each other) but no rules are produced.
type compilation struct {
	compiler  *yara.Compiler
	failed    bool
	problems  []RuleError
	ruleFiles map[string]string // namespace → top-level file
}

func (c *compilation) destroy() {
	if c.compiler != nil {
		c.compiler.Destroy()
		c.compiler = nil
	}
}

func (c *compilation) fresh() error {
	c.destroy()
	y, err := yara.NewCompiler()
	if err != nil {
		return fmt.Errorf("scan: new yara compiler: %w", err)
	}
	for _, v := range externalVars {
		if err := y.DefineVariable(v, ""); err != nil {
			y.Destroy()
			return fmt.Errorf("scan: define %s: %w", v, err)
		}
	}
	c.compiler = y
	return nil
}

func (c *compilation) addFile(path, ns string) error {
	if c.compiler == nil {
		if err := c.fresh(); err != nil {
			return err
		}
	}
	if c.ruleFiles == nil {
		c.ruleFiles = map[string]string{}
	}
	c.ruleFiles[ns] = path
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("scan: rule file: %w", err)
	}
	defer f.Close()
	nErr, nWarn := len(c.compiler.Errors), len(c.compiler.Warnings)
	addErr := c.compiler.AddFile(f, ns)
	for _, m := range c.compiler.Errors[nErr:] {
		c.problems = append(c.problems, ruleError(m, path, false))
	}
	for _, m := range c.compiler.Warnings[nWarn:] {
		c.problems = append(c.problems, ruleError(m, path, true))
	}
	if addErr != nil {
		if len(c.compiler.Errors) == nErr { // failure without a callback message
			c.problems = append(c.problems, RuleError{File: path, Message: addErr.Error()})
		}
		c.failed = true
		return c.fresh()
	}
	return nil
}

func ruleError(m yara.CompilerMessage, top string, warning bool) RuleError {
	file := m.Filename
	if file == "" {
		file = top
	}
	return RuleError{File: file, Line: m.Line, Message: m.Text, Warning: warning}
}

func sortProblems(p []RuleError) {
	sort.SliceStable(p, func(i, j int) bool {
		if p[i].File != p[j].File {
			return p[i].File < p[j].File
		}
		return p[i].Line < p[j].Line
	})
}

// index records each rule's tags and meta for the scan callback and
// checks the mailguard meta values, returning problems located at the
// rule's declaration.
func (r *Rules) index(ruleFiles map[string]string) []RuleError {
	var problems []RuleError
	loc := &locator{}
	for _, rule := range r.y.GetRules() {
		key := ruleKey{rule.Namespace(), rule.Identifier()}
		info := ruleInfo{tags: rule.Tags(), meta: map[string]any{}}
		for _, m := range rule.Metas() {
			if _, dup := info.meta[m.Identifier]; !dup { // the first of repeated keys wins
				info.meta[m.Identifier] = m.Value
			}
		}
		r.info[key] = info
		for _, msg := range checkMeta(info.meta) {
			file, line := loc.find(ruleFiles[key.ns], key.name)
			msg.File, msg.Line = file, line
			msg.Message = fmt.Sprintf("rule %q: %s", key.name, msg.Message)
			problems = append(problems, msg)
		}
	}
	return problems
}

// checkMeta validates the meta keys mailguard interprets.
func checkMeta(meta map[string]any) []RuleError {
	var out []RuleError
	if v, ok := meta["severity"]; ok {
		s, isString := v.(string)
		if _, valid := parseSeverity(s); !isString || !valid {
			out = append(out, RuleError{Warning: true, Message: fmt.Sprintf(
				"meta severity = %v is not one of low, medium, high, critical; using %s", v, DefaultSeverity)})
		}
	}
	if v, ok := meta["action"]; ok {
		if s, isString := v.(string); !isString || !validAction(s) {
			out = append(out, RuleError{Message: fmt.Sprintf(
				"meta action = %v is not one of %s", v, strings.Join(actions[:], ", "))})
		}
	}
	return out
}

// locator finds the line of a rule declaration in a rule file or the
// files it includes. YARA does not expose rule positions after
// compilation, so this reads the sources again (only when a problem is
// reported).
type locator struct {
	src map[string]string
}

var includeRE = regexp.MustCompile(`(?m)^\s*include\s+"([^"]+)"`)

func (l *locator) find(top, rule string) (string, int) {
	decl := regexp.MustCompile(`(?m)^[ \t]*(?:(?:private|global)\s+)*(rule)\s+` + regexp.QuoteMeta(rule) + `\b`)
	seen := map[string]bool{}
	var walk func(file string, depth int) (string, int)
	walk = func(file string, depth int) (string, int) {
		if depth > 16 || seen[file] {
			return "", 0
		}
		seen[file] = true
		text := l.read(file)
		if loc := decl.FindStringSubmatchIndex(text); loc != nil {
			return file, 1 + strings.Count(text[:loc[2]], "\n")
		}
		for _, m := range includeRE.FindAllStringSubmatch(text, -1) {
			inc := m[1]
			if !filepath.IsAbs(inc) {
				inc = filepath.Join(filepath.Dir(file), inc)
			}
			if f, line := walk(filepath.Clean(inc), depth+1); f != "" {
				return f, line
			}
		}
		return "", 0
	}
	if f, line := walk(top, 0); f != "" {
		return f, line
	}
	return top, 0
}

func (l *locator) read(file string) string {
	if l.src == nil {
		l.src = map[string]string{}
	}
	if s, ok := l.src[file]; ok {
		return s
	}
	b, err := os.ReadFile(file)
	if err != nil {
		b = nil
	}
	l.src[file] = string(b)
	return l.src[file]
}
