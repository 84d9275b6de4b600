package scan

import (
	"os"
	"os/exec"
	"testing"
)

// need skips the test when a tool is missing, or fails it when
// MAILGUARD_E2E_STRICT=1 (CI) says every tool must be there.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("MAILGUARD_E2E_STRICT") == "1" {
				t.Fatalf("%s is required (MAILGUARD_E2E_STRICT=1): %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// runCmd runs a command and returns its standard output; it fails the
// test on a non-zero exit.
func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s", name, err, msg)
	}
	return string(out)
}
