-- Drives each native plugin: a value round trip, a wait-any race of two timers and a receive,
-- a wait-all of two timers, an upgrade into the next language keeping the pid, then stop.
local HOST = "plugins:processes"

local function expect(topic)
    local m = process.inbox():receive()
    if m:topic() ~= topic then error("expected " .. topic .. ", got " .. m:topic()) end
    return m:payload():data()
end

local function tour(lang, next_lang)
    local svc = assert(process.spawn_monitored("plugins:" .. lang, HOST))
    print(string.format("[tour] %s plugin started as %s", lang, svc))

    local value = { greeting = "hello", list = { 1, 2.5, "three" } }
    process.send(svc, "echo", value)
    local back = expect("echo")
    print(string.format("[tour] %s echoed %s, %s, %s", lang, back.greeting, back.list[2], back.list[3]))

    process.send(svc, "race", { a = 40, b = 5 })
    print(string.format("[tour] %s race of two timers and a receive: %s won", lang, tostring(expect("race"))))

    process.send(svc, "all", { a = 5, b = 15 })
    print(string.format("[tour] %s waited for both timers: %d ms", lang, expect("all")))

    process.send(svc, "upgrade", "plugins:" .. next_lang)
    local up = expect("upgraded")
    print(string.format("[tour] %s upgraded itself to %s: same pid %s, %d requests carried over",
        lang, up.lang, tostring(up.pid == tonumber(svc:match("|0x(%x+)}$"), 16)), up.handled))

    process.send(svc, "stop", nil)
    local ev = process.events():receive()
    print(string.format("[tour] it stopped after %d requests", ev.result.value))
end

local function main(langs)
    for i, lang in ipairs(langs) do tour(lang, langs[i % #langs + 1]) end
    print("[tour] done")
    return "ok"
end

return { main = main }
