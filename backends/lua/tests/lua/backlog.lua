-- A process far behind its inbox (hundreds of messages waiting) gets every message once and
-- in order, however it mixes its ways of receiving: plain receives, a select with a default,
-- listening to a topic, waiting on a timer, a coroutine of its own.
local time = require("time")

local function main()
    local me = process.pid()
    local inbox = process.inbox()
    for i = 1, 300 do assert(process.send(me, "n", i)) end
    local next = 1
    local function take(m)
        local n = m:payload():data()
        assert(n == next, "expected " .. next .. ", got " .. tostring(n))
        next = next + 1
    end
    for _ = 1, 10 do take(inbox:receive()) end
    local r = channel.select { inbox:case_receive(), default = true }
    assert(not r.default, "a message waits")
    take(r.value)
    -- Listening moves the waiting messages of that topic, none of which are `n`.
    local other = assert(process.listen("other"))
    take(inbox:receive())
    assert(process.send(me, "other", "x"))
    assert(other:receive() == "x")
    take(inbox:receive())
    assert(process.unlisten(other))
    -- A wait on something else ends the step.
    time.sleep("1ms")
    take(inbox:receive())
    -- A coroutine of the process receives the next ones.
    local done = channel.new()
    coroutine.spawn(function()
        for _ = 1, 5 do take(inbox:receive()) end
        done:send(true)
    end)
    assert(done:receive())
    -- Later messages come after every earlier one.
    for i = 301, 400 do assert(process.send(me, "n", i)) end
    while next <= 400 do take(inbox:receive()) end
    r = channel.select { inbox:case_receive(), default = true }
    assert(r.default, "each message once")
    return "ok"
end

return { main = main }
