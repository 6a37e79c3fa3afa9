package spindle

/*
#include <stdint.h>
static void *spindle_go_handle_to_pointer(uintptr_t h) { return (void *)h; }
*/
import "C"

import (
	"runtime"
	"unsafe"
)

func runtimeGoexit() { runtime.Goexit() }

// handleToPointer turns a cgo.Handle into the opaque state pointer C keeps; converting in C
// keeps Go's checks from mistaking the integer for a Go pointer.
func handleToPointer(h uintptr) unsafe.Pointer {
	return C.spindle_go_handle_to_pointer(C.uintptr_t(h))
}
