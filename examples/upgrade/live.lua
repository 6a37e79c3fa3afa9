-- Run with --watch and edit this file: the running service picks up the new code and keeps
-- its count.
local time = require("time")

local VERSION = 1

local function main(count)
    process.set_options { upgradable = true }
    local ticker = time.ticker("1s")
    local events = process.events()
    while true do
        local r = channel.select { ticker:channel():case_receive(), events:case_receive() }
        if r.channel == events then
            if r.value.kind == process.event.OUTDATED then
                print("[live] new code arrived, upgrading with count " .. count)
                return process.upgrade(nil, count)
            elseif r.value.kind == process.event.CANCEL then
                return count
            end
        else
            count = count + 1
            print(string.format("[live v%d] tick %d", VERSION, count))
        end
    end
end

return { main = main }
