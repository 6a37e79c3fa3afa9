-- The time module: sleep, after, timer, ticker, now, durations.
local time = require("time")

local function main()
    local t0 = time.now()
    assert(math.type(t0:unix_nano()) == "integer")
    -- Wall-clock time: nanoseconds since the Unix epoch, as os.time counts seconds.
    assert(math.abs(t0:unix_nano() // 1000000000 - os.time()) <= 2, tostring(t0:unix_nano()))
    time.sleep("20ms")
    local dt = time.now():sub(t0)
    assert(dt >= 20 * 1000 * 1000, dt)

    assert(time.duration("1.5s") == 1500000000)
    assert(time.duration("250ms") == 250000000)
    assert(time.duration("2m") == 120000000000)
    assert(time.duration("1m30s") == 90000000000)
    assert(time.duration(42) == 42)
    assert(not pcall(time.duration, "soon"))
    assert(not pcall(time.sleep, "5 parsecs"))

    -- after: a channel that fires once.
    local a = time.after("10ms")
    local v, ok = a:receive()
    assert(ok and v:unix_nano() >= t0:unix_nano())

    -- A stopped timer never fires; a reset one fires after the new duration.
    local tm = time.timer("10ms")
    assert(tm:stop() == true)
    local r = channel.select { tm:channel():case_receive(), time.after("40ms"):case_receive() }
    assert(r.channel ~= tm:channel(), "a stopped timer fired")
    tm:reset("5ms")
    r = channel.select { tm:channel():case_receive(), time.after("2s"):case_receive() }
    assert(r.channel == tm:channel(), "a reset timer did not fire")

    -- A time a timer put in its channel and nobody received goes with a stop or a reset: no
    -- receive after either gets a stale one, and the channel never holds two.
    tm = time.timer("1ms")
    time.sleep("10ms")
    tm:reset("1ms")
    time.sleep("10ms")
    v, ok = tm:channel():receive()
    assert(ok and v:unix_nano() > t0:unix_nano())
    r = channel.select { tm:channel():case_receive(), default = true }
    assert(r.default, "a reset timer's channel held a second, stale time")
    tm = time.timer("1ms")
    time.sleep("10ms")
    tm:stop()
    r = channel.select { tm:channel():case_receive(), default = true }
    assert(r.default, "a stopped timer's channel held a stale time")

    -- A ticker ticks until stopped.
    local tk = time.ticker("5ms")
    for _ = 1, 3 do tk:channel():receive() end
    tk:stop()
    r = channel.select { tk:channel():case_receive(), time.after("30ms"):case_receive() }
    -- At most one tick may have been buffered before stop.
    if r.channel == tk:channel() then
        r = channel.select { tk:channel():case_receive(), time.after("30ms"):case_receive() }
        assert(r.channel ~= tk:channel(), "a stopped ticker kept ticking")
    end

    -- Every call also takes a duration as an integer number of nanoseconds.
    local ms = 1000 * 1000
    local t1 = time.now()
    time.sleep(15 * ms)
    assert(time.now():sub(t1) >= 15 * ms)
    v, ok = time.after(5 * ms):receive()
    assert(ok and v:unix_nano() - t1:unix_nano() >= 20 * ms)
    tm = time.timer(3600 * 1000 * ms)
    tm:reset(5 * ms)
    r = channel.select { tm:channel():case_receive(), time.after(2000 * ms):case_receive() }
    assert(r.channel == tm:channel(), "a timer reset to integer nanoseconds did not fire")
    local t2 = time.now()
    tk = time.ticker(4 * ms)
    for _ = 1, 3 do tk:channel():receive() end
    tk:stop()
    assert(time.now():sub(t2) >= 12 * ms, "three ticks of 4 ms came too soon")
    return "ok"
end

return { main = main }
