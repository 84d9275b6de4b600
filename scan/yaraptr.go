package scan

// go-yara v4.2.x sets scan timeouts in whole seconds (yr_scanner_set_timeout
// takes an int) and offers no way to stop a running scan. libyara itself
// keeps the timeout in nanoseconds in YR_SCANNER.timeout and checks it
// every 4 KiB of input and every few condition steps, so writing that
// field directly gives a precise deadline, and writing 1 ns from another
// goroutine cancels a running scan at its next check.
//
// The C pointers are unexported fields of go-yara's types. cptrOf reads
// them only after init has checked, with reflect, that each type still
// starts with a pointer field named cptr (true for go-yara v4.2.4, which
// go.mod pins). If the layout ever changes, direct access is switched off
// and the engine falls back to go-yara's whole-second timeout and to
// String.Matches.

/*
#cgo pkg-config: yara
#include <stdint.h>
#include <yara.h>

static void mg_set_timeout(void* s, uint64_t ns) {
	__atomic_store_n(&((YR_SCANNER*)s)->timeout, ns, __ATOMIC_RELAXED);
}

static int mg_string_matched(void* ctx, void* str) {
	YR_SCAN_CONTEXT* c = (YR_SCAN_CONTEXT*)ctx;
	YR_STRING* s = (YR_STRING*)str;
	YR_MATCH* m;
	// Like yr_string_matches_foreach: private matches are not reported.
	for (m = c->matches[s->idx].head; m != NULL; m = m->next)
		if (!m->is_private)
			return 1;
	return 0;
}
*/
import "C"

import (
	"reflect"
	"time"
	"unsafe"

	yara "github.com/hillu/go-yara/v4"
)

// directAccess reports whether go-yara's types have the expected layout.
var directAccess = startsWithCPtr(reflect.TypeFor[yara.Scanner]()) &&
	startsWithCPtr(reflect.TypeFor[yara.ScanContext]()) &&
	startsWithCPtr(reflect.TypeFor[yara.String]())

func startsWithCPtr(t reflect.Type) bool {
	if t.Kind() != reflect.Struct || t.NumField() == 0 {
		return false
	}
	f := t.Field(0)
	return f.Name == "cptr" && f.Offset == 0 && f.Type.Kind() == reflect.Pointer
}

// cptrOf returns the C pointer in the first field of a go-yara object.
func cptrOf[T any](p *T) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(p))
}

// setTimeout sets the scanner's deadline relative to the start of its
// next scan (0: none).
func setTimeout(s *yara.Scanner, d time.Duration) {
	if !directAccess {
		secs := (d + time.Second - 1) / time.Second // round up: never shorter than asked
		s.SetTimeout(secs * time.Second)
		return
	}
	if d < 0 {
		d = 1
	}
	C.mg_set_timeout(cptrOf(s), C.uint64_t(d))
}

// abortScan makes a scan running on s stop at its next timeout check.
// It is a no-op without direct access.
func abortScan(s *yara.Scanner) {
	if directAccess {
		C.mg_set_timeout(cptrOf(s), 1)
	}
}

// stringMatched reports whether str matched in the scan of sc.
func stringMatched(sc *yara.ScanContext, str *yara.String) bool {
	if !directAccess {
		return len(str.Matches(sc)) > 0
	}
	return C.mg_string_matched(cptrOf(sc), cptrOf(str)) != 0
}
