package spindle

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#include <stdlib.h>
#include "spindle.h"

// Go cannot call C function pointers: one trampoline per host function used. Each refuses a
// NULL table: a body's deferred calls run after the runtime dropped the process (see
// Process.suspend), when no host function may be called.
static uint64_t sp_pid(const spindle_host *h, spindle_cx *cx) { return h ? h->pid(cx) : 0; }
static int32_t sp_send(const spindle_host *h, spindle_cx *cx, uint64_t to, const uint8_t *t, size_t tl, const uint8_t *p, size_t pl) { return h ? h->send(cx, to, t, tl, p, pl) : SPINDLE_E_CANCELED; }
static int32_t sp_send_to(const spindle_host *h, spindle_cx *cx, const uint8_t *d, size_t dl, const uint8_t *t, size_t tl, const uint8_t *p, size_t pl) { return h ? h->send_to(cx, d, dl, t, tl, p, pl) : SPINDLE_E_CANCELED; }
static int32_t sp_spawn(const spindle_host *h, spindle_cx *cx, const uint8_t *e, size_t el, const uint8_t *a, size_t al, uint32_t ties, uint64_t *pid) { return h ? h->spawn(cx, e, el, NULL, 0, a, al, ties, pid) : SPINDLE_E_CANCELED; }
static int32_t sp_link(const spindle_host *h, spindle_cx *cx, uint64_t p) { return h ? h->link(cx, p) : SPINDLE_E_CANCELED; }
static int32_t sp_monitor(const spindle_host *h, spindle_cx *cx, uint64_t p) { return h ? h->monitor(cx, p) : SPINDLE_E_CANCELED; }
static int32_t sp_set_option(const spindle_host *h, spindle_cx *cx, uint32_t o, int32_t on) { return h ? h->set_option(cx, o, on) : SPINDLE_E_CANCELED; }
static int32_t sp_register(const spindle_host *h, spindle_cx *cx, const uint8_t *n, size_t nl) { return h ? h->register_name(cx, n, nl, 0) : SPINDLE_E_CANCELED; }
static int32_t sp_lookup(const spindle_host *h, spindle_cx *cx, const uint8_t *n, size_t nl, uint64_t *p) { return h ? h->lookup(cx, n, nl, p) : SPINDLE_E_CANCELED; }
static int32_t sp_receive(const spindle_host *h, spindle_cx *cx, const uint8_t *t, size_t tl, uint64_t *tag) { return h ? h->receive(cx, t, tl, tag) : SPINDLE_E_CANCELED; }
static int32_t sp_events(const spindle_host *h, spindle_cx *cx, uint64_t *tag) { return h ? h->events(cx, tag) : SPINDLE_E_CANCELED; }
static int32_t sp_timer(const spindle_host *h, spindle_cx *cx, uint64_t ns, uint64_t *tag) { return h ? h->timer(cx, ns, tag) : SPINDLE_E_CANCELED; }
static int32_t sp_take(const spindle_host *h, spindle_cx *cx, uint64_t tag, spindle_completion *c) { c->size = sizeof *c; return h ? h->take_completion(cx, tag, c) : SPINDLE_E_CANCELED; }
static int32_t sp_drop_op(const spindle_host *h, spindle_cx *cx, uint64_t tag) { return h ? h->drop_op(cx, tag) : SPINDLE_E_CANCELED; }
static int32_t sp_set_result(const spindle_host *h, spindle_cx *cx, const uint8_t *v, size_t vl) { return h ? h->set_result(cx, v, vl) : SPINDLE_E_CANCELED; }
static int32_t sp_set_error(const spindle_host *h, spindle_cx *cx, int32_t code, const uint8_t *m, size_t ml) { return h ? h->set_error(cx, code, m, ml) : SPINDLE_E_CANCELED; }
static int32_t sp_upgrade(const spindle_host *h, spindle_cx *cx, const uint8_t *e, size_t el, const uint8_t *a, size_t al) { return h ? h->upgrade(cx, e, el, a, al) : SPINDLE_E_CANCELED; }
static int32_t sp_last_error(const spindle_host *h, spindle_cx *cx, const uint8_t **m, size_t *ml) { return h ? h->last_error(cx, m, ml) : SPINDLE_E_CANCELED; }
static int32_t sp_log(const spindle_host *h, spindle_cx *cx, int32_t level, const uint8_t *m, size_t ml) { return h ? h->log(cx, level, m, ml) : SPINDLE_E_CANCELED; }
static int32_t sp_unlink(const spindle_host *h, spindle_cx *cx, uint64_t p) { return h ? h->unlink(cx, p) : SPINDLE_E_CANCELED; }
static int32_t sp_unmonitor(const spindle_host *h, spindle_cx *cx, uint64_t p) { return h ? h->unmonitor(cx, p) : SPINDLE_E_CANCELED; }
static int32_t sp_unregister(const spindle_host *h, spindle_cx *cx, const uint8_t *n, size_t nl) { return h ? h->unregister_name(cx, n, nl) : SPINDLE_E_CANCELED; }
static int32_t sp_cancel(const spindle_host *h, spindle_cx *cx, uint64_t p, const uint8_t *r, size_t rl) { return h ? h->cancel(cx, p, r, rl) : SPINDLE_E_CANCELED; }
static int32_t sp_terminate(const spindle_host *h, spindle_cx *cx, uint64_t p) { return h ? h->terminate(cx, p) : SPINDLE_E_CANCELED; }
static int32_t sp_listen(const spindle_host *h, spindle_cx *cx, const uint8_t *t, size_t tl) { return h ? h->listen(cx, t, tl) : SPINDLE_E_CANCELED; }
static int32_t sp_unlisten(const spindle_host *h, spindle_cx *cx, const uint8_t *t, size_t tl) { return h ? h->unlisten(cx, t, tl) : SPINDLE_E_CANCELED; }
static int32_t sp_pid_text(const spindle_host *h, spindle_cx *cx, uint64_t p, const uint8_t **t, size_t *tl) { return h ? h->pid_text(cx, p, t, tl) : SPINDLE_E_CANCELED; }
static int32_t sp_exec(const spindle_host *h, spindle_cx *cx, const uint8_t *e, size_t el, const uint8_t *a, size_t al, uint64_t *tag) { return h ? h->exec(cx, e, el, NULL, 0, a, al, tag) : SPINDLE_E_CANCELED; }
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// Error is a failure of a host call, an operation or a process: an ABI error code
// (SPINDLE_E_*) and a message.
type Error struct {
	Code    int32
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", errorName(e.Code), e.Message) }

// Error codes (spindle.h).
const (
	ErrNotFound    int32 = C.SPINDLE_E_NOT_FOUND
	ErrCanceled    int32 = C.SPINDLE_E_CANCELED
	ErrInvalid     int32 = C.SPINDLE_E_INVALID
	ErrInternal    int32 = C.SPINDLE_E_INTERNAL
	ErrUnknown     int32 = C.SPINDLE_E_UNKNOWN
	ErrUnavailable int32 = C.SPINDLE_E_UNAVAILABLE
)

// Log levels (spindle.h).
const (
	LogError = C.SPINDLE_LOG_ERROR
	LogWarn  = C.SPINDLE_LOG_WARN
	LogInfo  = C.SPINDLE_LOG_INFO
	LogDebug = C.SPINDLE_LOG_DEBUG
)

// errDropped is what host calls return once the runtime has dropped the process: its body's
// deferred functions still run then, but no host function may be called (spindle.h, drop).
var errDropped = &Error{Code: ErrCanceled, Message: "the process has ended: host calls are refused after it was dropped"}

func errorName(code int32) string {
	names := map[int32]string{-1: "NOT_FOUND", -2: "ALREADY_EXISTS", -3: "INVALID", -4: "PERMISSION_DENIED",
		-5: "UNAVAILABLE", -6: "INTERNAL", -7: "CANCELED", -8: "TIMEOUT", -9: "RATE_LIMITED", -10: "UNKNOWN"}
	if n, ok := names[code]; ok {
		return n
	}
	return "UNKNOWN"
}

// ptr returns a C pointer to b's bytes (nil for empty). The host copies before returning, so
// passing Go memory for the length of the call is allowed by cgo's rules.
func ptr(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

func (p *Process) check(rc C.int32_t) error {
	if rc == C.SPINDLE_OK || rc == C.SPINDLE_NONE {
		return nil
	}
	if p.host == nil {
		return errDropped
	}
	var m *C.uint8_t
	var n C.size_t
	msg := fmt.Sprintf("host call failed with code %d", int32(rc))
	if C.sp_last_error(p.host, p.cx, &m, &n) == C.SPINDLE_OK && m != nil {
		msg = C.GoStringN((*C.char)(unsafe.Pointer(m)), C.int(n))
	}
	return &Error{Code: int32(rc), Message: msg}
}

func (p *Process) setError(code int32, msg []byte) {
	mp, ml := ptr(msg)
	C.sp_set_error(p.host, p.cx, C.int32_t(code), mp, ml)
}

func (p *Process) setResult(b []byte) {
	bp, bl := ptr(b)
	C.sp_set_result(p.host, p.cx, bp, bl)
}

// Pid returns this process's pid.
func (p *Process) Pid() uint64 { return uint64(C.sp_pid(p.host, p.cx)) }

// Send sends payload under topic to pid `to`. Sending to an ended process is not an error.
func (p *Process) Send(to uint64, topic string, payload any) error {
	b, err := Encode(payload)
	if err != nil {
		return err
	}
	t := []byte(topic)
	tp, tl := ptr(t)
	bp, bl := ptr(b)
	return p.check(C.sp_send(p.host, p.cx, C.uint64_t(to), tp, tl, bp, bl))
}

// SendTo sends to a registered name, or a pid in text form ("{host|0x…}").
func (p *Process) SendTo(dest, topic string, payload any) error {
	b, err := Encode(payload)
	if err != nil {
		return err
	}
	d, t := []byte(dest), []byte(topic)
	dp, dl := ptr(d)
	tp, tl := ptr(t)
	bp, bl := ptr(b)
	return p.check(C.sp_send_to(p.host, p.cx, dp, dl, tp, tl, bp, bl))
}

// Ties of Spawn.
const (
	TieLink    = C.SPINDLE_TIE_LINK
	TieMonitor = C.SPINDLE_TIE_MONITOR
)

// Spawn starts entry ("namespace:name") on this host with args, tied by ties (Tie* bits).
func (p *Process) Spawn(entry string, args []any, ties uint32) (uint64, error) {
	var a []byte
	if len(args) > 0 {
		var err error
		if a, err = Encode(args); err != nil {
			return 0, err
		}
	}
	e := []byte(entry)
	ep, el := ptr(e)
	ap, al := ptr(a)
	var pid C.uint64_t
	if err := p.check(C.sp_spawn(p.host, p.cx, ep, el, ap, al, C.uint32_t(ties), &pid)); err != nil {
		return 0, err
	}
	return uint64(pid), nil
}

// Link links this process and pid both ways.
func (p *Process) Link(pid uint64) error { return p.check(C.sp_link(p.host, p.cx, C.uint64_t(pid))) }

// Monitor makes this process receive an EXIT event when pid ends.
func (p *Process) Monitor(pid uint64) error {
	return p.check(C.sp_monitor(p.host, p.cx, C.uint64_t(pid)))
}

// Unlink undoes Link.
func (p *Process) Unlink(pid uint64) error {
	return p.check(C.sp_unlink(p.host, p.cx, C.uint64_t(pid)))
}

// Unmonitor undoes Monitor: no EXIT event comes for pid any more.
func (p *Process) Unmonitor(pid uint64) error {
	return p.check(C.sp_unmonitor(p.host, p.cx, C.uint64_t(pid)))
}

func (p *Process) setOption(option C.uint32_t, on bool) {
	v := C.int32_t(0)
	if on {
		v = 1
	}
	C.sp_set_option(p.host, p.cx, option, v)
}

// SetTrapLinks: with true, a linked failure arrives as a LINK_DOWN event instead of ending me.
func (p *Process) SetTrapLinks(on bool) { p.setOption(C.SPINDLE_OPTION_TRAP_LINKS, on) }

// SetUpgradable: with true, this process receives an OUTDATED event when its entry changes.
func (p *Process) SetUpgradable(on bool) { p.setOption(C.SPINDLE_OPTION_UPGRADABLE, on) }

// Cancel asks pid to stop: it receives a CANCEL event carrying reason (nil: none).
func (p *Process) Cancel(pid uint64, reason any) error {
	var r []byte
	if reason != nil {
		var err error
		if r, err = Encode(reason); err != nil {
			return err
		}
	}
	rp, rl := ptr(r)
	return p.check(C.sp_cancel(p.host, p.cx, C.uint64_t(pid), rp, rl))
}

// Terminate stops pid at once; its monitors see a CANCELED error.
func (p *Process) Terminate(pid uint64) error {
	return p.check(C.sp_terminate(p.host, p.cx, C.uint64_t(pid)))
}

// Listen routes messages of topic to a queue of their own, received with ReceiveOp(topic).
func (p *Process) Listen(topic string) error {
	t := []byte(topic)
	tp, tl := ptr(t)
	return p.check(C.sp_listen(p.host, p.cx, tp, tl))
}

// Unlisten undoes Listen: the topic's messages go to the inbox again.
func (p *Process) Unlisten(topic string) error {
	t := []byte(topic)
	tp, tl := ptr(t)
	return p.check(C.sp_unlisten(p.host, p.cx, tp, tl))
}

// PidText returns pid in text form ("{host|0x0000002a}"), as Lua processes see pids.
func (p *Process) PidText(pid uint64) (string, error) {
	var t *C.uint8_t
	var n C.size_t
	if err := p.check(C.sp_pid_text(p.host, p.cx, C.uint64_t(pid), &t, &n)); err != nil {
		return "", err
	}
	return string(bytesOf(t, n)), nil
}

// Register registers name for this process.
func (p *Process) Register(name string) error {
	n := []byte(name)
	np, nl := ptr(n)
	return p.check(C.sp_register(p.host, p.cx, np, nl))
}

// Unregister releases name.
func (p *Process) Unregister(name string) error {
	n := []byte(name)
	np, nl := ptr(n)
	return p.check(C.sp_unregister(p.host, p.cx, np, nl))
}

// Lookup returns the pid registered as name; an *Error with Code ErrNotFound if there is none
// (other codes: the name is invalid, the call was refused).
func (p *Process) Lookup(name string) (uint64, error) {
	n := []byte(name)
	np, nl := ptr(n)
	var pid C.uint64_t
	if err := p.check(C.sp_lookup(p.host, p.cx, np, nl, &pid)); err != nil {
		return 0, err
	}
	return uint64(pid), nil
}

// Log writes message to the runtime's log at level (Log*).
func (p *Process) Log(level int, message string) {
	m := []byte(message)
	mp, ml := ptr(m)
	C.sp_log(p.host, p.cx, C.int32_t(level), mp, ml)
}

// Upgrade continues this process as entry ("" = this entry, reloaded) with args, keeping its
// pid, mailbox, names, links and monitors. It returns only if the request is refused.
func (p *Process) Upgrade(entry string, args []any) error {
	a, err := Encode(args)
	if err != nil {
		return err
	}
	e := []byte(entry)
	ep, el := ptr(e)
	ap, al := ptr(a)
	if err := p.check(C.sp_upgrade(p.host, p.cx, ep, el, ap, al)); err != nil {
		return err
	}
	p.suspend(C.SPINDLE_STEP_UPGRADE)
	return &Error{Code: ErrInternal, Message: "resumed after an upgrade"}
}

// Op is a started blocking operation: a receive, an event receive, a timer or an exec.
type Op struct {
	p          *Process
	tag        uint64
	done       bool
	Completion Completion
	err        error
}

// Receive starts a receive of the next inbox message (topic "") or of a listened topic.
func (p *Process) ReceiveOp(topic string) *Op {
	t := []byte(topic)
	tp, tl := ptr(t)
	var tag C.uint64_t
	err := p.check(C.sp_receive(p.host, p.cx, tp, tl, &tag))
	return p.track(&Op{p: p, tag: uint64(tag), done: err != nil, err: err})
}

// EventsOp starts a receive of the next event.
func (p *Process) EventsOp() *Op {
	var tag C.uint64_t
	err := p.check(C.sp_events(p.host, p.cx, &tag))
	return p.track(&Op{p: p, tag: uint64(tag), done: err != nil, err: err})
}

// Timer starts a timer of d.
func (p *Process) Timer(d time.Duration) *Op {
	if d < 0 {
		d = 0
	}
	var tag C.uint64_t
	err := p.check(C.sp_timer(p.host, p.cx, C.uint64_t(d.Nanoseconds()), &tag))
	return p.track(&Op{p: p, tag: uint64(tag), done: err != nil, err: err})
}

// ExecOp spawns entry on this host with args and completes with its result: Completion.Value,
// or Completion.Err if it failed (or could not start).
func (p *Process) ExecOp(entry string, args []any) *Op {
	var a []byte
	if len(args) > 0 {
		var err error
		if a, err = Encode(args); err != nil {
			return &Op{p: p, done: true, err: err}
		}
	}
	e := []byte(entry)
	ep, el := ptr(e)
	ap, al := ptr(a)
	var tag C.uint64_t
	err := p.check(C.sp_exec(p.host, p.cx, ep, el, ap, al, &tag))
	return p.track(&Op{p: p, tag: uint64(tag), done: err != nil, err: err})
}

// track notes a started operation as outstanding (see collect).
func (p *Process) track(o *Op) *Op {
	if !o.done {
		if p.live == nil {
			p.live = map[uint64]*Op{}
		}
		p.live[o.tag] = o
	}
	return o
}

// collect takes the completions of every outstanding operation that has completed, waited for
// or not, keeping each in its Op. A step ends with wait-any or wait-all for the process as a
// whole: a completion left with the host for an operation nobody waits for would make every
// wait-any step again at once (spinning until a waited-for one completes).
func (p *Process) collect() {
	for _, o := range p.live {
		o.Done()
	}
}

// Done reports whether the operation has completed, taking its completion if so.
func (o *Op) Done() bool {
	if o.done {
		return true
	}
	var c C.spindle_completion
	if C.sp_take(o.p.host, o.p.cx, C.uint64_t(o.tag), &c) != C.SPINDLE_OK {
		return false
	}
	o.done = true
	o.Completion = completionOf(&c)
	delete(o.p.live, o.tag)
	return true
}

// Err is the error of an operation that could not start.
func (o *Op) Err() error { return o.err }

// Drop abandons the operation; a message it already received goes back to the mailbox.
func (o *Op) Drop() {
	if !o.done {
		C.sp_drop_op(o.p.host, o.p.cx, C.uint64_t(o.tag))
		o.done = true
		delete(o.p.live, o.tag)
	}
}

// WaitAny blocks until one of ops has completed and returns its index (wait-any); -1 for no
// ops. Other outstanding operations that complete meanwhile keep their completion in their Op.
func (p *Process) WaitAny(ops ...*Op) int {
	if len(ops) == 0 {
		return -1
	}
	for {
		// Every outstanding operation's completion is taken first, ours included: one that
		// completes between a look at ours and the collection would otherwise be taken by the
		// collection and the step would end waiting for nothing (and never be woken).
		p.collect()
		for i, o := range ops {
			if o.Done() {
				return i
			}
		}
		p.suspend(C.SPINDLE_STEP_WAIT_ANY)
	}
}

// WaitAll blocks until every one of ops has completed (wait-all). While other operations are
// outstanding too (the host's wait-all would wait for them as well), it waits for any
// completion at a time instead.
func (p *Process) WaitAll(ops ...*Op) {
	for {
		p.collect() // (first, as in WaitAny)
		all := true
		for _, o := range ops {
			all = o.Done() && all
		}
		if all {
			return
		}
		status := C.int32_t(C.SPINDLE_STEP_WAIT_ALL)
		for _, o := range p.live {
			if !contains(ops, o) {
				status = C.SPINDLE_STEP_WAIT_ANY
				break
			}
		}
		p.suspend(status)
	}
}

func contains(ops []*Op, o *Op) bool {
	for _, x := range ops {
		if x == o {
			return true
		}
	}
	return false
}

// Receive blocks until the next inbox message. It fails if the receive cannot start or ends
// without a message (the host refused it, or the process is being stopped: ErrCanceled).
func (p *Process) Receive() (Message, error) {
	o := p.ReceiveOp("")
	p.WaitAny(o)
	return o.Completion.Message, o.failure(KindMessage)
}

// NextEvent blocks until the next event; it fails as Receive does.
func (p *Process) NextEvent() (Event, error) {
	o := p.EventsOp()
	p.WaitAny(o)
	return o.Completion.Event, o.failure(KindEvent)
}

// failure is why a completed operation that should have ended with kind did not: the error it
// could not start with, or the one it completed with.
func (o *Op) failure(kind int) error {
	switch {
	case o.err != nil:
		return o.err
	case o.Completion.Kind == kind:
		return nil
	case o.Completion.Err != nil:
		return o.Completion.Err
	default:
		return &Error{Code: ErrInternal, Message: fmt.Sprintf("operation ended with completion kind %d", o.Completion.Kind)}
	}
}

// Sleep blocks for d.
func (p *Process) Sleep(d time.Duration) { p.WaitAny(p.Timer(d)) }

// Yield gives the worker to the other ready processes, then continues.
func (p *Process) Yield() { p.suspend(C.SPINDLE_STEP_YIELD) }

// Completion kinds.
const (
	KindMessage = C.SPINDLE_COMPLETION_MESSAGE
	KindEvent   = C.SPINDLE_COMPLETION_EVENT
	KindTimer   = C.SPINDLE_COMPLETION_TIMER
	KindExit    = C.SPINDLE_COMPLETION_EXIT
	KindFailed  = C.SPINDLE_COMPLETION_FAILED
)

// Event kinds.
const (
	EventExit     = C.SPINDLE_EVENT_EXIT
	EventLinkDown = C.SPINDLE_EVENT_LINK_DOWN
	EventCancel   = C.SPINDLE_EVENT_CANCEL
	EventOutdated = C.SPINDLE_EVENT_OUTDATED
)

// Message is a received message.
type Message struct {
	From    uint64
	Topic   string
	Payload any
}

// Event is something the runtime tells this process; Err is set when the process it is about
// failed, Value holds its result (or a CANCEL reason).
type Event struct {
	Kind  int
	From  uint64
	Value any
	Err   error
}

// Completion is what a finished operation produced.
type Completion struct {
	Kind    int
	Message Message
	Event   Event
	Value   any
	Err     error
}

func bytesOf(p *C.uint8_t, n C.size_t) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n))
}

func completionOf(c *C.spindle_completion) Completion {
	var value any
	if raw := bytesOf(c.value, c.value_len); len(raw) > 0 {
		value, _ = Decode(raw)
	}
	var err error
	if c.error != 0 {
		err = &Error{Code: int32(c.error), Message: string(bytesOf(c.error_message, c.error_message_len))}
	}
	out := Completion{Kind: int(c.kind), Value: value, Err: err}
	switch c.kind {
	case C.SPINDLE_COMPLETION_MESSAGE:
		out.Message = Message{From: uint64(c.from), Topic: string(bytesOf(c.topic, c.topic_len)), Payload: value}
	case C.SPINDLE_COMPLETION_EVENT:
		out.Event = Event{Kind: int(c.event), From: uint64(c.from), Value: value, Err: err}
	}
	return out
}
