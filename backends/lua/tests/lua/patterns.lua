-- Pattern matching is preempted like Lua code. A match that backtracks for ages (each of these
-- would run for longer than anyone waits) holds neither the other processes of its worker nor
-- `terminate`; a gsub replacement function runs as process code, so it may wait for a message.

local RUN = ("a"):rep(5000)
local AGES = ("a*"):rep(20) .. "b"

local function finder() string.find(RUN, AGES) end
local function matcher() RUN:match(("a-"):rep(20) .. "b") end
local function iterator()
    for _ in RUN:gmatch(("a?"):rep(40) .. ("a"):rep(30) .. "b") do end
end
local function substituter() RUN:gsub(AGES, "x") end

local function waiting_gsub(parent)
    local inbox = process.inbox()
    local out, n = ("a-b-c"):gsub("%a", function(c)
        process.send(parent, "letter", c)
        return inbox:receive():payload():data()
    end)
    process.send(parent, "gsub", { out = out, n = n })
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
    local stuck = {}
    for _, name in ipairs({ "finder", "matcher", "iterator", "substituter" }) do
        stuck[#stuck + 1] = assert(process.spawn_monitored("test:patterns." .. name, "test:main"))
    end
    local e = assert(process.spawn_linked("test:patterns.echo", "test:main"))
    local inbox = process.inbox()
    -- One worker: the echo answers only if the matches give way.
    for i = 1, 50 do
        assert(process.send(e, "ping", i))
        assert(inbox:receive():payload():data() == i)
    end
    local events = process.events()
    for _, pid in ipairs(stuck) do
        assert(process.terminate(pid))
        local ev = events:receive()
        assert(ev.kind == process.event.EXIT and ev.from == pid, tostring(ev.from))
        assert(ev.result.error:kind() == errors.CANCELED, tostring(ev.result.error))
    end
    assert(process.spawn_linked("test:patterns.waiting_gsub", "test:main", me))
    for _ = 1, 3 do
        local m = inbox:receive()
        assert(m:topic() == "letter")
        assert(process.send(m:from(), "upper", m:payload():data():upper()))
    end
    local r = inbox:receive():payload():data()
    assert(r.out == "A-B-C" and r.n == 3, r.out)
    return "ok"
end

return {
    main = main, finder = finder, matcher = matcher, iterator = iterator,
    substituter = substituter, waiting_gsub = waiting_gsub, echo = echo,
}
