-- Version 2: same state, new behaviour (counts by ten, says so).
local function main(count)
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        if msg:topic() == "inc" then
            count = count + 10
            process.send(msg:from(), "count", "v2: count is " .. count .. " (now counting by ten)")
        elseif msg:topic() == "stop" then
            return count
        end
    end
end

return { main = main }
