package sandboxtest

import (
	"testing"

	"github.com/mailguard/mailguard/sandbox"
)

func TestMemStore(t *testing.T) {
	TestStore(t, func(*testing.T) sandbox.Store { return NewMemStore() })
}
