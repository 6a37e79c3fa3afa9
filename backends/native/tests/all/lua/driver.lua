-- Lua processes talking to native plugin processes: values both ways, monitors and links.
-- `service` is the plugin's entry id (the same protocol for C, Rust and Go).

local H = "test:main"

local function same(a, b, path)
    path = path or "value"
    if type(a) ~= type(b) then error(path .. ": " .. type(a) .. " became " .. type(b)) end
    if type(a) == "number" and math.type(a) ~= math.type(b) then
        error(path .. ": " .. math.type(a) .. " became " .. math.type(b))
    end
    if type(a) ~= "table" then
        if a ~= b then error(path .. ": " .. tostring(a) .. " became " .. tostring(b)) end
        return
    end
    for k, v in pairs(a) do same(v, b[k], path .. "." .. tostring(k)) end
    for k in pairs(b) do if a[k] == nil then error(path .. ": extra key " .. tostring(k)) end end
end

local function serial(pid)
    return tonumber(pid:match("|0x(%x+)}$"), 16)
end

local function expect(topic)
    local m = process.inbox():receive()
    assert(m:topic() == topic, "expected " .. topic .. ", got " .. m:topic())
    return m
end

local function waiter()
    local m = process.inbox():receive()
    if m:topic() == "fail" then error("the Lua side failed on purpose") end
    return m:payload():data()
end

local function main(service)
    -- Values both ways: Lua → plugin → Lua, exactly.
    local svc = assert(process.spawn_monitored(service, H))
    local samples = {
        42, -1, math.maxinteger, math.mininteger, 3.0, -0.5, 1e300, "", "héllo ✓",
        "\0\255\254 bytes", true, false,
        { 1, 2, 3 }, { 1.5, "two", { 3 } },
        { int = 1, float = 1.0, str = "1", nested = { list = { 10, 20 }, flag = true } },
        {}, { [10] = "ten", [-3] = 1.5, [7] = { } }, { [1] = "a", [3] = "c" },
        { list = {}, map = { [100] = false } },
    }
    for i, v in ipairs(samples) do
        assert(process.send(svc, "echo", v))
        local m = expect("echo")
        assert(m:from() == svc)
        same(v, m:payload():data(), "sample " .. i)
    end
    assert(process.send(svc, "echo", nil))
    assert(expect("echo"):payload():data() == nil, "nil came back as something")

    -- The plugin monitors a Lua process and is told how it ended.
    local w = assert(process.spawn(("test:driver.waiter"), H))
    assert(process.send(svc, "monitor", serial(w)))
    expect("monitoring")
    assert(process.send(w, "fail", true))
    local down = expect("down"):payload():data()
    assert(down[1] == serial(w) and down[2][1] == "error", "the plugin saw the Lua failure")
    assert(down[2][2]:find("failed on purpose", 1, true), "the plugin got the Lua error's text: " .. down[2][2])

    -- A Lua process monitors the plugin: EXIT with the plugin's value, then with its error.
    assert(process.send(svc, "stop", true))
    local ev = process.events():receive()
    assert(ev.kind == process.event.EXIT and ev.from == svc)
    assert(math.type(ev.result.value) == "integer", tostring(ev.result.value))
    local bad = assert(process.spawn_monitored(service, H))
    assert(process.send(bad, "fail", true))
    ev = process.events():receive()
    assert(ev.from == bad and ev.result.error, "EXIT carries the plugin's error")
    assert(ev.result.error:message():find("asked to fail", 1, true), tostring(ev.result.error))

    -- Linked both ways: the plugin's failure reaches a trapping Lua process as LINK_DOWN ...
    assert(process.set_options({ trap_links = true }))
    local linked = assert(process.spawn_linked(service, H))
    assert(process.send(linked, "fail", true))
    ev = process.events():receive()
    assert(ev.kind == process.event.LINK_DOWN and ev.from == linked, ev.kind)
    assert(ev.result.error and ev.result.error:message():find("asked to fail", 1, true),
        "LINK_DOWN carries the plugin's error: " .. tostring(ev.result.error))
    -- ... and a Lua failure takes a linked plugin down with it.
    local other = assert(process.spawn_monitored(service, H))
    local lw = assert(process.spawn(("test:driver.waiter"), H))
    assert(process.send(other, "link", serial(lw)))
    expect("linked")
    assert(process.send(lw, "fail", true))
    ev = process.events():receive()
    assert(ev.kind == process.event.EXIT and ev.from == other and ev.result.error,
        "the linked plugin failed with the Lua process")
    assert(ev.result.error:message():find("failed on purpose", 1, true),
        "the linked plugin's error names the Lua failure: " .. tostring(ev.result.error))
    return "ok"
end

-- Asks to continue as native entry `entry` (which islands mode cannot do).
local function become(entry)
    process.upgrade(entry)
end

return { main = main, waiter = waiter, become = become }
