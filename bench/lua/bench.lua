-- Spindle's benchmark workloads written in Lua: the same as bench/src/*.rs and
-- bench/erlang/spindle_bench.erl. Each `run_*` function is the measuring process; the Rust
-- harness (bench/src/lua.rs) runs it and prints what it returns.
local time = require("time")

local HOST = "bench:lua"

local function seconds_since(t0)
    return time.now():sub(t0) / 1e9
end

local function receive_n(n)
    local inbox = process.inbox()
    for _ = 1, n do inbox:receive() end
end

-- spawn_exit: N children each send `done` to the parent and exit.
local function child(parent)
    process.send(parent, "done", true)
end

local function run_spawn_exit(n)
    local me = process.pid()
    local t0 = time.now()
    for _ = 1, n do
        assert(process.spawn("bench:lua.child", HOST, me))
    end
    receive_n(n)
    return n / seconds_since(t0)
end

-- ring: R nodes pass one token M rounds.
local function node(parent)
    local inbox = process.inbox()
    local next_pid = inbox:receive():payload():data()
    process.send(parent, "ready", true)
    while true do
        local left = inbox:receive():payload():data()
        if left == 0 then
            process.send(parent, "ring_done", true)
        else
            process.send(next_pid, "token", left - 1)
        end
    end
end

local function run_ring(r, hops)
    local me = process.pid()
    local nodes = {}
    for i = 1, r do nodes[i] = assert(process.spawn_linked("bench:lua.node", HOST, me)) end
    for i = 1, r do process.send(nodes[i], "next", nodes[i % r + 1]) end
    receive_n(r)
    local t0 = time.now()
    process.send(nodes[1], "token", hops)
    receive_n(1)
    local rate = hops / seconds_since(t0)
    for i = 1, r do process.unlink(nodes[i]); process.terminate(nodes[i]) end
    return rate
end

-- ping_pong: K round trips.
local function pong()
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        process.send(m:from(), "pong", m:payload():data())
    end
end

local function run_ping_pong(k)
    local p = assert(process.spawn("bench:lua.pong", HOST))
    local inbox = process.inbox()
    local t0 = time.now()
    for i = 1, k do
        process.send(p, "ping", i)
        inbox:receive()
    end
    local us = seconds_since(t0) * 1e6 / k
    process.terminate(p)
    return us
end

-- idle_memory: N processes blocked in a receive; the Rust side reads VmRSS. The parent keeps
-- their pids, as the Rust and Erlang sides keep theirs in a list; the children outlive it.
local function idle(parent)
    process.send(parent, "ready", true)
    process.inbox():receive()
end

local function run_idle(n)
    local me = process.pid()
    local pids = {}
    for i = 1, n do pids[i] = assert(process.spawn("bench:lua.idle", HOST, me)) end
    receive_n(n)
    process.registry.register("lua_idle_ready")
    process.inbox():receive() -- until terminated
end

-- fairness: B busy loops, then K timed round trips between two other processes.
local function busy(parent)
    process.send(parent, "busy", true)
    local x = 0
    while true do x = (x * 31 + 7) % 1000003 end
end

local function run_fairness(b, k)
    local me = process.pid()
    local busies = {}
    for i = 1, b do busies[i] = assert(process.spawn("bench:lua.busy", HOST, me)) end
    receive_n(b)
    time.sleep("100ms")
    local p = assert(process.spawn("bench:lua.pong", HOST))
    local inbox = process.inbox()
    local rtts = {}
    for i = 1, k do
        local t0 = time.now()
        process.send(p, "ping", i)
        inbox:receive()
        rtts[i] = time.now():sub(t0) / 1000
    end
    for i = 1, b do process.terminate(busies[i]) end
    process.terminate(p)
    local sum = 0
    for i = 1, k do sum = sum + rtts[i] end
    table.sort(rtts)
    return { mean = sum / k, p99 = rtts[math.max(1, math.ceil(k * 0.99))] }
end

return {
    child = child, node = node, pong = pong, idle = idle, busy = busy,
    run_spawn_exit = run_spawn_exit, run_ring = run_ring, run_ping_pong = run_ping_pong,
    run_idle = run_idle, run_fairness = run_fairness,
}
