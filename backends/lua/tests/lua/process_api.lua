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

-- Links to `target` (a pid), unlinks again if asked, tells `parent`, then waits for a message
-- that never comes.
local function linker(target, parent, unlink)
    assert(process.link(target))
    if unlink then assert(process.unlink(target)) end
    assert(process.send(parent, "linked", true))
    process.inbox():receive()
end

-- Fails as soon as it gets a message.
local function die_on_message()
    process.inbox():receive()
    error(errors.new(errors.TIMEOUT, "told to"))
end

-- Spawns a linked child that waits forever, tells `parent` its pid, then crashes.
local function crash_with_child(parent)
    local child = assert(process.spawn_linked(E .. "wait_forever", H))
    assert(process.send(parent, "child", child))
    time.sleep("10ms")
    error("parent crashed")
end

-- Whether an event is waiting right now (without waiting for one).
local function event_waiting()
    local r = channel.select({ process.events():case_receive(), default = true })
    return not r.default
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
    -- Topics: once unlistened, a topic's messages (those already queued for it, then the
    -- later ones) are the inbox's again, in the order they came among the inbox's own (one
    -- sender's messages stay in send order).
    local topic = assert(process.listen("later"))
    assert(process.send(process.pid(), "now", "first"))
    assert(process.send(process.pid(), "later", "queued"))
    assert(process.send(process.pid(), "now", "second"))
    assert(process.unlisten(topic))
    assert(process.send(process.pid(), "later", "after"))
    for _, want in ipairs({ "now first", "later queued", "now second", "later after" }) do
        local m = process.inbox():receive()
        local got = m:topic() .. " " .. tostring(m:payload():data())
        assert(got == want, "expected " .. want .. ", got " .. got)
    end

    -- Error objects.
    local ok, err = process.send("no such name", "t", 1)
    assert(ok == false and err and err:kind() == errors.NOT_FOUND, tostring(err))
    assert(type(err:message()) == "string" and tostring(err):find("NOT_FOUND"), tostring(err))
    assert(tostring(err):find(err:message(), 1, true), "tostring(err) leaves out the message")
    ok, err = process.send(process.pid(), "@reserved", 1)
    assert(ok == false and err:kind() == errors.INVALID)
    -- A topic is a non-empty string.
    for _, bad in ipairs({ "", true, {} }) do
        ok, err = process.send(process.pid(), bad, 1)
        assert(ok == false and err and err:kind() == errors.INVALID, tostring(err))
    end
    ok, err = process.send(process.pid(), "t", function() end)
    assert(ok == false and err:kind() == errors.INVALID, "functions cannot be sent")
    local _
    -- Sending to a dead pid is not an error (Erlang semantics).
    local done = assert(process.spawn_monitored(E .. "return_value", H, 0))
    next_event(process.event.EXIT)
    assert(process.send(done, "t", 1) == true, "a dead pid swallows the message")
    _, err = process.spawn("test:nope", H)
    assert(err:kind() == errors.NOT_FOUND)
    assert(errors.is(err) and getmetatable(err) == "locked" and not errors.is({ _kind = "X" }))
    for _, f in ipairs({ process.spawn_monitored, process.spawn_linked,
        process.spawn_linked_monitored }) do
        local p, e = f("test:nope", H)
        assert(p == nil and e:kind() == errors.NOT_FOUND and e:message():find("test:nope"),
            tostring(e))
    end
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
    -- exec's own errors: what cannot be started is not waited for.
    for _, bad in ipairs({
        { errors.NOT_FOUND, "test:nope", H },
        { errors.NOT_FOUND, E .. "return_value", "no:host" },
        { errors.INVALID, "no-colon", H },
        { errors.INVALID, E .. "return_value", H, function() end },
    }) do
        v, e = process.exec(bad[2], bad[3], bad[4])
        assert(v == nil and e and e:kind() == bad[1], tostring(e))
    end

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

    -- Options: read back; a wrong value or an unknown name is INVALID and changes nothing.
    assert(process.set_options({ upgradable = false }))
    local o = process.get_options()
    assert(o.upgradable == false and o.trap_links == false)
    assert(process.set_options({ upgradable = true }))
    assert(process.get_options().upgradable == true)
    for _, bad in ipairs({ { trap_links = "yes" }, { upgradable = 1 }, { trap_link = true } }) do
        local r, oerr = process.set_options(bad)
        assert(r == nil and oerr and oerr:kind() == errors.INVALID, tostring(oerr))
    end
    assert(process.get_options().trap_links == false)

    -- link/unlink and monitor/unmonitor after spawn.
    local w = assert(process.spawn(E .. "wait_forever", H))
    assert(process.monitor(w))
    assert(process.unmonitor(w))
    assert(process.link(w))
    assert(process.unlink(w))
    assert(process.monitor(w))
    assert(process.terminate(w))
    ev = next_event(process.event.EXIT)
    assert(ev.from == w and ev.result.error, "terminate: monitors see an error")
    _, err = process.link(w)
    assert(err and err:kind() == errors.NOT_FOUND, "link to a dead process")
    -- unmonitor: no EXIT comes from a process no longer monitored.
    w = assert(process.spawn(E .. "wait_forever", H))
    assert(process.monitor(w))
    assert(process.unmonitor(w))
    assert(process.terminate(w))
    local w2 = assert(process.spawn_monitored(E .. "wait_forever", H))
    assert(process.terminate(w2))
    ev = next_event(process.event.EXIT)
    assert(ev.from == w2, "the EXIT of the unmonitored process came instead")
    time.sleep("20ms")
    assert(not event_waiting(), "an unmonitored process still sent its EXIT")
    -- link: without trap_links, a linked process's abnormal exit ends the linker too; after
    -- unlink it does not.
    local doomed = assert(process.spawn(E .. "die_on_message", H))
    local l = assert(process.spawn_monitored(E .. "linker", H, doomed, process.pid()))
    assert(process.inbox():receive():topic() == "linked")
    assert(process.send(doomed, "die", true))
    ev = next_event(process.event.EXIT)
    assert(ev.from == l and ev.result.error, "the linker survived its linked process's crash")
    doomed = assert(process.spawn_monitored(E .. "die_on_message", H))
    l = assert(process.spawn_monitored(E .. "linker", H, doomed, process.pid(), true))
    assert(process.inbox():receive():topic() == "linked")
    assert(process.send(doomed, "die", true))
    ev = next_event(process.event.EXIT)
    assert(ev.from == doomed and ev.result.error:kind() == errors.TIMEOUT)
    time.sleep("20ms")
    assert(not event_waiting(), "the unlinked process ended with its former link")
    assert(process.terminate(l))
    next_event(process.event.EXIT)
    -- spawn_linked links both ways: the child goes down with its crashing parent.
    process.spawn(E .. "crash_with_child", H, process.pid())
    local child = process.inbox():receive():payload():data()
    assert(process.monitor(child))
    ev = next_event(process.event.EXIT)
    assert(ev.from == child and ev.result.error, "the linked child outlived its parent")

    -- cancel is polite; terminate is not.
    p = assert(process.spawn_monitored(E .. "polite", H))
    assert(process.cancel(p, "shutdown"))
    ev = next_event(process.event.EXIT)
    assert(ev.result.value == "cleaned up: shutdown", tostring(ev.result.value))
    p = assert(process.spawn_monitored(E .. "polite", H))
    assert(process.cancel(p))
    ev = next_event(process.event.EXIT)
    assert(ev.result.value == "cleaned up: nil", "a cancel without a reason has none")
    -- A process that ignores the CANCEL goes on: the target decides.
    p = assert(process.spawn_monitored(E .. "wait_forever", H))
    assert(process.cancel(p))
    time.sleep("20ms")
    assert(not event_waiting(), "cancel stopped a process that did not decide to stop")
    assert(process.terminate(p))
    ev = next_event(process.event.EXIT)
    assert(ev.from == p and ev.result.error:kind() == errors.CANCELED)
    -- Both take a registered name as well as a pid.
    p = assert(process.spawn_monitored(E .. "polite", H))
    assert(process.registry.register("polite-one", p))
    assert(process.cancel("polite-one", "by name"))
    ev = next_event(process.event.EXIT)
    assert(ev.from == p and ev.result.value == "cleaned up: by name", tostring(ev.result.value))
    p = assert(process.spawn_monitored(E .. "wait_forever", H))
    assert(process.registry.register("doomed-one", p))
    assert(process.terminate("doomed-one"))
    ev = next_event(process.event.EXIT)
    assert(ev.from == p and ev.result.error, "terminate by name")
    for _, stop in ipairs({ process.cancel, process.terminate }) do
        local r, serr = stop("nobody by this name")
        assert(not r and serr and serr:kind() == errors.NOT_FOUND, tostring(serr))
    end

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
    gone, lerr = process.registry.lookup("api-test")
    assert(gone == nil and lerr:kind() == errors.NOT_FOUND, "unregister releases the name")
    ok, err = process.send("api-test", "t", 1)
    assert(ok == false and err:kind() == errors.NOT_FOUND)
    _, err = process.registry.unregister("api-test")
    assert(err and err:kind() == errors.NOT_FOUND, "unregistering a free name")

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
    linker = linker,
    die_on_message = die_on_message,
    crash_with_child = crash_with_child,
}
