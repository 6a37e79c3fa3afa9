-- Process-local channels, coroutine.spawn and select.
local function main()
    -- Unbuffered: a send blocks until a receiver takes it.
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
    end
    assert(#got == 3 and got[1] == 1 and got[3] == 3)
    assert(select(2, ch:receive()) == false, "receive on closed channel gives ok = false")
    assert(not pcall(ch.send, ch, 4), "send on closed channel errors")
    assert(not pcall(ch.close, ch), "double close errors")

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
    return "ok"
end

return { main = main }
