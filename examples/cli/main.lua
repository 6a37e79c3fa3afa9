-- A small REPL: counts the words you type (in another process), `:top` shows the most
-- frequent ones, `:quit` or end of input leaves.
local io = require("io")

local function main(name)
    name = name or "there"
    io.write("hello, ", name, "! type some words; :top shows the most frequent, :quit leaves\n")
    local counter, err = process.spawn_linked("cli:counter", "cli:processes")
    if not counter then error(err) end
    local replies = process.listen("counted")
    while true do
        io.write("> ")
        local line = io.readline()
        if line == nil or line == ":quit" then break end
        if line == ":top" then
            process.send(counter, "top", 3)
            for i, entry in ipairs(replies:receive()) do
                io.write(string.format("%d. %s (%d)\n", i, entry.word, entry.count))
            end
        elseif line:match("%S") then
            process.send(counter, "words", line)
            local r = replies:receive()
            io.write(string.format("%d words, %d distinct so far\n", r.total, r.distinct))
        end
    end
    io.write("bye\n")
    return "ok"
end

return { main = main }
