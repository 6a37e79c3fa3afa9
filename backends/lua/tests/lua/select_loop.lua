-- A select in a loop: the cases that did not fire keep nothing of it.

local function main()
    -- Left behind, each round kept a waiter of about 300 bytes on `idle` (some 15 MB here).
    local work, idle = channel.new(1), channel.new()
    local heap = collectgarbage("count")
    for i = 1, 50000 do
        coroutine.spawn(function() work:send(i) end)
        local r = channel.select { work:case_receive(), idle:case_receive() }
        assert(r.channel == work and r.value == i)
    end
    local grown = collectgarbage("count") - heap
    assert(grown < 4000, ("a select loop grew the heap by %.0f KB"):format(grown))
    return "ok"
end

return { main = main }
