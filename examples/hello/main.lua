-- The demo: spawn workers, message them, let one crash and restart it, then wind down.
local time = require("time")

local HOST = "hello:processes"

local function start_worker(n)
    local pid, err = process.spawn_monitored("hello:worker", HOST, n)
    if not pid then error(err) end
    print(string.format("[main] worker %d started as %s", n, pid))
    return pid
end

local function show(r)
    print(string.format("[main] worker %d: %d squared is %d (%s)", r.worker, r.x, r.square, r.greeting))
end

local function main(count)
    print("[main] running as " .. process.pid())
    -- `requires` orders the starts, but the greeter registers its name in its own first step,
    -- which may come after ours: the workers ask for it by name, so wait until it answers to it.
    while not process.registry.lookup("greeter") do time.sleep("1ms") end
    local workers = {}
    for n = 1, count do workers[n] = start_worker(n) end

    local results = process.listen("result")
    for n = 1, count do process.send(workers[n], "job", n * 10) end
    for _ = 1, count do show(results:receive()) end

    -- Let it crash: the worker fails, we see its EXIT event and start a new one.
    print("[main] asking worker 2 to crash")
    process.send(workers[2], "crash", nil)
    local ev = process.events():receive()
    if ev.kind == process.event.EXIT and ev.result.error then
        print("[main] worker 2 failed (" .. ev.result.error:message() .. "); restarting it")
        workers[2] = start_worker(2)
    end
    process.send(workers[2], "job", 7)
    show(results:receive())

    -- Wind down: workers return, the greeter is asked to stop.
    for _, pid in ipairs(workers) do process.send(pid, "stop", nil) end
    for _ = 1, count do process.events():receive() end
    time.sleep("50ms")
    process.cancel("greeter")
    print("[main] done")
    return "ok"
end

return { main = main }
