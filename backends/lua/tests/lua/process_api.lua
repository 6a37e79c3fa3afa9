-- The process API: spawn variants, exec, send and its errors, listen, events, links and
-- monitors, options, cancel vs terminate, the name registry, error objects.
local time = require("time")

local H = "test:main"
local E = "test:process_api."

local function wait_forever()
    process.inbox():receive()
end

local function fail_soon(msg)
    time.sleep("5ms")
    error(errors.new(errors.TIMEOUT, msg or "gave up"))
end

local function crash()
    error("plain crash")
end

-- Returns its argument; asked for "a function", returns one (which no result can hold).
local function return_value(v)
    if v == "a function" then return function() end end
    return v
end

local function polite()
    local ev = process.events():receive()
    assert(ev.kind == process.event.CANCEL)
    return "cleaned up: " .. tostring(ev.reason)
end

local function topics()
    local ch = assert(process.listen("special"))
    local v = ch:receive()
    local other = process.inbox():receive()
    assert(process.unlisten(ch))
    return v .. "+" .. other:topic()
end

local function next_event(kind)
    local ev = process.events():receive()
    assert(ev.kind == kind, "expected " .. kind .. ", got " .. ev.kind)
    return ev
end

local function main()
    -- Error objects.
    local _, err = process.send("no such name", "t", 1)
    assert(err and err:kind() == errors.NOT_FOUND, tostring(err))
    assert(type(err:message()) == "string" and tostring(err):find("NOT_FOUND"), tostring(err))
    _, err = process.send(process.pid(), "@reserved", 1)
    assert(err:kind() == errors.INVALID)
    _, err = process.send(process.pid(), "t", function() end)
    assert(err:kind() == errors.INVALID, "functions cannot be sent")
    _, err = process.spawn("test:nope", H)
    assert(err:kind() == errors.NOT_FOUND)
    _, err = process.spawn(E .. "return_value", "no:host")
    assert(err:kind() == errors.NOT_FOUND)
    for _, bad in ipairs({ { 42, H }, { "no-colon", H }, { E .. "return_value", 7 } }) do
        _, err = process.spawn(bad[1], bad[2])
        assert(err and err:kind() == errors.INVALID, tostring(err))
    end
    _, err = process.spawn(E .. "return_value", H, function() end)
    assert(err and err:kind() == errors.INVALID, "functions cannot be spawn arguments")
    -- Spawning one entry after another starts each (the last id parsed is not reused blindly).
    for _, f in ipairs({ "return_value", "crash", "return_value", "crash" }) do
        local p = assert(process.spawn_monitored(E .. f, H, f))
        local ev = next_event(process.event.EXIT)
        assert(ev.from == p)
        if f == "crash" then
            assert(ev.result.error, f)
        else
            assert(ev.result.value == f, f)
        end
    end
    for _, k in ipairs({ "NOT_FOUND", "ALREADY_EXISTS", "INVALID", "PERMISSION_DENIED",
        "UNAVAILABLE", "INTERNAL", "CANCELED", "TIMEOUT", "RATE_LIMITED", "UNKNOWN" }) do
        assert(errors[k] == k)
    end

    -- exec: value and error.
    local v, e = process.exec(E .. "return_value", H, { deep = { 1, 2 } })
    assert(e == nil and v.deep[2] == 2)
    v, e = process.exec(E .. "fail_soon", H, "too slow")
    assert(v == nil and e:kind() == errors.TIMEOUT and e:message() == "too slow", tostring(e))
    v, e = process.exec(E .. "crash", H)
    assert(v == nil and e:kind() == errors.UNKNOWN and e:message():find("plain crash"), tostring(e))
    v, e = process.exec(E .. "return_value", H, "a function")
    assert(v == nil and e:kind() == errors.INVALID and e:message():find("return value"), tostring(e))

    -- spawn_monitored: EXIT with value, then with error.
    local p = assert(process.spawn_monitored(E .. "return_value", H, 7))
    local ev = next_event(process.event.EXIT)
    assert(ev.from == p and ev.result.value == 7)
    p = assert(process.spawn_monitored(E .. "fail_soon", H))
    ev = next_event(process.event.EXIT)
    assert(ev.from == p and ev.result.error:kind() == errors.TIMEOUT)

    -- Links: with trap_links a linked crash arrives as LINK_DOWN; a normal exit sends nothing.
    assert(process.set_options({ trap_links = true }))
    assert(process.get_options().trap_links == true)
    p = assert(process.spawn_linked(E .. "return_value", H, 1))
    local c = assert(process.spawn_linked(E .. "crash", H))
    ev = next_event(process.event.LINK_DOWN)
    assert(ev.from == c and ev.result.error, "LINK_DOWN carries the error")
    -- Both-ways: spawn_linked_monitored gives LINK_DOWN and EXIT.
    c = assert(process.spawn_linked_monitored(E .. "crash", H))
    local kinds = {}
    for _ = 1, 2 do
        ev = process.events():receive()
        assert(ev.from == c)
        kinds[ev.kind] = true
    end
    assert(kinds.EXIT and kinds.LINK_DOWN)
    assert(process.set_options({ trap_links = false }))

    -- link/unlink and monitor/unmonitor after spawn.
    local w = assert(process.spawn(E .. "wait_forever", H))
    assert(process.monitor(w))
    assert(process.unmonitor(w))
    assert(process.link(w))
    assert(process.unlink(w))
    assert(process.monitor(w))
    assert(process.terminate(w))
    next_event(process.event.EXIT)
    _, err = process.link(w)
    assert(err and err:kind() == errors.NOT_FOUND, "link to a dead process")

    -- cancel is polite; terminate is not.
    p = assert(process.spawn_monitored(E .. "polite", H))
    assert(process.cancel(p, "shutdown"))
    ev = next_event(process.event.EXIT)
    assert(ev.result.value == "cleaned up: shutdown", tostring(ev.result.value))
    p = assert(process.spawn_monitored(E .. "wait_forever", H))
    assert(process.cancel(p))
    time.sleep("20ms")
    assert(process.terminate(p))
    ev = next_event(process.event.EXIT)
    assert(ev.from == p and ev.result.error:kind() == errors.CANCELED)

    -- Registry: names resolve, clash, and go with their process.
    assert(process.registry.register("api-test"))
    assert(process.registry.lookup("api-test") == process.pid())
    _, err = process.registry.register("api-test")
    assert(err:kind() == errors.ALREADY_EXISTS)
    w = assert(process.spawn_monitored(E .. "wait_forever", H))
    assert(process.registry.register("waiter", w))
    assert(process.send("waiter", "go", true))
    next_event(process.event.EXIT)
    local gone, lerr = process.registry.lookup("waiter")
    assert(gone == nil and lerr:kind() == errors.NOT_FOUND, "a name goes with its process")
    assert(process.registry.unregister("api-test"))

    -- listen: a topic's payloads get their own channel; others stay in the inbox.
    p = assert(process.spawn_monitored(E .. "topics", H))
    time.sleep("10ms")
    assert(process.send(p, "ordinary", 0))
    assert(process.send(p, "special", "payload"))
    ev = next_event(process.event.EXIT)
    assert(ev.result.value == "payload+ordinary", tostring(ev.result.value or ev.result.error))
    return "ok"
end

return {
    main = main,
    wait_forever = wait_forever,
    fail_soon = fail_soon,
    crash = crash,
    return_value = return_value,
    polite = polite,
    topics = topics,
}
