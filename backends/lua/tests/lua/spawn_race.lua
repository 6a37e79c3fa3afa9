-- Spawners on different islands that spawn onto each other's islands at once, each the first
-- process of a new code version there (see `spawns_across_islands_never_deadlock`).
local function child()
    return "child"
end

local function spawner(n)
    for _ = 1, n do
        assert(process.spawn_monitored("test:spawn_race.child", "test:main"))
    end
    local events = process.events()
    for _ = 1, n do
        local ev = events:receive()
        assert(ev.kind == process.event.EXIT and ev.result.value == "child", tostring(ev.kind))
    end
    return "ok"
end

return { child = child, spawner = spawner }
