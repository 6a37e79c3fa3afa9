-- One process with several coroutines blocked on different things at once: a local channel,
-- a timer, the inbox and an exec. All of them complete, in the order their events come.
local time = require("time")

local function child(n)
    time.sleep("15ms")
    return n * 2
end

local function main()
    local order = channel.new(10)
    local local_ch = channel.new()
    coroutine.spawn(function()
        local v = local_ch:receive()
        order:send("channel " .. v)
    end)
    coroutine.spawn(function()
        time.sleep("30ms")
        order:send("timer")
        local_ch:send("after timer")
    end)
    coroutine.spawn(function()
        local msg = process.inbox():receive()
        order:send("inbox " .. msg:payload():data())
    end)
    coroutine.spawn(function()
        local r, err = process.exec("test:multi_wait.child", "test:main", 21)
        order:send("exec " .. tostring(r or err))
    end)
    process.send(process.pid(), "self", "hello")
    local seen = {}
    for _ = 1, 4 do seen[#seen + 1] = order:receive() end
    local s = table.concat(seen, ", ")
    local at = {}
    for i, what in ipairs(seen) do at[what] = i end
    assert(at["inbox hello"] and at["exec 42"] and at["timer"] and at["channel after timer"], s)
    -- Only causality is certain: the channel send happens after the timer fired.
    assert(at["timer"] < at["channel after timer"], s)
    return "ok"
end

return { main = main, child = child }
