// A native plugin process in Go: a small service that answers requests, waits on several
// operations at once (two timers and a receive: wait-any; two timers: wait-all), and can
// upgrade itself into another entry. Same protocol as examples/native-c and native-rust.
//
// Build: bash scripts/build-native-examples.sh go  (→ examples/native-go/libservice_go.so)
package main

import (
	"errors"
	"fmt"
	"time"

	spindle "example.invalid/spindle/abi/go"
)

func init() { spindle.Register(service) }

func main() {}

func millis(payload any, key string) time.Duration {
	if m, ok := payload.(spindle.Map); ok {
		if v, ok := m.Get(key); ok {
			if n, ok := v.(int64); ok {
				return time.Duration(n) * time.Millisecond
			}
		}
	}
	return 0
}

func service(p *spindle.Process, args []any) (any, error) {
	var handled int64
	// Runs however the body ends. After an upgrade or a terminate the runtime has already
	// dropped the process when it runs: its host calls are refused then (Log drops the line).
	defer func() { p.Log(spindle.LogDebug, fmt.Sprintf("service ends after %d requests", handled)) }()
	if len(args) >= 2 {
		handled, _ = args[0].(int64)
		to, _ := args[1].(int64)
		// Started by an upgrade: tell the requester who we are now.
		reply := spindle.Map{{"handled", handled}, {"pid", int64(p.Pid())}, {"lang", "go"}}
		if err := p.Send(uint64(to), "upgraded", reply); err != nil {
			return nil, err
		}
	}
	for {
		m, err := p.Receive()
		if err != nil {
			return nil, err
		}
		handled++
		switch m.Topic {
		case "echo":
			err = p.Send(m.From, "echo", m.Payload)
		case "race":
			a, b := p.Timer(millis(m.Payload, "a")), p.Timer(millis(m.Payload, "b"))
			r := p.ReceiveOp("")
			ops := []*spindle.Op{a, b, r}
			won := p.WaitAny(ops...)
			for i, o := range ops {
				if i != won {
					o.Drop()
				}
			}
			var winner any = []any{"timer_a", "timer_b"}[min(won, 1)]
			if won == 2 {
				winner = []any{"message", r.Completion.Message.Payload}
			}
			err = p.Send(m.From, "race", winner)
		case "all":
			t0 := time.Now()
			p.WaitAll(p.Timer(millis(m.Payload, "a")), p.Timer(millis(m.Payload, "b")))
			err = p.Send(m.From, "all", time.Since(t0).Milliseconds())
		case "monitor":
			target, _ := m.Payload.(int64)
			if err = p.Monitor(uint64(target)); err != nil {
				break
			}
			if err = p.Send(m.From, "monitoring", nil); err != nil {
				break
			}
			var ev spindle.Event
			if ev, err = p.NextEvent(); err != nil {
				break
			}
			how := []any{"ok", ev.Value}
			if ev.Err != nil {
				how = []any{"error", ev.Err.(*spindle.Error).Message}
			}
			err = p.Send(m.From, "down", []any{int64(ev.From), how})
		case "link":
			target, _ := m.Payload.(int64)
			if err = p.Link(uint64(target)); err == nil {
				err = p.Send(m.From, "linked", nil)
			}
		case "upgrade":
			entry, _ := m.Payload.(string)
			return nil, p.Upgrade(entry, []any{handled, int64(m.From)})
		case "calls":
			entry, _ := m.Payload.(string)
			bad := sdkCalls(p, entry)
			err = p.Send(m.From, "calls", bad)
		case "fail":
			return nil, fmt.Errorf("asked to fail: %v", m.Payload)
		case "panic":
			panic("asked to panic")
		case "stop":
			return handled, nil
		default:
			p.Log(spindle.LogWarn, "unknown request "+m.Topic)
		}
		if err != nil {
			return nil, err
		}
	}
}

// sdkCalls makes the package's calls one after another (the "calls" request, entry being this
// service's own entry): names, sends by name and by pid text, a listened topic, a yield, an
// exec, and a child that is linked and unlinked, monitored and unmonitored, cancelled (which
// it ignores) and terminated. It returns what went wrong, if anything.
func sdkCalls(p *spindle.Process, entry string) []any {
	bad := []any{}
	check := func(ok bool, what string) {
		if !ok {
			bad = append(bad, what)
		}
	}
	me := p.Pid()
	check(p.Register("calls-go") == nil, "register")
	pid, err := p.Lookup("calls-go")
	check(err == nil && pid == me, "lookup")
	check(p.SendTo("calls-go", "by-name", int64(1)) == nil, "send_to a name")
	if text, err := p.PidText(me); err == nil {
		check(p.SendTo(text, "by-text", int64(2)) == nil, "send_to a pid's text")
	} else {
		check(false, "pid_text")
	}
	for i, topic := range []string{"by-name", "by-text"} {
		m, err := p.Receive()
		check(err == nil && m.Topic == topic && m.Payload == int64(i+1), topic)
	}
	check(p.Unregister("calls-go") == nil, "unregister")
	_, err = p.Lookup("calls-go")
	var e *spindle.Error
	check(errors.As(err, &e) && e.Code == spindle.ErrNotFound, "lookup after unregister")
	_, err = p.Lookup("\xff")
	check(errors.As(err, &e) && e.Code == spindle.ErrInvalid, "lookup of an invalid name")
	check(p.Listen("calls-topic") == nil, "listen")
	check(p.Send(me, "calls-topic", int64(3)) == nil, "send to a listened topic")
	r := p.ReceiveOp("calls-topic")
	p.WaitAny(r)
	check(r.Err() == nil && r.Completion.Message.Payload == int64(3), "receive of a topic")
	check(p.Unlisten("calls-topic") == nil, "unlisten")
	check(p.Send(me, "calls-topic", int64(4)) == nil, "send after unlisten")
	m, err := p.Receive()
	check(err == nil && m.Topic == "calls-topic" && m.Payload == int64(4), "the inbox after unlisten")
	p.Yield()
	x := p.ExecOp("native:nowhere", nil)
	p.WaitAny(x)
	check(x.Completion.Err != nil && x.Completion.Err.(*spindle.Error).Code == spindle.ErrNotFound, "exec of a missing entry")
	// Waits while another operation is outstanding (a receive nobody waits for here): a
	// wait-all ends when its timers do, and a wait-any ends with its own operation, the one
	// completed before it kept for later.
	pending := p.ReceiveOp("")
	t0 := time.Now()
	p.WaitAll(p.Timer(5*time.Millisecond), p.Timer(10*time.Millisecond))
	check(time.Since(t0) >= 10*time.Millisecond, "wait-all with another operation outstanding")
	early, late := p.Timer(time.Millisecond), p.Timer(20*time.Millisecond)
	check(p.WaitAny(late) == 0 && early.Done(), "wait-any past another completed operation")
	check(p.WaitAny() == -1, "wait-any of nothing")
	pending.Drop()
	child, err := p.Spawn(entry, nil, 0)
	if err != nil {
		check(false, "spawn")
		return bad
	}
	check(p.Link(child) == nil && p.Unlink(child) == nil, "link and unlink")
	// Monitored, unmonitored, monitored again: exactly one EXIT comes.
	check(p.Monitor(child) == nil && p.Unmonitor(child) == nil, "monitor and unmonitor")
	check(p.Monitor(child) == nil, "monitor")
	check(p.Cancel(child, "bye") == nil, "cancel")
	check(p.Terminate(child) == nil, "terminate")
	ev, err := p.NextEvent()
	canceled := err == nil && ev.Err != nil && ev.Err.(*spindle.Error).Code == spindle.ErrCanceled
	check(ev.From == child && canceled, "the EXIT of a terminated child")
	more := p.EventsOp()
	check(!more.Done(), "unmonitor left a monitor")
	more.Drop()
	return bad
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}
