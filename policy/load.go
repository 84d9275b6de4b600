// Package policy owns policy.hcl: its schema, loading with file:line:col
// diagnostics (all of them at once), the built-in rules, and the one pure
// function that turns a message's facts into a decision. It does no I/O
// beyond reading the policy file itself, and knows nothing of SMTP, MIME
// or the store.
package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/mailguard/mailguard/reason"
)

// Policy is a loaded and validated policy file. It is immutable once
// loaded; a reload builds a new one and swaps it in whole.
type Policy struct {
	Config
	// File is the path the policy was loaded from; Dir resolves relative
	// paths in it (store, maildir, rules, certificates).
	File string
	Dir  string

	rules   []*rule // the file's rules, then the built-in ones
	weights map[reason.Tag]float64
	lists   compiledLists
}

// Load reads, parses and validates the policy file at path. It returns every
// problem found, sorted by position; the policy is nil if any is an error.
func Load(path string) (*Policy, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "cannot read policy",
			Detail: err.Error(), Subject: &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos}}}
	}
	return Parse(src, path)
}

// Parse is Load on bytes already read; filename is used in diagnostics and
// to resolve relative paths.
func Parse(src []byte, filename string) (*Policy, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, sortDiags(diags)
	}
	pol := &Policy{File: filename, Dir: filepath.Dir(filename)}
	diags = append(diags, gohcl.DecodeBody(f.Body, configContext(), &pol.Config)...)
	if diags.HasErrors() {
		return nil, sortDiags(diags)
	}
	v := &validator{}
	pol.validate(v)
	diags = append(diags, v.diags...)
	diags = append(diags, pol.compileRules()...)
	diags = sortDiags(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return pol, diags
}

// configContext is the evaluation context of the configuration attributes
// (not of `when`): env("NAME") reads secrets from the environment.
func configContext() *hcl.EvalContext {
	return &hcl.EvalContext{Functions: map[string]function.Function{
		"env": function.New(&function.Spec{
			Params: []function.Parameter{{Name: "name", Type: cty.String}},
			Type:   function.StaticReturnType(cty.String),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				name := args[0].AsString()
				v, ok := os.LookupEnv(name)
				if !ok {
					return cty.NilVal, fmt.Errorf("environment variable %s is not set", name)
				}
				return cty.StringVal(v), nil
			},
		}),
	}}
}

// SortDiagnostics orders diagnostics by file, line and column (those
// without a position last), as `mailguard check` prints them.
func SortDiagnostics(d hcl.Diagnostics) hcl.Diagnostics { return sortDiags(d) }

func sortDiags(d hcl.Diagnostics) hcl.Diagnostics {
	sort.SliceStable(d, func(i, j int) bool {
		a, b := d[i].Subject, d[j].Subject
		switch {
		case a == nil || b == nil:
			return a != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		case a.Start.Line != b.Start.Line:
			return a.Start.Line < b.Start.Line
		default:
			return a.Start.Column < b.Start.Column
		}
	})
	return d
}

// Path resolves a path from the policy relative to the policy's directory.
func (p *Policy) Path(s string) string {
	if s == "" || filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(p.Dir, s)
}

// FormatDiagnostics renders diagnostics as `file:line:col: summary: detail`,
// one per line, the form editors and `mailguard check` use.
func FormatDiagnostics(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		if d.Severity == hcl.DiagWarning {
			b.WriteString("warning: ")
		}
		b.WriteString(d.Summary)
		if d.Detail != "" {
			b.WriteString(": ")
			b.WriteString(d.Detail)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
