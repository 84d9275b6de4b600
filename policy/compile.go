package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// A `when` expression is checked at load time by HCL itself (so every
// diagnostic has its position), then compiled here into Go closures for
// evaluation on live mail. HCL's generic evaluation allocates heavily and
// evaluates both sides of && and ||; with 200 rules it cost about 10 ms a
// message. The closures short-circuit && and ||, run anytrue/alltrue over
// a for-expression as an early-exit loop, and implement mailguard's
// functions natively. Node types not handled here fall back to HCL's own
// evaluation, so the language is the same; TestCompiledMatchesHCL keeps
// the two in agreement.

// evalEnv is the state of one evaluation: the message's variables (in
// ctx), its finding tags, and the for-expression variables in scope.
type evalEnv struct {
	ctx    *hcl.EvalContext
	tags   map[string]bool
	locals []local
}

type local struct {
	name string
	val  cty.Value
}

func (env *evalEnv) lookup(name string) (cty.Value, bool) {
	for i := len(env.locals) - 1; i >= 0; i-- {
		if env.locals[i].name == name {
			return env.locals[i].val, true
		}
	}
	v, ok := env.ctx.Variables[name]
	return v, ok
}

// hclContext is the context for a fallback: the locals become variables of
// a child context.
func (env *evalEnv) hclContext() *hcl.EvalContext {
	if len(env.locals) == 0 {
		return env.ctx
	}
	child := env.ctx.NewChild()
	child.Variables = map[string]cty.Value{}
	for _, l := range env.locals {
		child.Variables[l.name] = l.val
	}
	return child
}

type evalFn func(env *evalEnv) (cty.Value, error)

func constant(v cty.Value) evalFn { return func(*evalEnv) (cty.Value, error) { return v, nil } }

// fallback evaluates e with HCL.
func fallback(e hcl.Expression) evalFn {
	return func(env *evalEnv) (cty.Value, error) {
		v, diags := e.Value(env.hclContext())
		if diags.HasErrors() {
			return cty.NilVal, errors.New(strings.TrimSpace(FormatDiagnostics(diags)))
		}
		return v, nil
	}
}

// compileWhen compiles a rule condition.
func compileWhen(e hcl.Expression) evalFn {
	se, ok := e.(hclsyntax.Expression)
	if !ok {
		return fallback(e)
	}
	return compileExpr(se)
}

func compileExpr(e hclsyntax.Expression) evalFn {
	switch x := e.(type) {
	case *hclsyntax.LiteralValueExpr:
		return constant(x.Val)
	case *hclsyntax.TemplateExpr:
		if x.IsStringLiteral() {
			if v, diags := x.Value(nil); !diags.HasErrors() {
				return constant(v)
			}
		}
	case *hclsyntax.TemplateWrapExpr:
		return compileExpr(x.Wrapped)
	case *hclsyntax.ParenthesesExpr:
		return compileExpr(x.Expression)
	case *hclsyntax.ScopeTraversalExpr:
		return compileTraversal(x)
	case *hclsyntax.RelativeTraversalExpr:
		return compileRelative(x)
	case *hclsyntax.BinaryOpExpr:
		return compileBinary(x)
	case *hclsyntax.UnaryOpExpr:
		return compileUnary(x)
	case *hclsyntax.ConditionalExpr:
		return compileConditional(x)
	case *hclsyntax.FunctionCallExpr:
		return compileCall(x)
	case *hclsyntax.TupleConsExpr:
		return compileTuple(x)
	case *hclsyntax.ForExpr:
		if f := compileListFor(x); f != nil {
			return f
		}
	}
	return fallback(e)
}

func compileTraversal(x *hclsyntax.ScopeTraversalExpr) evalFn {
	root := x.Traversal.RootName()
	rest := x.Traversal[1:]
	return func(env *evalEnv) (cty.Value, error) {
		v, ok := env.lookup(root)
		if !ok {
			return fallback(x)(env)
		}
		return traverse(v, rest)
	}
}

func compileRelative(x *hclsyntax.RelativeTraversalExpr) evalFn {
	src := compileExpr(x.Source)
	return func(env *evalEnv) (cty.Value, error) {
		v, err := src(env)
		if err != nil {
			return cty.NilVal, err
		}
		return traverse(v, x.Traversal)
	}
}

// traverse applies attribute steps directly to objects, and anything else
// through HCL.
func traverse(v cty.Value, steps hcl.Traversal) (cty.Value, error) {
	for i, step := range steps {
		a, ok := step.(hcl.TraverseAttr)
		if !ok || v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() || !v.Type().HasAttribute(a.Name) {
			out, diags := steps[i:].TraverseRel(v)
			if diags.HasErrors() {
				return cty.NilVal, errors.New(strings.TrimSpace(FormatDiagnostics(diags)))
			}
			return out, nil
		}
		v = v.GetAttr(a.Name)
	}
	return v, nil
}

// asBool converts a value to a bool as HCL's logical operators do.
func asBool(v cty.Value) (bool, error) {
	// cty.Value.True walks the value for marks and compares through
	// Equals; a plain known bool is one of these two values.
	if v == cty.True {
		return true, nil
	}
	if v == cty.False {
		return false, nil
	}
	if v.IsNull() {
		return false, errors.New("a bool is required, got null")
	}
	if v.Type() != cty.Bool {
		c, err := convert.Convert(v, cty.Bool)
		if err != nil {
			return false, fmt.Errorf("a bool is required: %w", err)
		}
		v = c
	}
	if !v.IsKnown() {
		return false, errors.New("value is not known")
	}
	return v.True(), nil
}

func compileBinary(x *hclsyntax.BinaryOpExpr) evalFn {
	l, r := compileExpr(x.LHS), compileExpr(x.RHS)
	switch x.Op {
	case hclsyntax.OpLogicalAnd, hclsyntax.OpLogicalOr:
		and := x.Op == hclsyntax.OpLogicalAnd
		// As HCL: a side that decides the result (false for &&, true for
		// ||) decides it even when the other side fails; unlike HCL, the
		// right side is not evaluated when the left one decides.
		side := func(f evalFn, env *evalEnv) (bool, error) {
			v, err := f(env)
			if err != nil {
				return false, err
			}
			return asBool(v)
		}
		return func(env *evalEnv) (cty.Value, error) {
			lb, lerr := side(l, env)
			if lerr == nil && lb != and {
				return cty.BoolVal(lb), nil
			}
			rb, rerr := side(r, env)
			if rerr == nil && rb != and {
				return cty.BoolVal(rb), nil
			}
			if lerr != nil {
				return cty.NilVal, lerr
			}
			if rerr != nil {
				return cty.NilVal, rerr
			}
			return cty.BoolVal(and), nil
		}
	case hclsyntax.OpEqual, hclsyntax.OpNotEqual:
		eq := x.Op == hclsyntax.OpEqual
		return func(env *evalEnv) (cty.Value, error) {
			lv, err := l(env)
			if err != nil {
				return cty.NilVal, err
			}
			rv, err := r(env)
			if err != nil {
				return cty.NilVal, err
			}
			if same, ok := fastEqual(lv, rv); ok {
				return cty.BoolVal(same == eq), nil
			}
			same := lv.Equals(rv)
			if !same.IsKnown() {
				return fallback(x)(env)
			}
			return cty.BoolVal(same.True() == eq), nil
		}
	}
	if cmp := numericComparison(x.Op); cmp != nil {
		return func(env *evalEnv) (cty.Value, error) {
			lv, err := l(env)
			if err != nil {
				return cty.NilVal, err
			}
			rv, err := r(env)
			if err != nil {
				return cty.NilVal, err
			}
			if lv.Type() == cty.Number && rv.Type() == cty.Number && !lv.IsNull() && !rv.IsNull() && lv.IsKnown() && rv.IsKnown() {
				return cmp(lv, rv), nil
			}
			return fallback(x)(env)
		}
	}
	// Arithmetic: the operator's own implementation, with HCL's operand
	// conversion to its parameter types.
	params := x.Op.Impl.Params()
	return func(env *evalEnv) (cty.Value, error) {
		lv, err := l(env)
		if err != nil {
			return cty.NilVal, err
		}
		rv, err := r(env)
		if err != nil {
			return cty.NilVal, err
		}
		if lv, err = convert.Convert(lv, params[0].Type); err != nil {
			return cty.NilVal, fmt.Errorf("left operand: %w", err)
		}
		if rv, err = convert.Convert(rv, params[1].Type); err != nil {
			return cty.NilVal, fmt.Errorf("right operand: %w", err)
		}
		return x.Op.Impl.Call([]cty.Value{lv, rv})
	}
}

// fastEqual compares known, non-null strings and bools directly.
func fastEqual(a, b cty.Value) (equal, ok bool) {
	if a.Type() != b.Type() || a.IsNull() || b.IsNull() || !a.IsKnown() || !b.IsKnown() {
		return false, false
	}
	switch a.Type() {
	case cty.String:
		return a.AsString() == b.AsString(), true
	case cty.Bool:
		return a == b, true
	}
	return false, false
}

// numericComparison returns the native comparison for an ordering
// operator, nil for the others.
func numericComparison(op *hclsyntax.Operation) func(a, b cty.Value) cty.Value {
	switch op {
	case hclsyntax.OpLessThan:
		return cty.Value.LessThan
	case hclsyntax.OpLessThanOrEqual:
		return cty.Value.LessThanOrEqualTo
	case hclsyntax.OpGreaterThan:
		return cty.Value.GreaterThan
	case hclsyntax.OpGreaterThanOrEqual:
		return cty.Value.GreaterThanOrEqualTo
	}
	return nil
}

func compileUnary(x *hclsyntax.UnaryOpExpr) evalFn {
	v := compileExpr(x.Val)
	if x.Op == hclsyntax.OpLogicalNot {
		return func(env *evalEnv) (cty.Value, error) {
			val, err := v(env)
			if err != nil {
				return cty.NilVal, err
			}
			b, err := asBool(val)
			return cty.BoolVal(!b), err
		}
	}
	return fallback(x)
}

func compileConditional(x *hclsyntax.ConditionalExpr) evalFn {
	c, t, f := compileExpr(x.Condition), compileExpr(x.TrueResult), compileExpr(x.FalseResult)
	return func(env *evalEnv) (cty.Value, error) {
		cv, err := c(env)
		if err != nil {
			return cty.NilVal, err
		}
		b, err := asBool(cv)
		if err != nil {
			return cty.NilVal, err
		}
		if b {
			return t(env)
		}
		return f(env)
	}
}

func compileTuple(x *hclsyntax.TupleConsExpr) evalFn {
	elems := make([]evalFn, len(x.Exprs))
	for i, e := range x.Exprs {
		elems[i] = compileExpr(e)
	}
	return func(env *evalEnv) (cty.Value, error) {
		vals := make([]cty.Value, len(elems))
		for i, e := range elems {
			v, err := e(env)
			if err != nil {
				return cty.NilVal, err
			}
			vals[i] = v
		}
		return cty.TupleVal(vals), nil
	}
}

// forLoop is a compiled list for-expression: [for k, v in coll : val if cond].
type forLoop struct {
	coll, val, cond evalFn // cond may be nil
	keyVar, valVar  string
}

func compileForLoop(x *hclsyntax.ForExpr) *forLoop {
	if x.KeyExpr != nil || x.Group {
		return nil // object for-expressions: HCL
	}
	l := &forLoop{coll: compileExpr(x.CollExpr), val: compileExpr(x.ValExpr), keyVar: x.KeyVar, valVar: x.ValVar}
	if x.CondExpr != nil {
		l.cond = compileExpr(x.CondExpr)
	}
	return l
}

// each calls fn with the value of every element that passes the condition;
// fn returns false to stop.
func (l *forLoop) each(env *evalEnv, fn func(cty.Value) (bool, error)) error {
	coll, err := l.coll(env)
	if err != nil {
		return err
	}
	if coll.IsNull() || !coll.IsKnown() || !coll.CanIterateElements() {
		return errors.New("for expression: the collection must be a list, set, tuple, map or object")
	}
	depth := len(env.locals)
	defer func() { env.locals = env.locals[:depth] }()
	for it := coll.ElementIterator(); it.Next(); {
		k, v := it.Element()
		env.locals = env.locals[:depth]
		if l.keyVar != "" {
			env.locals = append(env.locals, local{l.keyVar, k})
		}
		env.locals = append(env.locals, local{l.valVar, v})
		if l.cond != nil {
			cv, err := l.cond(env)
			if err != nil {
				return err
			}
			ok, err := asBool(cv)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		out, err := l.val(env)
		if err != nil {
			return err
		}
		more, err := fn(out)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func compileListFor(x *hclsyntax.ForExpr) evalFn {
	l := compileForLoop(x)
	if l == nil {
		return nil
	}
	return func(env *evalEnv) (cty.Value, error) {
		var vals []cty.Value
		err := l.each(env, func(v cty.Value) (bool, error) {
			vals = append(vals, v)
			return true, nil
		})
		if err != nil {
			return cty.NilVal, err
		}
		if len(vals) == 0 {
			return cty.EmptyTupleVal, nil
		}
		return cty.TupleVal(vals), nil
	}
}

func compileCall(x *hclsyntax.FunctionCallExpr) evalFn {
	if x.ExpandFinal {
		return fallback(x)
	}
	args := make([]evalFn, len(x.Args))
	for i, a := range x.Args {
		args[i] = compileExpr(a)
	}
	switch x.Name {
	case "has":
		return callHas(args)
	case "anytrue", "alltrue":
		if f := compileFold(x); f != nil {
			return f
		}
	case "matches":
		if len(args) == 2 {
			return callMatches(x, args)
		}
	case "contains":
		if len(args) == 2 {
			return callContains(args)
		}
	case "cidr_match", "domain_match", "address_match", "glob":
		if len(args) >= 1 {
			return callStrings(x.Name, args)
		}
	}
	return callGeneric(x, args)
}

// evalArgs evaluates arguments in order.
func evalArgs(env *evalEnv, args []evalFn) ([]cty.Value, error) {
	vals := make([]cty.Value, len(args))
	for i, a := range args {
		v, err := a(env)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	return vals, nil
}

func callGeneric(x *hclsyntax.FunctionCallExpr, args []evalFn) evalFn {
	return func(env *evalEnv) (cty.Value, error) {
		f, ok := env.ctx.Functions[x.Name]
		if !ok {
			return fallback(x)(env)
		}
		vals, err := evalArgs(env, args)
		if err != nil {
			return cty.NilVal, err
		}
		v, err := f.Call(vals)
		if err != nil {
			return cty.NilVal, fmt.Errorf("%s(): %w", x.Name, err)
		}
		return v, nil
	}
}

// str converts an argument to a Go string as a function parameter of type
// string would.
func str(name string, v cty.Value) (string, error) {
	if v.IsNull() {
		return "", fmt.Errorf("%s: argument must not be null", name)
	}
	if v.Type() != cty.String {
		c, err := convert.Convert(v, cty.String)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		v = c
	}
	return v.AsString(), nil
}

func callHas(args []evalFn) evalFn {
	return func(env *evalEnv) (cty.Value, error) {
		for _, a := range args {
			v, err := a(env)
			if err != nil {
				return cty.NilVal, err
			}
			s, err := str("has", v)
			if err != nil {
				return cty.NilVal, err
			}
			if env.tags[s] {
				return cty.True, nil
			}
		}
		return cty.False, nil
	}
}

// compileFold compiles anytrue/alltrue; over a list for-expression it is a
// loop that stops at the first decisive element.
func compileFold(x *hclsyntax.FunctionCallExpr) evalFn {
	if len(x.Args) != 1 {
		return nil
	}
	any := x.Name == "anytrue"
	if fe, ok := x.Args[0].(*hclsyntax.ForExpr); ok {
		if l := compileForLoop(fe); l != nil {
			return func(env *evalEnv) (cty.Value, error) {
				result := !any
				err := l.each(env, func(v cty.Value) (bool, error) {
					if v.IsNull() {
						return true, nil
					}
					if v.Type() != cty.Bool {
						return false, fmt.Errorf("%s: element is %s, want bool", x.Name, v.Type().FriendlyName())
					}
					if b, _ := asBool(v); b == any {
						result = any
						return false, nil
					}
					return true, nil
				})
				return cty.BoolVal(result), err
			}
		}
	}
	return nil
}

func callMatches(x *hclsyntax.FunctionCallExpr, args []evalFn) evalFn {
	var re *regexp.Regexp
	if lit, ok := x.Args[0].(*hclsyntax.TemplateExpr); ok && lit.IsStringLiteral() {
		if v, diags := lit.Value(nil); !diags.HasErrors() {
			re, _ = compiledRegex(v.AsString()) // load-time checks reported a bad one
		}
	}
	return func(env *evalEnv) (cty.Value, error) {
		vals, err := evalArgs(env, args)
		if err != nil {
			return cty.NilVal, err
		}
		r := re
		if r == nil {
			p, err := str("matches", vals[0])
			if err != nil {
				return cty.NilVal, err
			}
			if r, err = compiledRegex(p); err != nil {
				return cty.NilVal, fmt.Errorf("matches(): bad regular expression: %w", err)
			}
		}
		s, err := str("matches", vals[1])
		if err != nil {
			return cty.NilVal, err
		}
		return cty.BoolVal(r.MatchString(s)), nil
	}
}

func callContains(args []evalFn) evalFn {
	return func(env *evalEnv) (cty.Value, error) {
		vals, err := evalArgs(env, args)
		if err != nil {
			return cty.NilVal, err
		}
		list, want := vals[0], vals[1]
		if list.IsNull() || !list.IsKnown() || !list.CanIterateElements() {
			return cty.NilVal, errors.New("contains(): argument must be a list, tuple, or set")
		}
		for it := list.ElementIterator(); it.Next(); {
			_, v := it.Element()
			if same, ok := fastEqual(v, want); ok {
				if same {
					return cty.True, nil
				}
				continue
			}
			if eq := v.Equals(want); eq.IsKnown() && eq.True() {
				return cty.True, nil
			}
		}
		return cty.False, nil
	}
}

// callStrings runs the string-matching functions natively.
func callStrings(name string, args []evalFn) evalFn {
	return func(env *evalEnv) (cty.Value, error) {
		vals, err := evalArgs(env, args)
		if err != nil {
			return cty.NilVal, err
		}
		ss := make([]string, len(vals))
		for i, v := range vals {
			if ss[i], err = str(name, v); err != nil {
				return cty.NilVal, err
			}
		}
		switch name {
		case "glob":
			if len(ss) != 2 {
				return cty.NilVal, errors.New("glob(): want a pattern and a string")
			}
			ok, err := matchGlob(ss[0], ss[1])
			return cty.BoolVal(ok), err
		case "cidr_match":
			ip, err := netip.ParseAddr(ss[0])
			if err != nil {
				return cty.False, nil // as the HCL function: no address matches nothing
			}
			for _, c := range ss[1:] {
				p, err := parsePrefix(c)
				if err != nil {
					return cty.NilVal, fmt.Errorf("cidr_match(): bad network %q", c)
				}
				if p.Contains(ip.Unmap()) {
					return cty.True, nil
				}
			}
			return cty.False, nil
		case "domain_match":
			for _, p := range ss[1:] {
				if DomainMatch(ss[0], p) {
					return cty.True, nil
				}
			}
			return cty.False, nil
		default: // address_match
			for _, p := range ss[1:] {
				if MatchAddress(p, ss[0]) {
					return cty.True, nil
				}
			}
			return cty.False, nil
		}
	}
}
