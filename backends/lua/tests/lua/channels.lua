-- Process-local channels, coroutine.spawn and select.
local time = require("time")
local function main()
    -- Unbuffered: a send blocks until a receiver takes it, so the sender never runs more
    -- than one value ahead of the receiver.
    local ch = channel.new()
    local log = {}
    coroutine.spawn(function()
        for i = 1, 3 do ch:send(i); log[#log + 1] = "sent " .. i end
        ch:close()
    end)
    local got = {}
    while true do
        local v, ok = ch:receive()
        if not ok then break end
        got[#got + 1] = v
        log[#log + 1] = "got " .. v
    end
    assert(#got == 3 and got[1] == 1 and got[3] == 3)
    local at = {}
    for i, entry in ipairs(log) do at[entry] = i end
    for i = 1, 2 do
        assert(at["got " .. i] < at["sent " .. (i + 1)], table.concat(log, ", "))
    end
    local closed_v, closed_ok = ch:receive()
    assert(closed_v == nil and closed_ok == false, "receive on a closed channel gives nil, false")
    assert(not pcall(ch.send, ch, 4), "send on closed channel errors")
    assert(not pcall(ch.close, ch), "double close errors")

    -- An unbuffered send waits for its receiver: a select's send case is not ready without
    -- one, and a sender goes on only once the receive has taken its value.
    local u = channel.new(0)
    assert(channel.select({ u:case_send(1), default = true }).default,
        "an unbuffered send with nobody receiving is ready")
    local steps = {}
    coroutine.spawn(function()
        u:send("x")
        steps[#steps + 1] = "sent"
    end)
    coroutine.yield() -- the sender runs and waits
    assert(#steps == 0, "an unbuffered send went on without a receiver")
    steps[#steps + 1] = "receiving"
    assert(u:receive() == "x")
    coroutine.yield() -- the sender, woken by the receive, goes on
    assert(steps[1] == "receiving" and steps[2] == "sent", table.concat(steps, ","))
    -- A closed buffered channel still hands out what it holds, then nil, false.
    local held = channel.new(2)
    held:send("p")
    held:send("q")
    held:close()
    local h1, k1 = held:receive()
    local h2, k2 = held:receive()
    local h3, k3 = held:receive()
    assert(h1 == "p" and k1 and h2 == "q" and k2, "a closed channel dropped its buffered values")
    assert(h3 == nil and k3 == false)

    -- coroutine.spawn passes its extra arguments on, nil holes and all.
    local seen = channel.new(1)
    coroutine.spawn(function(...) seen:send(table.pack(...)) end, 1, nil, "three", 4.5, { five = 5 })
    local args = seen:receive()
    assert(args.n == 5 and args[1] == 1 and args[2] == nil and args[3] == "three")
    assert(args[4] == 4.5 and math.type(args[4]) == "float" and args[5].five == 5)
    coroutine.spawn(function(a, b) seen:send({ a, b }) end, "x", "y")
    local two_args = seen:receive()
    assert(two_args[1] == "x" and two_args[2] == "y")
    -- Exactly the arguments given, however few (none, trailing nils), and a plain yield at a
    -- coroutine's top returns nothing.
    for _, given in ipairs({ table.pack(), table.pack(nil), table.pack("a", nil), table.pack(1, 2, 3),
        table.pack(nil, nil, nil, nil) }) do
        coroutine.spawn(function(...)
            local before = select("#", ...)
            seen:send({ before, select("#", coroutine.yield()) })
        end, table.unpack(given, 1, given.n))
        local counts = seen:receive()
        assert(counts[1] == given.n and counts[2] == 0, given.n .. ": " .. counts[1] .. ", " .. counts[2])
    end

    -- Buffered: sends up to the size do not block.
    local b = channel.new(2)
    b:send("a"); b:send("b")
    local r = channel.select { b:case_send("c"), default = true }
    assert(r.default, "a full buffer makes the send case not ready")
    assert(b:receive() == "a")
    r = channel.select { b:case_send("c"), default = true }
    assert(r.channel == b and r.ok)
    assert(b:receive() == "b" and b:receive() == "c")

    -- Select waits for the first ready case.
    local x, y = channel.new(), channel.new()
    coroutine.spawn(function() y:send("from y") end)
    r = channel.select { x:case_receive(), y:case_receive() }
    assert(r.channel == y and r.value == "from y" and r.ok, tostring(r.value))
    -- With several cases ready, select picks one at random: in a loop, none is starved.
    local p, q = channel.new(200), channel.new(200)
    for i = 1, 200 do p:send(i); q:send(i) end
    local from_q = 0
    for _ = 1, 200 do
        if channel.select({ p:case_receive(), q:case_receive() }).channel == q then
            from_q = from_q + 1
        end
    end
    assert(from_q > 0 and from_q < 200, "one ready case was always chosen over the other")
    -- Select with default when nothing is ready.
    r = channel.select { x:case_receive(), default = true }
    assert(r.default == true)
    -- A closed channel is ready with ok = false.
    x:close()
    r = channel.select { x:case_receive() }
    assert(r.channel == x and r.ok == false)

    -- Many coroutines blocked on one channel are all served.
    local work, done = channel.new(), channel.new(10)
    for w = 1, 4 do
        coroutine.spawn(function()
            while true do
                local v, ok = work:receive()
                if not ok then return end
                done:send(v * 10 + w - w)
            end
        end)
    end
    for i = 1, 8 do work:send(i) end
    work:close()
    local sum = 0
    for _ = 1, 8 do sum = sum + done:receive() end
    assert(sum == 360, sum)
    assert(not pcall(channel.new, -1) and not pcall(channel.new, 1.5))

    -- A receive returns the value and `ok`, no more, whether it waited or not; on what is not
    -- a channel it fails at the caller's line.
    local two = channel.new(1)
    two:send("now")
    assert(select("#", two:receive()) == 2)
    coroutine.spawn(function() two:send("later") end)
    assert(select("#", two:receive()) == 2)
    local ok, err = pcall(function() return two.receive({}) end)
    assert(not ok and err:find("channels.lua:%d+: not a channel"), err)

    -- A message waiting in the mailbox makes a receive case on the inbox ready: select does
    -- not take the default then.
    local inbox = process.inbox()
    assert(process.send(process.pid(), "t", "waiting"))
    r = channel.select { inbox:case_receive(), default = true }
    assert(not r.default and r.channel == inbox and r.ok, "select took the default over a waiting message")
    assert(r.value:payload():data() == "waiting")
    -- The same for a listened topic and for events.
    local topic = assert(process.listen("news"))
    assert(process.send(process.pid(), "news", 7))
    r = channel.select { channel.new():case_receive(), topic:case_receive(), default = true }
    assert(r.channel == topic and r.value == 7, "select took the default over a waiting topic message")
    r = channel.select { topic:case_receive(), default = true }
    assert(r.default, "nothing waits any more")
    assert(process.unlisten(topic))
    -- A select that waited on the inbox left its receive outstanding; a message that completed
    -- it since is still seen by a select with default.
    local other = channel.new()
    coroutine.spawn(function() other:send("first") end)
    r = channel.select { inbox:case_receive(), other:case_receive() }
    assert(r.channel == other and r.value == "first")
    assert(process.send(process.pid(), "t", "late"))
    r = channel.select { inbox:case_receive(), default = true }
    assert(not r.default and r.value:payload():data() == "late", "select missed a completed receive")
    r = channel.select { inbox:case_receive(), default = true }
    assert(r.default)
    local child = assert(process.spawn_monitored("test:channels.quick", "test:main"))
    local ev = process.events():receive()
    assert(ev.kind == process.event.EXIT and ev.from == child)
    -- A second child's EXIT: wait until it is in the mailbox (its parent hears from it first).
    local child2 = assert(process.spawn_monitored("test:channels.quick", "test:main", process.pid()))
    assert(inbox:receive():topic() == "bye")
    local deadline = 0
    repeat
        r = channel.select { process.events():case_receive(), default = true }
        deadline = deadline + 1
        if r.default then coroutine.yield() end
    until not r.default or deadline > 100000
    assert(not r.default and r.value.from == child2, "select took the default over a waiting event")

    -- Coroutines waiting in the inbox at once, in a plain receive or in a select, are served
    -- in the order they began to wait; so is one that waits alone after them. (Which message
    -- each one got shows the order; the order they report in is the order they run after being
    -- woken, which a preemption may change.)
    local served = channel.new(4)
    local function receiver(name)
        coroutine.spawn(function() served:send(name .. inbox:receive():payload():data()) end)
    end
    receiver("a")
    coroutine.spawn(function()
        served:send("b" .. channel.select({ inbox:case_receive() }).value:payload():data())
    end)
    receiver("c")
    coroutine.yield() -- the three start waiting
    for i = 1, 3 do assert(process.send(process.pid(), "t", i)) end
    receiver("d")
    assert(process.send(process.pid(), "t", 4))
    local order = {}
    for i = 1, 4 do order[i] = served:receive() end
    table.sort(order)
    assert(table.concat(order, " ") == "a1 b2 c3 d4", table.concat(order, " "))

    -- A topic channel a select waited on does not keep taking messages for nobody once the
    -- select ended through another case: one sent after stays in the mailbox, and unlisten
    -- hands it to the inbox.
    local news = assert(process.listen("later news"))
    local other_case = channel.new()
    coroutine.spawn(function() other_case:send(true) end)
    r = channel.select { news:case_receive(), other_case:case_receive() }
    assert(r.channel == other_case)
    assert(process.send(process.pid(), "later news", "kept"))
    time.sleep("5ms") -- (what has come for this process is handed out meanwhile)
    assert(process.unlisten(news))
    local kept = inbox:receive()
    assert(kept:topic() == "later news" and kept:payload():data() == "kept", "unlisten lost a message")
    return "ok"
end

-- Exits at once (after a word to `parent`, if given).
local function quick(parent)
    if parent then process.send(parent, "bye", true) end
end

return { main = main, quick = quick }
