package thread_test

import (
	"testing"

	"github.com/mailguard/mailguard/thread"
	"github.com/mailguard/mailguard/thread/threadtest"
)

func TestMemoryConformance(t *testing.T) {
	threadtest.Run(t, func(t *testing.T) thread.Store { return thread.NewMemory() })
}
