package policy

import (
	"strings"
	"testing"
	"time"
)

// TestSandboxPollInterval: poll_interval defaults to a minute, accepts
// durations of a second or more and refuses shorter ones with a position.
func TestSandboxPollInterval(t *testing.T) {
	block := func(poll string) string {
		s := minimal + "sandbox \"cape\" {\n  url = \"http://127.0.0.1:8090/apiv2/\"\n"
		if poll != "" {
			s += "  poll_interval = " + poll + "\n"
		}
		return s + "}\n"
	}
	if got := mustParse(t, block("")).Sandbox().Poll; got != DefaultSandboxPoll {
		t.Errorf("default poll = %v, want %v", got, DefaultSandboxPoll)
	}
	if got := mustParse(t, block(`"2s"`)).Sandbox().Poll; got != 2*time.Second {
		t.Errorf("poll = %v, want 2s", got)
	}
	for _, bad := range []string{`"500ms"`, `"0s"`, `"soon"`} {
		_, diags := Parse([]byte(block(bad)), "p.hcl")
		if got := FormatDiagnostics(diags); !diags.HasErrors() || !strings.Contains(got, "p.hcl:9:19:") {
			t.Errorf("poll_interval = %s: diagnostics %q, want an error at p.hcl:9:19", bad, got)
		}
	}
}
