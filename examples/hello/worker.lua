-- A worker: squares numbers, with a greeting from the greeter; crashes when told to.
local function main(n)
    local inbox = process.inbox()
    local greetings = process.listen("greeting")
    while true do
        local msg = inbox:receive()
        local topic = msg:topic()
        if topic == "crash" then
            print(string.format("[worker %d] crashing on purpose", n))
            error("worker " .. n .. " was asked to crash")
        elseif topic == "stop" then
            return "bye"
        end
        local x = msg:payload():data()
        process.send("greeter", "greet", "worker " .. n)
        local greeting = greetings:receive()
        process.send(msg:from(), "result", { worker = n, x = x, square = x * x, greeting = greeting })
    end
end

return { main = main }
