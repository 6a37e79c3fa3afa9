-- A process that allocates without end is stopped at its memory budget; the others go on.

local function hog()
    local t = {}
    local i = 0
    while true do
        i = i + 1
        t[i] = string.rep("x", 1024) .. i
    end
end

-- Catching the error does not help: the budget is checked again after the step.
local function sly_hog()
    local t = {}
    while true do
        pcall(function()
            for i = 1, 1e9 do t[#t + 1] = string.rep("y", 1024) .. i end
        end)
    end
end

local function main()
    for _, name in ipairs({ "hog", "sly_hog" }) do
        local r, err = process.exec("test:memory." .. name, "test:main")
        assert(r == nil and err:kind() == errors.RATE_LIMITED, name .. ": " .. tostring(err))
        assert(err:message():find("memory"), tostring(err))
    end
    -- I am fine, and my own count is small.
    local mine = collectgarbage("count")
    assert(mine < 1024, "count is the process's own: " .. mine)
    local ch = channel.new(1)
    ch:send("still alive")
    return ch:receive() == "still alive" and "ok" or "broken"
end

return { main = main, hog = hog, sly_hog = sly_hog }
