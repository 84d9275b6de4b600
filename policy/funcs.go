package policy

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Functions available in `when` expressions. docs/policy.md lists them.
//
//	has("tag", ...)            any of the tags was found
//	anytrue(list), alltrue(list)
//	contains(list, value), length(x), lower(s), upper(s)
//	glob("*.exe", s)           shell-style match, case-insensitive
//	matches("regex", s)        RE2 match (compiled once)
//	cidr_match(ip, "10.0.0.0/8", ...)
//	domain_match(domain, "example.com", ...)  the domain or a subdomain
//	address_match(addr, "user@d", "@d", "d", ...)  as lists use them
func whenFunctions(tags map[string]bool) map[string]function.Function {
	fs := make(map[string]function.Function, len(staticFunctions)+1)
	for k, v := range staticFunctions {
		fs[k] = v
	}
	fs["has"] = hasFunc(tags)
	return fs
}

var staticFunctions = map[string]function.Function{
	"anytrue":       boolFold(true),
	"alltrue":       boolFold(false),
	"contains":      stdlib.ContainsFunc,
	"length":        stdlib.LengthFunc,
	"lower":         stdlib.LowerFunc,
	"upper":         stdlib.UpperFunc,
	"glob":          globFunc,
	"matches":       matchesFunc,
	"cidr_match":    cidrFunc,
	"domain_match":  stringVariadic(DomainMatch),
	"address_match": stringVariadic(func(addr, p string) bool { return MatchAddress(p, addr) }),
}

func hasFunc(tags map[string]bool) function.Function {
	return function.New(&function.Spec{
		VarParam: &function.Parameter{Name: "tags", Type: cty.String},
		Type:     function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			for _, a := range args {
				if !a.IsNull() && tags[a.AsString()] {
					return cty.True, nil
				}
			}
			return cty.False, nil
		},
	})
}

// boolFold is anytrue (any=true) or alltrue over a list or tuple of bools.
func boolFold(any bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.DynamicPseudoType}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			l := args[0]
			if l.IsNull() || !l.CanIterateElements() {
				return cty.NilVal, fmt.Errorf("want a list of bools")
			}
			for it := l.ElementIterator(); it.Next(); {
				_, v := it.Element()
				if v.IsNull() {
					continue
				}
				if v.Type() != cty.Bool {
					return cty.NilVal, fmt.Errorf("element is %s, want bool", v.Type().FriendlyName())
				}
				if v.True() == any {
					return cty.BoolVal(any), nil
				}
			}
			return cty.BoolVal(!any), nil
		},
	})
}

var globFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "pattern", Type: cty.String}, {Name: "s", Type: cty.String}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		ok, err := matchGlob(args[0].AsString(), args[1].AsString())
		if err != nil {
			return cty.NilVal, err
		}
		return cty.BoolVal(ok), nil
	},
})

// matchGlob is a case-insensitive shell-style match.
func matchGlob(pattern, s string) (bool, error) {
	ok, err := path.Match(strings.ToLower(pattern), strings.ToLower(s))
	if err != nil {
		return false, fmt.Errorf("bad glob pattern %q: %w", pattern, err)
	}
	return ok, nil
}

var regexCache sync.Map // pattern → *regexp.Regexp

func compiledRegex(p string) (*regexp.Regexp, error) {
	if re, ok := regexCache.Load(p); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	regexCache.Store(p, re)
	return re, nil
}

var matchesFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "regex", Type: cty.String}, {Name: "s", Type: cty.String}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		re, err := compiledRegex(args[0].AsString())
		if err != nil {
			return cty.NilVal, fmt.Errorf("bad regular expression: %w", err)
		}
		return cty.BoolVal(re.MatchString(args[1].AsString())), nil
	},
})

var cidrFunc = function.New(&function.Spec{
	Params:   []function.Parameter{{Name: "ip", Type: cty.String}},
	VarParam: &function.Parameter{Name: "cidrs", Type: cty.String},
	Type:     function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		ip, err := netip.ParseAddr(args[0].AsString())
		if err != nil {
			return cty.False, nil // no or unparsable client address matches nothing
		}
		for _, a := range args[1:] {
			p, err := parsePrefix(a.AsString())
			if err != nil {
				return cty.NilVal, fmt.Errorf("bad network %q", a.AsString())
			}
			if p.Contains(ip.Unmap()) {
				return cty.True, nil
			}
		}
		return cty.False, nil
	},
})

func stringVariadic(match func(s, pattern string) bool) function.Function {
	return function.New(&function.Spec{
		Params:   []function.Parameter{{Name: "s", Type: cty.String}},
		VarParam: &function.Parameter{Name: "patterns", Type: cty.String},
		Type:     function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			s := args[0].AsString()
			for _, p := range args[1:] {
				if match(s, p.AsString()) {
					return cty.True, nil
				}
			}
			return cty.False, nil
		},
	})
}
