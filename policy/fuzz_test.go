package policy

import (
	"os"
	"testing"
)

// FuzzLoad: no policy text makes the loader panic or hang, and a policy
// that loads can evaluate the probe facts.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"../policy.hcl"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + `rule "x" { when = anytrue([for f in files : glob("*.exe", f.name)]) action = "hold" }`))
	f.Add([]byte(`gateway { listen = ["[::1]:25"] } limits { max_message_size = "1G" }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, diags := Parse(src, "fuzz.hcl")
		if p == nil {
			if !diags.HasErrors() {
				t.Fatal("nil policy without an error")
			}
			return
		}
		p.Evaluate(facts())
	})
}
