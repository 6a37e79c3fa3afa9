-- A long computation in one function, preempted again and again (the test runs it with a
-- slice of two instructions).

local function main()
    local sum = 0
    for i = 1, 400000 do
        local a, b = i % 7, i % 11
        sum = sum + a * b
    end
    assert(sum > 0)
    return "ok"
end

return { main = main }
