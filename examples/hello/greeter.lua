-- A long-lived service: answers greetings until it is asked to stop (CANCEL).
local function main()
    process.registry.register("greeter")
    print("[greeter] ready as " .. process.pid())
    local inbox, events = process.inbox(), process.events()
    local served = 0
    while true do
        local r = channel.select { inbox:case_receive(), events:case_receive() }
        if r.channel == events then
            if r.value.kind == process.event.CANCEL then
                print(string.format("[greeter] stopping after %d greetings", served))
                return served
            end
        else
            local msg = r.value
            served = served + 1
            process.send(msg:from(), "greeting", "hello, " .. msg:payload():data())
        end
    end
end

return { main = main }
