-- Counts words it is sent; answers `top` with the most frequent. Not on the terminal host,
-- so `require("io")` is denied here.
local function main()
    local counts, total, distinct = {}, 0, 0
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        if msg:topic() == "words" then
            for word in msg:payload():data():lower():gmatch("%w+") do
                if not counts[word] then distinct = distinct + 1; counts[word] = 0 end
                counts[word] = counts[word] + 1
                total = total + 1
            end
            process.send(msg:from(), "counted", { total = total, distinct = distinct })
        elseif msg:topic() == "top" then
            local all = {}
            for word, count in pairs(counts) do all[#all + 1] = { word = word, count = count } end
            table.sort(all, function(a, b)
                if a.count ~= b.count then return a.count > b.count end
                return a.word < b.word
            end)
            local top = {}
            for i = 1, math.min(msg:payload():data(), #all) do top[i] = all[i] end
            process.send(msg:from(), "counted", top)
        end
    end
end

return { main = main }
