-- Payloads are deep copies: integers stay integers, floats floats, strings byte-exact;
-- functions, coroutines and cycles are INVALID.

local function mirror()
    local m = process.inbox():receive()
    local data = m:payload():data()
    process.send(m:from(), "back", data)
    -- Change my copy: the sender's original must not change.
    if type(data) == "table" then data.changed = true end
    return true
end

local function roundtrip(v)
    local p = assert(process.spawn("test:payloads.mirror", "test:main"))
    assert(process.send(p, "v", v))
    return process.inbox():receive():payload():data()
end

local function main()
    local bytes = "\0\1\2\255\254 binary \xff"
    local original = {
        int = 9007199254740993, -- beyond float precision: stays exact only as an integer
        neg = math.mininteger,
        float = 1.0,
        tiny = 5e-324,
        s = "héllo",
        bytes = bytes,
        list = { 1, 2, { 3, { 4 } } },
        t = true, f = false,
        nested = { a = { b = { c = "deep" } } },
    }
    local back = roundtrip(original)
    assert(math.type(back.int) == "integer" and back.int == 9007199254740993)
    assert(back.neg == math.mininteger)
    assert(math.type(back.float) == "float" and back.float == 1.0)
    assert(back.tiny == 5e-324)
    assert(back.s == "héllo" and back.bytes == bytes and #back.bytes == #bytes)
    assert(back.list[3][2][1] == 4 and #back.list == 3)
    assert(back.t == true and back.f == false)
    assert(back.nested.a.b.c == "deep")
    assert(back ~= original and original.changed == nil, "a copy, not the same table")
    assert(roundtrip(42) == 42 and math.type(roundtrip(42)) == "integer")
    assert(math.type(roundtrip(42.0)) == "float")

    local cyclic = {}
    cyclic.self = cyclic
    local me = process.pid()
    for name, bad in pairs({ fn = print, co = coroutine.create(print), cycle = cyclic,
        nested_fn = { { f = function() end } }, userdata = process.inbox(),
        nested_userdata = { ch = channel.new() } }) do
        local ok, err = process.send(me, "bad", bad)
        assert(ok == false and err:kind() == errors.INVALID, name)
    end
    -- A table reachable twice (not a cycle) is fine: it is copied twice.
    local shared = { 1 }
    local two = roundtrip({ a = shared, b = shared })
    assert(two.a[1] == 1 and two.b[1] == 1 and two.a ~= two.b)
    -- But one that reuses its tables at every level would be copied 2^40 times: it is
    -- refused (so are its spawn arguments and its JSON), and the process goes on.
    local dag = {}
    for _ = 1, 40 do dag = { dag, dag } end
    local ok, err = process.send(me, "dag", dag)
    assert(ok == false and err:kind() == errors.INVALID and tostring(err):find("4096 more paths"), tostring(err))
    local text, jerr = require("json").encode(dag)
    assert(text == nil and jerr:kind() == errors.INVALID, tostring(jerr))
    local modest = {}
    for _ = 1, 10 do modest = { modest, modest } end -- 2^10 copies: still fine
    assert(#roundtrip(modest) == 2)

    -- A nil payload arrives as nil, in the inbox and on a listened topic alike; the message
    -- after it is not taken for it.
    assert(process.send(me, "empty", nil))
    local m = process.inbox():receive()
    assert(m:topic() == "empty" and m:payload():data() == nil)
    local ch = assert(process.listen("nothing"))
    assert(process.send(me, "nothing", nil) and process.send(me, "nothing", "after"))
    local v1, ok1 = ch:receive()
    assert(v1 == nil and ok1 == true, "a nil payload on a topic is delivered")
    assert(ch:receive() == "after")
    assert(process.unlisten(ch))

    -- A received message sent on as a payload arrives as its parts, its sender as the pid
    -- text `from()` gives, whether or not anyone asked for it before.
    assert(process.send(me, "first", { 7 }))
    local got = process.inbox():receive()
    assert(process.send(me, "fwd", got))
    local fwd = process.inbox():receive():payload():data()
    assert(fwd[1] == me and fwd[2] == "first" and fwd[3][1] == 7, tostring(fwd[1]))
    assert(got:from() == me and got:from() == me)
    assert(process.send(me, "fwd", got))
    assert(process.inbox():receive():payload():data()[1] == me)

    local json = require("json")
    local text = assert(json.encode({ list = { 1, 2.5, "x" }, flag = true }))
    local v = assert(json.decode(text))
    assert(v.list[1] == 1 and math.type(v.list[1]) == "integer" and v.list[2] == 2.5 and v.flag)
    local _, jerr = json.decode("{nope")
    assert(jerr:kind() == errors.INVALID)
    v = assert(json.decode('{"a": {"b": [1, {"c": "q\\"uo\\u00e9te"}]}}'))
    assert(v.a.b[1] == 1 and v.a.b[2].c == 'q"uo\u{e9}te', tostring(v.a.b[2].c))
    local cyclic = {}
    cyclic.self = cyclic
    for _, bad in ipairs({ { f = print }, cyclic }) do
        local out, eerr = json.encode(bad)
        assert(out == nil and eerr and eerr:kind() == errors.INVALID, tostring(eerr))
    end

    -- What a sender changes after sending does not reach the message.
    local sent = { x = 1 }
    assert(process.send(me, "mine", sent))
    sent.x = 2
    sent.added = true
    local copy = process.inbox():receive():payload():data()
    assert(copy.x == 1 and copy.added == nil, "the message shares the sender's table")
    return "ok"
end

return { main = main, mirror = mirror }
