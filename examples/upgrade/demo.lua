-- Starts a counter at version 1, upgrades it to version 2 while it runs, and shows that the
-- pid and the count survive.
local function main()
    local counter = process.spawn_monitored("upgrade:counter.v1", "upgrade:processes")
    local replies = process.listen("count")
    local function inc()
        process.send(counter, "inc", nil)
        print("[demo] " .. counter .. " says " .. replies:receive())
    end
    inc(); inc(); inc()
    print("[demo] upgrading " .. counter .. " to counter.v2")
    process.send(counter, "upgrade", nil)
    inc(); inc()
    process.send(counter, "stop", nil)
    local ev = process.events():receive()
    print(string.format("[demo] %s ended with count %d", ev.from, ev.result.value))
    return "ok"
end

return { main = main }
