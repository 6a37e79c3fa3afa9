-- A host's limits as a Lua process meets them (the test host: a mailbox limit of 4 messages,
-- at most 3 processes): a full mailbox refuses a message with RATE_LIMITED and loses none of
-- those it holds; a full host refuses a spawn with UNAVAILABLE.
local H = "test:main"

local function wait_forever()
    process.inbox():receive()
end

local function main()
    local me = process.pid()
    for i = 1, 4 do assert(process.send(me, "n", i) == true) end
    local ok, err = process.send(me, "n", 5)
    assert(ok == false and err:kind() == errors.RATE_LIMITED, tostring(err))
    local inbox = process.inbox()
    for i = 1, 4 do
        local got = inbox:receive():payload():data()
        assert(got == i, "got " .. tostring(got) .. " for message " .. i)
    end
    assert(process.send(me, "n", 6) == true, "a mailbox that was read has room again")
    assert(inbox:receive():payload():data() == 6)

    -- Me and two more.
    local a = assert(process.spawn("test:limits.wait_forever", H))
    local b = assert(process.spawn("test:limits.wait_forever", H))
    local c, serr = process.spawn("test:limits.wait_forever", H)
    assert(c == nil and serr:kind() == errors.UNAVAILABLE, tostring(serr))
    local v, eerr = process.exec("test:limits.wait_forever", H)
    assert(v == nil and eerr:kind() == errors.UNAVAILABLE, tostring(eerr))
    assert(process.terminate(a) and process.terminate(b))
    return "ok"
end

return { main = main, wait_forever = wait_forever }
