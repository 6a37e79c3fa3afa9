-- Round trips between two processes, with a coroutine and timers on the side.
local time = require("time")

local function pong()
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        process.send(m:from(), "pong", m:payload():data())
    end
end

local function main()
    local p = assert(process.spawn_linked("test:ping_pong.pong", "test:main"))
    local ticks = 0
    local t = time.ticker("1ms")
    coroutine.spawn(function()
        while true do t:channel():receive(); ticks = ticks + 1 end
    end)
    local inbox = process.inbox()
    for i = 1, 3000 do
        process.send(p, "ping", { n = i, pad = string.rep("x", i % 50) })
        local m = inbox:receive()
        assert(m:payload():data().n == i, "round trip " .. i)
    end
    t:stop()
    return "ok"
end

return { main = main, pong = pong }
