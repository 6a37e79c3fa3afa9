local time = require("time")
-- A process in an endless loop neither starves the others on its worker nor escapes
-- terminate: preemption yields it back to the scheduler, in whichever of its
-- coroutines the loop runs.

local function spin()
    local n = 0
    while true do n = n + 1 end
end

-- Spins inside a user coroutine and inside pcall: preemption must pass through both.
local function spin_nested()
    local co = coroutine.wrap(function()
        pcall(function()
            local n = 0
            while true do n = n + 1 end
        end)
    end)
    co()
end

-- Spins in a coroutine of its own (coroutine.spawn) while its main coroutine waits.
local function spin_spawned()
    coroutine.spawn(function()
        local n = 0
        while true do n = n + 1 end
    end)
    process.inbox():receive()
end

local function echo()
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        process.send(m:from(), "pong", m:payload():data())
    end
end

local function main()
    -- A loop of receives that never wait (the messages are in the mailbox already) spends
    -- most of its instructions in the receive's own bookkeeping: preemption stops it there as
    -- anywhere else, and never takes it for a loop it cannot stop. (Before the spinners: it
    -- is about the loop, and would only keep them running longer.)
    local inbox = process.inbox()
    local me = process.pid()
    for i = 1, 100000 do assert(process.send(me, "many", i)) end
    for _ = 1, 99999 do inbox:receive() end
    assert(inbox:receive():payload():data() == 100000)
    -- A topic message the runtime hands over while a coroutine is preempted waits in the
    -- prelude until that coroutine has run; unlistened meanwhile, it goes to the inbox with
    -- the topic's other messages, not nowhere.
    local topic = assert(process.listen("held"))
    local got = {}
    coroutine.spawn(function() got[#got + 1] = topic:receive() end)
    coroutine.yield() -- the receive is outstanding
    assert(process.send(me, "held", "handed over while preempted"))
    local spin_until = time.now():unix_nano() + 30 * 1000000
    while time.now():unix_nano() < spin_until do end -- preempted here, more than once
    assert(process.unlisten(topic))
    local m = inbox:receive()
    assert(m:topic() == "held" and m:payload():data() == "handed over while preempted",
        tostring(m:payload():data()))
    assert(got[1] == nil, "the closed topic channel gave its receiver nothing")
    local spinners = {}
    for i = 1, 2 do
        spinners[#spinners + 1] = assert(process.spawn_monitored("test:preemption.spin", "test:main"))
        spinners[#spinners + 1] = assert(process.spawn_monitored("test:preemption.spin_nested", "test:main"))
        spinners[#spinners + 1] = assert(process.spawn_monitored("test:preemption.spin_spawned", "test:main"))
    end
    local e = assert(process.spawn_linked("test:preemption.echo", "test:main"))
    for i = 1, 50 do
        assert(process.send(e, "ping", i))
        local m = inbox:receive()
        assert(m:payload():data() == i)
    end
    for _, s in ipairs(spinners) do assert(process.terminate(s)) end
    for _ = 1, #spinners do
        local ev = process.events():receive()
        assert(ev.kind == process.event.EXIT and ev.result.error:kind() == errors.CANCELED)
    end
    return "ok"
end

return { main = main, spin = spin, spin_nested = spin_nested, spin_spawned = spin_spawned, echo = echo }
