-- Spawning, messaging, the inbox, pids.
local function echo()
    local msg = process.inbox():receive()
    process.send(msg:from(), "echo", msg:payload():data())
    return "echoed"
end

local function main()
    local me = process.pid()
    assert(type(me) == "string" and me:match("^{.+|0x%x+}$"), me)
    -- An echo child waits for a message: ended by `terminate` before it gets one. (Not a
    -- child running `main`: one preempted between its own spawn and terminate would leave a
    -- grandchild doing the same, a chain without end.)
    local pid, err = process.spawn("test:basics.echo", "test:main")
    assert(pid, tostring(err))
    process.terminate(pid)
    local child = assert(process.spawn_monitored("test:basics.echo", "test:main"))
    assert(process.send(child, "ping", { n = 42, list = { 1, 2.5, "three" } }))
    local reply = process.inbox():receive()
    assert(reply:topic() == "echo", reply:topic())
    assert(reply:from() == child)
    local data = reply:payload():data()
    assert(data.n == 42 and math.type(data.n) == "integer")
    assert(data.list[2] == 2.5 and math.type(data.list[2]) == "float")
    assert(data.list[3] == "three")
    local ev = process.events():receive()
    assert(ev.kind == process.event.EXIT, ev.kind)
    assert(ev.from == child)
    assert(ev.result.value == "echoed", tostring(ev.result.value))
    return "ok"
end

return { main = main, echo = echo }
