-- Values no Lua table can hold, in a Rust process's result (results are not checked the way
-- sends are): a NaN map key is left out and nesting past 128 levels ends in nil, rather than
-- an error raised in the receiving process.
local function main()
    local v, err = process.exec("test:rust.odd", "test:main")
    assert(err == nil, tostring(err))
    local keys = 0
    for _ in pairs(v.map) do keys = keys + 1 end
    assert(keys == 1 and v.map.kept == true, "the NaN key is left out, the rest kept")
    local d, depth = v.deep, 0
    while type(d) == "table" do
        d = d[1]
        depth = depth + 1
    end
    assert(d == nil and depth == 127, depth)
    return "ok"
end

return { main = main }
