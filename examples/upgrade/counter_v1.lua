-- Version 1: counts `inc` messages; on `upgrade` continues as counter.v2 with its count.
local function main(count)
    count = count or 0
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        if msg:topic() == "inc" then
            count = count + 1
            process.send(msg:from(), "count", "v1: count is " .. count)
        elseif msg:topic() == "upgrade" then
            return process.upgrade("upgrade:counter.v2", count)
        elseif msg:topic() == "stop" then
            return count
        end
    end
end

return { main = main }
