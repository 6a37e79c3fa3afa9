-- A ticker read as it ticks, on the runtime's manual clock (lua.rs moves the clock and looks at
-- when the next tick is due).
local time = require("time")

local function main()
    local tk = time.ticker("5ms")
    while true do tk:channel():receive() end
end

return { main = main }
