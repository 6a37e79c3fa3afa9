-- process.upgrade: new code, same pid, mailbox, names, links and monitors.

-- v1 monitors `watched` and, trapping links, is linked to `partner`: v2 hears of both.
local function v1(count, watched, partner)
    assert(process.registry.register("counter"))
    assert(process.monitor(watched))
    assert(process.set_options({ trap_links = true }))
    assert(process.link(partner))
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
    local inbox, events = process.inbox(), process.events()
    while true do
        local r = channel.select({ inbox:case_receive(), events:case_receive() })
        if r.channel == events then
            process.send(requester, "event", { kind = r.value.kind, from = r.value.from })
        elseif r.value:topic() == "inc" then
            count = count + 10
        elseif r.value:topic() == "stop" then
            return count
        end
    end
end

local function idle()
    process.inbox():receive()
end

local function partner()
    process.inbox():receive()
    error("partner failed")
end

local function broken()
    process.upgrade("test:does.not.exist")
end

-- Three coroutines receive from the inbox; the one that gets "upgrade" upgrades at once. The
-- messages that came right behind it may have been handed to the other two, which have not
-- run yet: they go back to the mailbox, in order, for the new code (`collector`).
local function many(requester)
    local inbox = process.inbox()
    for _ = 1, 3 do
        coroutine.spawn(function()
            while true do
                local m = inbox:receive()
                if m:topic() == "upgrade" then
                    process.upgrade("test:upgrade.collector", requester)
                end
                process.send(requester, "handled by the old code", m:payload():data())
            end
        end)
    end
    coroutine.yield() -- the three wait in their receive now
    process.send(requester, "ready", true)
    channel.new():receive()
end

local function collector(requester)
    local inbox = process.inbox()
    local got = {}
    for i = 1, 3 do got[i] = inbox:receive():payload():data() end
    process.send(requester, "collected", got)
end

-- 20 rounds: process `entry` says it is ready, gets "upgrade" and `n` messages of `topic`
-- right behind it, and its new code reports all `n` collected, in order.
local function untaken_messages_survive_an_upgrade(entry, topic, n)
    local inbox = process.inbox()
    for round = 1, 20 do
        local p = assert(process.spawn("test:upgrade." .. entry, "test:main", process.pid()))
        assert(inbox:receive():topic() == "ready")
        assert(process.send(p, "upgrade", 0))
        for i = 1, n do assert(process.send(p, topic, round * 10 + i)) end
        local m = inbox:receive()
        assert(m:topic() == "collected", "round " .. round .. ": " .. m:topic())
        local got = m:payload():data()
        for i = 1, n do
            assert(got[i] == round * 10 + i, "round " .. round .. ": " .. table.concat(got, " "))
        end
    end
end

-- `n` coroutines that take what `receive` returns and report it, and one that upgrades the
-- process to `collector` on its first inbox message; returns once all of them wait.
local function receivers_then_upgrade(requester, n, receive, collector)
    local inbox = process.inbox()
    for _ = 1, n do
        coroutine.spawn(function()
            while true do process.send(requester, "handled by the old code", receive()) end
        end)
    end
    coroutine.spawn(function()
        inbox:receive()
        process.upgrade(collector, requester)
    end)
    coroutine.yield() -- all of them wait in their receive now
    process.send(requester, "ready", true)
    channel.new():receive()
end

-- Events too: three coroutines receive events and one the inbox; "upgrade" comes first and the
-- EXITs of two monitored processes right behind it. Those the old code was handed reach the new
-- code (`event_collector`).
local function many_events(requester, a, b)
    assert(process.monitor(a))
    assert(process.monitor(b))
    local events = process.events()
    receivers_then_upgrade(requester, 3, function() return events:receive().from end,
        "test:upgrade.event_collector")
end

local function event_collector(requester)
    local events = process.events()
    local got = {}
    for i = 1, 2 do
        local ev = events:receive()
        assert(ev.kind == process.event.EXIT and ev.result.error:kind() == errors.CANCELED)
        got[i] = ev.from
    end
    process.send(requester, "collected", got)
end

local function untaken_events_survive_an_upgrade()
    local inbox = process.inbox()
    for round = 1, 20 do
        local a = assert(process.spawn("test:upgrade.idle", "test:main"))
        local b = assert(process.spawn("test:upgrade.idle", "test:main"))
        assert(process.spawn("test:upgrade.many_events", "test:main", process.pid(), a, b))
        local m = inbox:receive()
        assert(m:topic() == "ready", m:topic())
        local p = m:from()
        assert(process.send(p, "upgrade", 0))
        assert(process.terminate(a))
        assert(process.terminate(b))
        m = inbox:receive()
        assert(m:topic() == "collected", "round " .. round .. ": " .. m:topic())
        local got = m:payload():data()
        local both = (got[1] == a and got[2] == b) or (got[1] == b and got[2] == a)
        assert(both, "round " .. round .. ": " .. tostring(got[1]) .. " " .. tostring(got[2]))
    end
end

-- A listened topic's messages too: one coroutine selects on the topic and the inbox, where
-- "upgrade" comes first and two "t" messages right behind it, all before the process runs. The
-- select takes "upgrade", the runtime hands the first "t" to the topic's channel, which keeps
-- it: the new code (`topic_collector`) listens to "t" again and gets both, in order.
local function topic_listener(requester)
    local t = assert(process.listen("t"))
    local inbox = process.inbox()
    coroutine.spawn(function()
        while true do
            local r = channel.select({ t:case_receive(), inbox:case_receive() })
            if r.channel == inbox and r.value:topic() == "upgrade" then
                process.upgrade("test:upgrade.topic_collector", requester)
            end
            process.send(requester, "handled by the old code", r.channel == t and r.value or 0)
        end
    end)
    coroutine.yield() -- it waits in its select now
    process.send(requester, "ready", true)
    channel.new():receive()
end

-- And those handed to coroutines that had not run yet: two coroutines receive from the topic
-- and one from the inbox, where "upgrade" comes first and two "t" messages right behind it.
local function topic_many(requester)
    local t = assert(process.listen("t"))
    receivers_then_upgrade(requester, 2, function() return t:receive() end,
        "test:upgrade.topic_collector")
end

local function topic_collector(requester)
    local t = assert(process.listen("t"))
    local got = {}
    for i = 1, 2 do got[i] = t:receive() end
    process.send(requester, "collected", got)
end

local function main()
    untaken_messages_survive_an_upgrade("many", "x", 3)
    untaken_messages_survive_an_upgrade("topic_listener", "t", 2)
    untaken_messages_survive_an_upgrade("topic_many", "t", 2)
    untaken_events_survive_an_upgrade()
    local watched = assert(process.spawn("test:upgrade.idle", "test:main"))
    local partner_pid = assert(process.spawn("test:upgrade.partner", "test:main"))
    local p = assert(process.spawn_monitored("test:upgrade.v1", "test:main", 0, watched, partner_pid))
    for _ = 1, 3 do assert(process.send(p, "inc", true)) end
    assert(process.send(p, "upgrade", true))
    -- Sent before the upgrade happens: v2 must find them in the mailbox.
    assert(process.send(p, "inc", true))
    assert(process.send(p, "inc", true))
    local m = process.inbox():receive()
    assert(m:topic() == "upgraded" and m:payload():data() == 3, m:topic())
    -- The monitor and the link v1 made now tell v2.
    assert(process.terminate(watched))
    m = process.inbox():receive()
    assert(m:topic() == "event", m:topic())
    local ev = m:payload():data()
    assert(ev.kind == process.event.EXIT and ev.from == watched, ev.kind)
    assert(process.send(partner_pid, "fail", true))
    ev = process.inbox():receive():payload():data()
    assert(ev.kind == process.event.LINK_DOWN and ev.from == partner_pid, ev.kind)
    assert(process.send("counter", "stop", true))
    ev = process.events():receive()
    assert(ev.kind == process.event.EXIT and ev.from == p)
    assert(ev.result.value == 23, tostring(ev.result.value or ev.result.error))

    local b = assert(process.spawn_monitored("test:upgrade.broken", "test:main"))
    ev = process.events():receive()
    assert(ev.from == b and ev.result.error:kind() == errors.NOT_FOUND, tostring(ev.result.error))
    return "ok"
end

return {
    main = main, v1 = v1, v2 = v2, broken = broken, idle = idle, partner = partner, many = many,
    collector = collector, many_events = many_events, event_collector = event_collector,
    topic_listener = topic_listener, topic_many = topic_many, topic_collector = topic_collector,
}
