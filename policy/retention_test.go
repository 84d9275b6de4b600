package policy

import (
	"strings"
	"testing"
	"time"
)

func TestRetentionBlock(t *testing.T) {
	const gw = "gateway {\n  listen = [\"127.0.0.1:2525\"]\n}\n"
	check := func(src string, want Retention, wantDiag string) {
		t.Helper()
		p, diags := Parse([]byte(gw+src), "policy.hcl")
		got := FormatDiagnostics(diags)
		if wantDiag == "" && got != "" || wantDiag != "" && !strings.Contains(got, wantDiag) {
			t.Fatalf("%q: diagnostics %q, want %q", src, got, wantDiag)
		}
		if p == nil {
			return
		}
		r := p.Retention
		if r.KeepDelivered != want.KeepDelivered || r.KeepQuarantined != want.KeepQuarantined ||
			r.KeepRejected != want.KeepRejected || r.KeepRecords != want.KeepRecords || r.Every != want.Every {
			t.Errorf("%q: got %+v, want %+v", src, *r, want)
		}
	}
	day := 24 * time.Hour
	check("", Retention{KeepDelivered: 30 * day, KeepQuarantined: 90 * day, KeepRejected: 7 * day,
		KeepRecords: 365 * day, Every: time.Hour}, "")
	check(`retention {
  delivered   = "2d"
  quarantined = "forever"
  rejected    = "12h"
  records     = "10d"
  interval    = "5m"
}`, Retention{KeepDelivered: 2 * day, KeepRejected: 12 * time.Hour, KeepRecords: 10 * day, Every: 5 * time.Minute}, "")
	check(`retention { records = "forever" }`, Retention{KeepDelivered: 30 * day, KeepQuarantined: 90 * day,
		KeepRejected: 7 * day, Every: time.Hour}, "")
	check(`retention {
  delivered = "40d"
  records   = "20d"
}`, Retention{KeepDelivered: 40 * day, KeepQuarantined: 90 * day, KeepRejected: 7 * day,
		KeepRecords: 20 * day, Every: time.Hour}, "policy.hcl:5:15: warning: retention longer than records: delivered content is kept only as long as its record (records = \"20d\")")
	check(`retention { delivered = "never" }`, Retention{}, "policy.hcl:4:25: invalid duration")
	check(`retention { interval = "0s" }`, Retention{}, "invalid duration")
}

func TestEventLogPathRelativeToPolicy(t *testing.T) {
	src := "gateway {\n  listen = [\"127.0.0.1:2525\"]\n}\nlog { events = \"var/events.jsonl\" }\n"
	p, diags := Parse([]byte(src), "/etc/mailguard/policy.hcl")
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	if p.Log.Events != "/etc/mailguard/var/events.jsonl" {
		t.Errorf("events = %q, want it relative to the policy file", p.Log.Events)
	}
}
