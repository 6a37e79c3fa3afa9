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
    return table.concat(results, ",")
end

local function victim()
    -- Runs after the attacker: everything it tried must be invisible here.
    assert(mine == nil and leaked_by_load == nil, "globals leaked between processes")
    assert(pairs ~= nil and print ~= nil)
    assert(string.upper("x") == "X" and ("y"):upper() == "Y")
    assert(type(table.insert) == "function" and math.floor(1.5) == 1)
    assert(type(process.send) == "function" and type(process.registry.lookup) == "function")
    assert(type(coroutine.spawn) == "function")
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
    return "ok"
end

return { main = main, attempts = attempts, victim = victim }
