-- Escape attempts. The attacker and its victims share one Lua state (the test host has a
-- single island); every attempt must fail or stay inside the attacker.

local function attempts()
    local results = {}
    local function try(name, f)
        local ok, err = pcall(f)
        results[#results + 1] = name .. "=" .. (ok and "allowed" or "denied")
        return ok, err
    end
    -- Shared library tables are read-only, even with rawset and setmetatable.
    try("string.upper", function() string.upper = function() return "pwned" end end)
    try("rawset string", function() rawset(string, "upper", function() return "pwned" end) end)
    try("rawset table", function() rawset(table, "insert", nil) end)
    try("setmetatable math", function() setmetatable(math, { __index = function() return 1 end }) end)
    try("process.send", function() process.send = nil end)
    try("process.registry", function() process.registry.lookup = nil end)
    try("coroutine.spawn", function() coroutine.spawn = nil end)
    try("utf8.char", function() utf8.char = function() return "pwned" end end)
    -- The string metatable is locked.
    assert(getmetatable("") == "locked")
    try("string metatable", function() getmetatable("").__index = {} end)
    -- Class metatables are not reachable through instances.
    local ch = channel.new()
    assert(getmetatable(ch) == "locked")
    assert(ch.__index == nil, "a channel hands out its metatable")
    try("channel methods", function() local m = ch.send; ch.__index.send = nil end)
    local _, err = process.send("nobody", "t", 1)
    assert(err.__index == nil)
    -- Privileged libraries are not there.
    assert(debug == nil and io == nil and package == nil and dofile == nil and loadfile == nil)
    assert(os.execute == nil and os.exit == nil and os.remove == nil and os.getenv == nil)
    assert(string.dump == nil)
    assert(not pcall(require, "io") and not pcall(require, "debug") and not pcall(require, "os"))
    local ok, perr = pcall(require, "io")
    assert(not ok and perr:kind() == errors.PERMISSION_DENIED, tostring(perr))
    assert(not pcall(collectgarbage, "collect") and not pcall(collectgarbage, "stop"))
    assert(type(collectgarbage("count")) == "number")
    -- load: text only, into my own globals.
    assert(load("\27Lua") == nil, "binary chunks are refused")
    assert(select(2, load("return 1", "x", "b")) ~= nil)
    load("leaked_by_load = true")()
    assert(leaked_by_load == true)
    -- My globals, including _G, are mine.
    mine = "attacker's"
    _G.print = function() end
    _G.pairs = nil
    -- The environment's metatable is locked.
    assert(getmetatable(_ENV) == "locked")
    try("detach env", function() setmetatable(_ENV, nil) end)
    -- Finalizers would run during a collection in whatever process is being stepped (or in
    -- none), unpreempted: no table of mine may get one, not even by adding `__gc` later.
    try("__gc finalizer", function() setmetatable({}, { __gc = function() end }) end)
    try("__gc marker", function()
        local mt = { __gc = false }
        setmetatable({}, mt)
        mt.__gc = function() end
    end)
    -- The prelude's objects keep their state where I cannot reach it: a changed field would be
    -- read (and called) by the process scheduler outside my coroutine.
    local time = require("time")
    local inbox = process.inbox()
    try("rawset inbox", function() rawset(inbox, "src", function() end) end)
    try("rawget inbox", function() return rawget(inbox, "recvq") end)
    try("next channel", function() return next(channel.new(1)) end)
    try("setmetatable channel", function() setmetatable(channel.new(), {}) end)
    local timer = time.timer("1h")
    try("rawset timer", function() rawset(timer, "_ch", channel.new()) end)
    try("rawget timer channel", function() return rawget(timer:channel(), "timer") end)
    timer:stop()
    local ticker = time.ticker("1h")
    try("rawset ticker", function() rawset(ticker, "_src", {}) end)
    ticker:stop()
    -- Values I yield to the process scheduler are compared raw: an `__eq` of mine must not run
    -- on the scheduler's thread.
    local outside = false
    local probe = setmetatable({}, { __eq = function()
        if not coroutine.isyieldable() then outside = true end
        return false
    end })
    coroutine.yield(probe)
    results[#results + 1] = "__eq in the scheduler=" .. (outside and "allowed" or "denied")
    return table.concat(results, ",")
end

-- Dies with an error object whose `__tostring` reports where it runs.
local function error_probe(parent)
    error(setmetatable({}, { __tostring = function()
        process.send(parent, "tostring_ran", coroutine.isyieldable())
        return "probe"
    end }))
end

local function victim()
    -- Runs after the attacker: everything it tried must be invisible here.
    assert(mine == nil and leaked_by_load == nil, "globals leaked between processes")
    assert(pairs ~= nil and print ~= nil)
    assert(string.upper("x") == "X" and ("y"):upper() == "Y")
    assert(type(table.insert) == "function" and math.floor(1.5) == 1)
    assert(type(process.send) == "function" and type(process.registry.lookup) == "function")
    assert(type(coroutine.spawn) == "function")
    assert(utf8.char(72, 228) == "H\xC3\xA4" and utf8.len("H\xC3\xA4") == 2)
    local ch = channel.new(1)
    ch:send(1)
    assert(ch:receive() == 1)
    return "intact"
end

local function main()
    local r, err = process.exec("test:isolation.attempts", "test:main")
    assert(r, tostring(err))
    assert(not r:find("allowed"), "an escape attempt succeeded: " .. r)
    local v, verr = process.exec("test:isolation.victim", "test:main")
    assert(v == "intact", tostring(verr))
    -- The error object's `__tostring` may run (to describe the error), but only as the dying
    -- process's own preemptible code, never on the scheduler's thread.
    local _, perr = process.exec("test:isolation.error_probe", "test:main", process.pid())
    assert(perr and perr:message() == "probe", tostring(perr))
    local m = process.inbox():receive()
    assert(m:topic() == "tostring_ran" and m:payload():data() == true, "__tostring ran outside the process")
    return "ok"
end

return { main = main, attempts = attempts, victim = victim, error_probe = error_probe }
