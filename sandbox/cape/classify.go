package cape

import (
	"strings"

	"github.com/mailguard/mailguard/sandbox"
)

// rule maps a fragment of a CAPE error message to a kind.
type rule struct {
	fragment  string
	kind      sandbox.Kind
	temporary bool
}

// fileRules classify per-file "errors" items of tasks/create/file/
// (cape-api.md §5.2), in order.
var fileRules = []rule{
	{"disk is out of space", sandbox.KindUnavailable, true},
	{"duplicated file", sandbox.KindDuplicate, false},
	{"empty file", sandbox.KindRejected, false},
	{"exceeds the maximum allowed size", sandbox.KindRejected, false},
	{"tags", sandbox.KindConfig, false},
	{"route", sandbox.KindConfig, false},
	{"platform", sandbox.KindConfig, false},
	{"machine", sandbox.KindConfig, false},
}

// messageRules classify "error_value" of any endpoint, in order.
var messageRules = []rule{
	{"rate limit exceeded", sandbox.KindRateLimited, true},
	{"is disabled", sandbox.KindConfig, false},
	{"machine=all", sandbox.KindConfig, false},
	{"machine '", sandbox.KindConfig, false},
	{"invalid visibility", sandbox.KindConfig, false},
	{"tlp of red", sandbox.KindConfig, false},
	{"task failed", sandbox.KindTaskFailed, false},
	{"reports directory does not exist", sandbox.KindTaskFailed, false},
	{"no reports created", sandbox.KindTaskFailed, false},
	{"does not exist", sandbox.KindNotFound, false},
	{"not found", sandbox.KindNotFound, false},
	{"no file was submitted", sandbox.KindInternal, false},
	{"error adding task to database", sandbox.KindUnavailable, true},
}

func match(rules []rule, msg string) (rule, bool) {
	m := strings.ToLower(msg)
	for _, r := range rules {
		if strings.Contains(m, r.fragment) {
			return r, true
		}
	}
	return rule{}, false
}

// logicalError classifies a 200 answer with "error": true. Per-file items
// decide first (they say why "Error adding task to database"); then the
// message. An unknown message is about the file when there are items
// (rejected), otherwise about the sandbox (config): neither is retried as is.
func logicalError(op string, env *envelope) error {
	msg := env.message()
	items := env.items()
	e := &sandbox.Error{Op: op, HTTPStatus: 200, Msg: msg}
	if len(items) > 0 {
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = it.String()
		}
		e.Msg = msg + ": " + strings.Join(parts, "; ")
	}
	for _, it := range items {
		if r, ok := match(fileRules, it.msg); ok {
			e.Kind, e.Temporary = r.kind, r.temporary
			return e
		}
	}
	if r, ok := match(messageRules, msg); ok {
		if r.kind == sandbox.KindUnavailable && len(items) > 0 {
			e.Kind = sandbox.KindRejected
			return e
		}
		e.Kind, e.Temporary = r.kind, r.temporary
		return e
	}
	e.Kind = sandbox.KindConfig
	if len(items) > 0 {
		e.Kind = sandbox.KindRejected
	}
	return e
}
