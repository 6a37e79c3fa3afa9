// Package spindle writes Spindle native plugin processes in Go.
//
// A Go plugin is a c-shared library (go build -buildmode=c-shared) whose main package calls
// Register in an init function; this package exports the ABI's entry point
// (spindle_plugin_entry, see abi/include/spindle.h). The process body is an ordinary Go
// function that blocks: Receive, Sleep, WaitAny and WaitAll park its goroutine and end the
// runtime's step with wait-any or wait-all; the next step resumes it. So each process is one
// goroutine, and only one of them runs per step, on behalf of the worker thread that steps it.
//
//	func init() { spindle.Register(service) }
//	func service(p *spindle.Process, args []any) (any, error) {
//		m, err := p.Receive()
//		if err != nil {
//			return nil, err
//		}
//		return nil, p.Send(m.From, "reply", m.Payload)
//	}
//	func main() {}
//
// A panic in the body ends that process with an INTERNAL error carrying the panic message.
package spindle

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#include "spindle.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime/cgo"
	"unsafe"
)

// Body is a process body: its arguments in, its result or error out.
type Body func(p *Process, args []any) (any, error)

var body Body

// Register sets the process body of this plugin. Call it once, from an init function.
func Register(b Body) { body = b }

// Process is the running process: its operations are methods. It is valid only inside its own
// body (the goroutine the runtime steps).
type Process struct {
	host    *C.spindle_host
	cx      *C.spindle_cx
	args    []any
	started bool
	dropped bool
	resume  chan struct{}
	yield   chan C.int32_t
	live    map[uint64]*Op // started operations not completed or dropped yet (see collect)
}

// suspend ends the current step with status and blocks until the next step. Once the process
// is dropped (its goroutine then runs the body's deferred calls, see spindleGoDrop), there is
// no next step: the goroutine ends here instead.
func (p *Process) suspend(status C.int32_t) {
	if p.dropped {
		runtimeGoexit()
	}
	p.yield <- status
	if _, ok := <-p.resume; !ok {
		// The process was dropped while waiting: end this goroutine quietly.
		runtimeGoexit()
	}
}

func (p *Process) fail(err error) C.int32_t {
	code := ErrUnknown
	m := []byte(err.Error())
	var e *Error
	if errors.As(err, &e) {
		code = e.Code
		if e == err {
			m = []byte(e.Message)
		}
	}
	p.setError(code, m)
	return C.SPINDLE_STEP_EXIT_ERROR
}

func (p *Process) run() {
	status := C.int32_t(C.SPINDLE_STEP_EXIT_ERROR)
	defer func() {
		if p.dropped {
			return
		}
		if r := recover(); r != nil {
			status = p.fail(&Error{Code: ErrInternal, Message: fmt.Sprintf("plugin panicked: %v", r)})
		}
		p.yield <- status
	}()
	result, err := body(p, p.args)
	if err != nil {
		status = p.fail(err)
		return
	}
	b, err := Encode(result)
	if err != nil {
		status = p.fail(err)
		return
	}
	p.setResult(b)
	status = C.SPINDLE_STEP_EXIT_OK
}

func handleOf(state C.uintptr_t) cgo.Handle { return cgo.Handle(state) }

//export spindleGoInit
func spindleGoInit(host *C.spindle_host, cx *C.spindle_cx, args *C.uint8_t, argsLen C.size_t, state *unsafe.Pointer) C.int32_t {
	p := &Process{host: host, cx: cx, resume: make(chan struct{}), yield: make(chan C.int32_t)}
	if body == nil {
		p.fail(&Error{Code: ErrInvalid, Message: "the Go plugin did not call spindle.Register"})
		return C.SPINDLE_E_INVALID
	}
	if raw := bytesOf(args, argsLen); len(raw) > 0 {
		v, err := Decode(raw)
		a, ok := v.([]any)
		if err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("a %T, not an array", v)
			}
			p.fail(&Error{Code: ErrInvalid, Message: fmt.Sprintf("arguments: %v", err)})
			return C.SPINDLE_E_INVALID
		}
		p.args = a
	}
	// The handle is an integer, not a Go pointer: C may keep it.
	*state = handleToPointer(uintptr(cgo.NewHandle(p)))
	return C.SPINDLE_OK
}

//export spindleGoStep
func spindleGoStep(state C.uintptr_t, host *C.spindle_host, cx *C.spindle_cx) C.int32_t {
	p := handleOf(state).Value().(*Process)
	p.host, p.cx = host, cx
	if !p.started {
		p.started = true
		go p.run()
	} else {
		p.resume <- struct{}{}
	}
	return <-p.yield
}

//export spindleGoDrop
func spindleGoDrop(state C.uintptr_t) {
	h := handleOf(state)
	p := h.Value().(*Process)
	p.dropped = true
	p.host, p.cx = nil, nil
	close(p.resume)
	h.Delete()
}
