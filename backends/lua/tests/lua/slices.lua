-- Preemption by time lands anywhere: in a coroutine, in the middle of the prelude's channel
-- bookkeeping, in the scheduler's own code. `churn` passes values between its coroutines
-- through local channels without ever waiting for the runtime, so its whole exchange runs in
-- steps that only the time slice ends; nothing is lost or duplicated, and meanwhile a process
-- on the same worker keeps answering.

local N = 200000

local function churn(parent)
    local a, b = channel.new(0), channel.new(3)
    coroutine.spawn(function()
        for i = 1, N do a:send(i) end
        a:close()
    end)
    coroutine.spawn(function()
        while true do
            local v, ok = a:receive()
            if not ok then break end
            b:send(v)
        end
        b:close()
    end)
    local sum, count = 0, 0
    while true do
        local v, ok = b:receive()
        if not ok then break end
        sum, count = sum + v, count + 1
    end
    process.send(parent, "done", { sum = sum, count = count })
end

local function echo()
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        process.send(m:from(), "pong", m:payload():data())
    end
end

local function main()
    local me = process.pid()
    local e = assert(process.spawn_linked("test:slices.echo", "test:main"))
    local churners = {}
    for i = 1, 2 do churners[i] = assert(process.spawn_linked("test:slices.churn", "test:main", me)) end
    local inbox = process.inbox()
    local pongs, done = 0, 0
    assert(process.send(e, "ping", 1))
    while done < #churners do
        local m = inbox:receive()
        if m:topic() == "pong" then
            pongs = pongs + 1
            assert(m:payload():data() == pongs)
            assert(process.send(e, "ping", pongs + 1))
        else
            local r = m:payload():data()
            assert(r.count == N, "count " .. r.count)
            assert(r.sum == N * (N + 1) // 2, "sum " .. r.sum)
            done = done + 1
        end
    end
    assert(pongs > 0, "the echo answered while the churners ran")
    return "ok"
end

return { main = main, churn = churn, echo = echo }
