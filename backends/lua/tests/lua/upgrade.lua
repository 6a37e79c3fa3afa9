-- process.upgrade: new code, same pid, mailbox, names, links and monitors.

local function v1(count)
    assert(process.registry.register("counter"))
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        if m:topic() == "inc" then
            count = count + 1
        elseif m:topic() == "upgrade" then
            process.upgrade("test:upgrade.v2", count, process.pid(), m:from())
        end
    end
end

local function v2(count, old_pid, requester)
    assert(process.pid() == old_pid, "same pid")
    assert(process.registry.lookup("counter") == old_pid, "name kept")
    process.send(requester, "upgraded", count)
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        if m:topic() == "inc" then
            count = count + 10
        elseif m:topic() == "stop" then
            return count
        end
    end
end

local function broken()
    process.upgrade("test:does.not.exist")
end

local function main()
    local p = assert(process.spawn_monitored("test:upgrade.v1", "test:main", 0))
    for _ = 1, 3 do assert(process.send(p, "inc", true)) end
    assert(process.send(p, "upgrade", true))
    -- Sent before the upgrade happens: v2 must find them in the mailbox.
    assert(process.send(p, "inc", true))
    assert(process.send(p, "inc", true))
    local m = process.inbox():receive()
    assert(m:topic() == "upgraded" and m:payload():data() == 3, m:topic())
    assert(process.send("counter", "stop", true))
    local ev = process.events():receive()
    assert(ev.kind == process.event.EXIT and ev.from == p)
    assert(ev.result.value == 23, tostring(ev.result.value or ev.result.error))

    local b = assert(process.spawn_monitored("test:upgrade.broken", "test:main"))
    ev = process.events():receive()
    assert(ev.from == b and ev.result.error:kind() == errors.NOT_FOUND, tostring(ev.result.error))
    return "ok"
end

return { main = main, v1 = v1, v2 = v2, broken = broken }
