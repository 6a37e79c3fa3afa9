-- A busy loop inside a callback of a library function (a table.sort comparator, the __index
-- of a gsub replacement table) cannot be yielded there, nor can a pattern match that runs for
-- ages inside one; each is stopped with an error after a bounded number of slices, and the
-- other processes on its worker go on.

local function sorter()
    local t = {}
    for i = 1, 100 do t[i] = i end
    table.sort(t, function() while true do end end)
end

local function gsubber()
    string.gsub("aaaa", "a", setmetatable({}, { __index = function() while true do end end }))
end

local function matcher()
    table.sort({ 3, 2, 1 }, function(a, b)
        string.find(("a"):rep(5000), ("a*"):rep(20) .. "b")
        return a < b
    end)
end

-- Catches the error, then loops in plain Lua: preempted as usual, and terminate stops it.
local function catcher(parent)
    local ok, err = pcall(table.sort, { 3, 2, 1 }, function() while true do end end)
    process.send(parent, "caught", { ok = ok, err = tostring(err) })
    local n = 0
    while true do n = n + 1 end
end

local function echo()
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        process.send(m:from(), "pong", m:payload():data())
    end
end

local function main()
    local s = assert(process.spawn_monitored("test:unyielding.sorter", "test:main"))
    local g = assert(process.spawn_monitored("test:unyielding.gsubber", "test:main"))
    local mt = assert(process.spawn_monitored("test:unyielding.matcher", "test:main"))
    local e = assert(process.spawn_linked("test:unyielding.echo", "test:main"))
    local inbox = process.inbox()
    for i = 1, 50 do
        assert(process.send(e, "ping", i))
        local m = inbox:receive()
        assert(m:payload():data() == i)
    end
    local events = process.events()
    for _ = 1, 3 do
        local ev = events:receive()
        assert(ev.kind == process.event.EXIT and (ev.from == s or ev.from == g or ev.from == mt))
        local msg = ev.result.error:message()
        assert(msg:find("could not be preempted", 1, true), msg)
    end
    local c = assert(process.spawn_monitored("test:unyielding.catcher", "test:main", process.pid()))
    local caught = inbox:receive()
    assert(caught:topic() == "caught")
    local r = caught:payload():data()
    assert(r.ok == false and r.err:find("could not be preempted", 1, true), r.err)
    -- Looping in plain Lua now: the echo still answers, and terminate ends it.
    assert(process.send(e, "ping", 51))
    assert(inbox:receive():payload():data() == 51)
    assert(process.terminate(c))
    local ev = events:receive()
    assert(ev.from == c and ev.result.error:kind() == errors.CANCELED)
    return "ok"
end

return { main = main, sorter = sorter, gsubber = gsubber, matcher = matcher, catcher = catcher, echo = echo }
