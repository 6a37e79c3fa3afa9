-- math.random and math.randomseed are each process's own (the test runs this on one island).

local function draws(n, m)
    local t = {}
    for i = 1, n do t[i] = math.random(m) end
    return t
end

local function main()
    -- A seed gives the same draws again, in each range form.
    math.randomseed(7)
    local a = draws(5, 1000)
    local f = math.random()
    local r = math.random(-3, 3)
    math.randomseed(7)
    local b = draws(5, 1000)
    assert(table.concat(a, " ") == table.concat(b, " "), "a seed repeats its draws")
    assert(math.random() == f and math.random(-3, 3) == r)
    assert(f >= 0 and f < 1 and r >= -3 and r <= 3)
    for _, v in ipairs(a) do assert(math.type(v) == "integer" and v >= 1 and v <= 1000) end
    assert(math.type(math.random(0)) == "integer")
    assert(not pcall(math.random, 2, 1), "an empty interval is an error")
    assert(not pcall(math.random, 0.5), "a range must be an integer")
    -- Another process on this island seeds and draws between two of mine: mine go on as the
    -- seed said.
    math.randomseed(7)
    local first = math.random(1000)
    local child = assert(process.spawn("test:random.meddle", "test:main", process.pid()))
    local done = process.inbox():receive()
    assert(done:from() == child and done:payload():data() == "seeded")
    assert(first == a[1])
    local rest = draws(4, 1000)
    for i = 1, 4 do assert(rest[i] == a[i + 1], "another process's seed changed my draws") end
    return "ok"
end

-- Seeds its own generator and draws from it.
local function meddle(parent)
    math.randomseed(7)
    for _ = 1, 100 do math.random(1000) end
    process.send(parent, "done", "seeded")
end

return { main = main, meddle = meddle }
