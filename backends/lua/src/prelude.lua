-- The Lua side of a Spindle process: the process API (`process`, `channel`, `errors`, the
-- `time` module), process-local channels and select, and the scheduler of a process's
-- coroutines. Loaded once per Lua state ("island"); every table it builds is shared read-only
-- by the processes of the island, and every function acts on the process being stepped
-- (`CUR`), which the Rust side sets by calling `step`.
--
-- Protocol with the Rust side (`RT`, primitive functions over the runtime):
--   * `RT.start_*` start a runtime operation and return its tag; its completion comes back in a
--     later `step(P, completions)` as `{tag, kind, ...}` and runs the handler kept in
--     `P.tags[tag]`.
--   * A coroutine that must wait yields `PARK` (through any user coroutines it runs in: see
--     `coroutine.resume` below); whoever completes its wait calls `wake(co, ...)`.
--   * `step` returns "wait", "yield", "exit", ok, value, or "upgrade", id, args.

local RT = ...

local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_status, co_running, co_wrap, co_close = coroutine.status, coroutine.running, coroutine.wrap, coroutine.close
local pack, unpack, select, type, error, tostring = table.pack, table.unpack, select, type, error, tostring
local setmetatable, getmetatable, rawget, rawset, pairs = setmetatable, getmetatable, rawget, rawset, pairs

local PARK = setmetatable({}, { __name = "spindle.park" })
local UPGRADE = setmetatable({}, { __name = "spindle.upgrade" })

local CUR -- the process being stepped

-- Errors ---------------------------------------------------------------------------------------

local KINDS = { "NOT_FOUND", "ALREADY_EXISTS", "INVALID", "PERMISSION_DENIED", "UNAVAILABLE",
    "INTERNAL", "CANCELED", "TIMEOUT", "RATE_LIMITED", "UNKNOWN" }

local Error = {}
Error.__index = Error
Error.__name = "spindle.error"
function Error:kind() return self._kind end
function Error:message() return self._message end
function Error.__tostring(e) return e._kind .. ": " .. e._message end
Error.__metatable = "locked"

local function new_error(kind, message)
    return setmetatable({ _kind = kind, _message = message }, Error)
end

local errors = { new = function(kind, message)
    if type(kind) ~= "string" then error("errors.new: kind must be a string", 2) end
    return new_error(kind, tostring(message or kind))
end, is = function(v) return getmetatable(v) == "locked" and rawget(v, "_kind") ~= nil end }
for _, k in ipairs(KINDS) do errors[k] = k end

-- `nil, kind, message` from RT becomes `nil, err`.
local function fail(v, kind, message)
    if kind == nil then return v end
    return nil, new_error(kind, message)
end
local function check(v, kind, message)
    if kind == nil then return v, nil end
    return nil, new_error(kind, message)
end

-- Waiting and waking ---------------------------------------------------------------------------

local function park()
    local P = CUR
    if not P or not P.running then error("blocking call outside a process", 3) end
    return co_yield(PARK)
end

local function wake(P, co, ...)
    local r = P.ready
    r[#r + 1] = pack(co, ...)
end

local function me()
    local P = CUR
    if not P or not P.running then error("blocking call outside a process", 3) end
    return P, P.running
end

-- A runtime operation: `handler(completion)` runs when it completes. Handlers run between
-- coroutine runs, never while a preempted coroutine is in the middle of an operation (see
-- `step`), so the prelude's own bookkeeping is never seen half done.
local function await_tag(tag, handler)
    CUR.tags[tag] = handler
end

-- Channels -------------------------------------------------------------------------------------
-- A waiter is {co = coroutine, sel = select state or nil, case = index, value = for senders}.

local Channel = {}
Channel.__index = Channel
Channel.__name = "spindle.channel"
Channel.__metatable = "locked"

local function qpush(q, v) q.last = q.last + 1; q[q.last] = v end
local function qpop(q)
    if q.first > q.last then return nil end
    local v = q[q.first]; q[q.first] = nil; q.first = q.first + 1
    return v
end
local function qlen(q) return q.last - q.first + 1 end
local function newq() return { first = 1, last = 0 } end

local function new_channel(size, source)
    return setmetatable({ size = size or 0, buf = newq(), recvq = newq(), sendq = newq(),
        closed = false, source = source }, Channel)
end

-- The next waiter that has not fired yet (select waiters fire once).
local function next_waiter(q)
    while true do
        local w = qpop(q)
        if not w then return nil end
        if not w.sel or not w.sel.fired then return w end
    end
end

local function fire(P, w, ...)
    if w.sel then
        w.sel.fired = true
        wake(P, w.co, w.case, ...)
    else
        wake(P, w.co, ...)
    end
end

-- Puts `v` into the channel (from a runtime source or a sender): to a waiting receiver, or
-- the buffer. Returns false if it had to be dropped (a full ticker channel).
local function offer(P, ch, v, may_drop)
    local w = next_waiter(ch.recvq)
    if w then fire(P, w, v, true); return true end
    if may_drop and qlen(ch.buf) >= math.max(ch.size, 1) then return false end
    qpush(ch.buf, v)
    return true
end

-- Starts the runtime operation behind a source channel if a receiver waits and none runs.
local function pump(P, ch)
    local src = ch.source
    if not src or src.tag or ch.closed or not src.start then return end
    local tag = src.start()
    src.tag = tag
    await_tag(tag, function(c)
        src.tag = nil
        local v = src.convert(c)
        if v ~= nil then offer(P, ch, v) end
        if qlen(ch.recvq) > 0 then pump(P, ch) end
    end)
end

function Channel:send(v)
    if getmetatable(self) ~= "locked" or rawget(self, "buf") == nil then error("not a channel", 2) end
    if self.closed then error("send on closed channel", 2) end
    if self.source then error("cannot send on a runtime channel", 2) end
    local P, co = me()
    local w = next_waiter(self.recvq)
    if w then fire(P, w, v, true); return true end
    if qlen(self.buf) < self.size then qpush(self.buf, v); return true end
    qpush(self.sendq, { co = co, value = v })
    local ok = park()
    if not ok then error("send on closed channel", 2) end
    return true
end

local function take(ch)
    -- A buffered value first; then a waiting sender (unbuffered hand-over).
    if qlen(ch.buf) > 0 then
        local v = qpop(ch.buf)
        local s = next_waiter(ch.sendq)
        if s then qpush(ch.buf, s.value); fire(CUR, s, true) end
        return true, v
    end
    local s = next_waiter(ch.sendq)
    if s then fire(CUR, s, true); return true, s.value end
    return false
end

function Channel:receive()
    if getmetatable(self) ~= "locked" or rawget(self, "buf") == nil then error("not a channel", 2) end
    local got, v = take(self)
    if got then return v, true end
    if self.closed then return nil, false end
    local P, co = me()
    qpush(self.recvq, { co = co })
    pump(P, self)
    return park()
end

function Channel:close()
    if self.closed then error("close of closed channel", 2) end
    self.closed = true
    local P = CUR
    while true do
        local w = next_waiter(self.recvq)
        if not w then break end
        fire(P, w, nil, false)
    end
    while true do
        local w = next_waiter(self.sendq)
        if not w then break end
        fire(P, w, false)
    end
    if self.source and self.source.stop then self.source.stop() end
end

function Channel:case_receive() return { op = "recv", ch = self } end
function Channel:case_send(v) return { op = "send", ch = self, value = v } end

local function select_(cases)
    if type(cases) ~= "table" then error("channel.select: expected a table of cases", 2) end
    -- Ready cases first, in order.
    for _, c in ipairs(cases) do
        local ch = c.ch
        if c.op == "recv" then
            local got, v = take(ch)
            if got then return { channel = ch, value = v, ok = true } end
            if ch.closed then return { channel = ch, value = nil, ok = false } end
        elseif c.op == "send" then
            if ch.closed then error("send on closed channel", 2) end
            local w = next_waiter(ch.recvq)
            if w then fire(CUR, w, c.value, true); return { channel = ch, ok = true } end
            if qlen(ch.buf) < ch.size then qpush(ch.buf, c.value); return { channel = ch, ok = true } end
        else
            error("channel.select: bad case", 2)
        end
    end
    if cases.default then return { default = true } end
    local P, co = me()
    local sel = { fired = false }
    for i, c in ipairs(cases) do
        if c.op == "recv" then
            qpush(c.ch.recvq, { co = co, sel = sel, case = i })
            pump(P, c.ch)
        else
            qpush(c.ch.sendq, { co = co, sel = sel, case = i, value = c.value })
        end
    end
    local i, v, ok = park()
    local c = cases[i]
    if c.op == "send" then
        if v == false then error("send on closed channel", 2) end
        return { channel = c.ch, ok = true }
    end
    return { channel = c.ch, value = v, ok = ok }
end

local channel = {
    new = function(size)
        if size ~= nil and (math.type(size) ~= "integer" or size < 0) then
            error("channel.new: size must be a non-negative integer", 2)
        end
        return new_channel(size)
    end,
    select = select_,
}

-- Messages and events --------------------------------------------------------------------------

local Payload = { __name = "spindle.payload", __metatable = "locked" }
Payload.__index = Payload
function Payload:data() return self._data end

local Message = { __name = "spindle.message", __metatable = "locked" }
Message.__index = Message
function Message:topic() return self._topic end
function Message:from() return self._from end
function Message:payload() return setmetatable({ _data = self._data }, Payload) end

local function result_of(c)
    -- c = {tag, "exit", ok, value_or_kind, message}
    if c[3] then return { value = c[4] } end
    return { error = new_error(c[4], c[5]) }
end

-- Completions: {tag, "msg", from, topic, data} / {tag, "event", kind, from, ok, v|kind, msg, reason}
-- / {tag, "timer"} / {tag, "exit", ok, v|kind, msg} / {tag, "failed", kind, msg}
local function to_message(c)
    if c[2] ~= "msg" then return nil end
    return setmetatable({ _from = c[3], _topic = c[4], _data = c[5] }, Message)
end

local function to_event(c)
    if c[2] ~= "event" then return nil end
    local e = { kind = c[3], from = c[4], reason = c[8] }
    if c[5] ~= nil then
        if c[5] then e.result = { value = c[6] } else e.result = { error = new_error(c[6], c[7]) } end
    end
    return e
end

-- Per-process singletons: the inbox, topic and event channels.
local function source_channel(P, key, start, convert)
    local ch = P.chans[key]
    if not ch then
        ch = new_channel(0, { start = start, convert = convert })
        ch.unbounded = true
        P.chans[key] = ch
    end
    return ch
end

-- Source channels buffer without limit: what the runtime handed over is never dropped.
local function inbox()
    local P = CUR
    return source_channel(P, "@inbox", function() return RT.start_receive(nil) end, to_message)
end

local function listen(topic)
    local P = CUR
    if type(topic) ~= "string" then return nil, new_error("INVALID", "listen: topic must be a string") end
    local ok, err = check(RT.listen(topic))
    if not ok then return nil, err end
    local ch = new_channel(0, {
        start = function() return RT.start_receive(topic) end,
        convert = function(c) if c[2] == "msg" then return c[5] end end,
    })
    P.chans["#" .. topic] = ch
    return ch
end

local function unlisten(ch)
    local P = CUR
    for key, c in pairs(P.chans) do
        if c == ch and key:sub(1, 1) == "#" then
            P.chans[key] = nil
            if ch.source.tag then RT.drop(ch.source.tag); P.tags[ch.source.tag] = nil; ch.source.tag = nil end
            local ok, err = check(RT.unlisten(key:sub(2)))
            if not ch.closed then ch.source.stop = nil; ch:close() end
            if not ok then return nil, err end
            return true
        end
    end
    return nil, new_error("NOT_FOUND", "unlisten: not a listened channel")
end

local function events()
    local P = CUR
    return source_channel(P, "@events", function() return RT.start_event() end, to_event)
end

-- Process API ----------------------------------------------------------------------------------

local function spawner(mode)
    return function(id, host, ...)
        return fail(RT.spawn(mode, id, host, ...))
    end
end

local process = {
    pid = function() return RT.pid() end,
    spawn = spawner(0),
    spawn_monitored = spawner(1),
    spawn_linked = spawner(2),
    spawn_linked_monitored = spawner(3),
    exec = function(id, host, ...)
        local P, co = me()
        local tag, kind, msg = RT.start_exec(id, host, ...)
        if tag == nil then return nil, new_error(kind, msg) end
        await_tag(tag, function(c)
            if c[2] == "exit" then
                if c[3] then wake(P, co, c[4]) else wake(P, co, nil, new_error(c[4], c[5])) end
            else
                wake(P, co, nil, new_error(c[3], c[4]))
            end
        end)
        return park()
    end,
    send = function(dest, topic, payload) return fail(RT.send(dest, topic, payload)) end,
    inbox = inbox,
    listen = listen,
    unlisten = unlisten,
    events = events,
    event = { EXIT = "EXIT", LINK_DOWN = "LINK_DOWN", CANCEL = "CANCEL", OUTDATED = "OUTDATED" },
    monitor = function(pid) return fail(RT.monitor(pid)) end,
    unmonitor = function(pid) return fail(RT.unmonitor(pid)) end,
    link = function(pid) return fail(RT.link(pid)) end,
    unlink = function(pid) return fail(RT.unlink(pid)) end,
    set_options = function(o)
        if type(o) ~= "table" then return nil, new_error("INVALID", "set_options: expected a table") end
        return fail(RT.set_options(o.trap_links, o.upgradable))
    end,
    get_options = function()
        local trap, up = RT.get_options()
        return { trap_links = trap, upgradable = up }
    end,
    cancel = function(dest, reason) return fail(RT.cancel(dest, reason)) end,
    terminate = function(dest) return fail(RT.terminate(dest)) end,
    registry = {
        register = function(name, pid) return fail(RT.register(name, pid)) end,
        lookup = function(name) return fail(RT.lookup(name)) end,
        unregister = function(name) return fail(RT.unregister(name)) end,
    },
    upgrade = function(id, ...)
        me()
        -- Validated by the runtime when the step returns; on failure the process ends.
        co_yield(UPGRADE, id, pack(...))
        error("upgrade did not take place", 2)
    end,
}

-- Time -----------------------------------------------------------------------------------------

local UNITS = { ns = 1, us = 1000, ["µs"] = 1000, ms = 1000000, s = 1000000000, m = 60000000000, h = 3600000000000 }

local function duration(d)
    if math.type(d) == "integer" then
        if d < 0 then error("negative duration", 3) end
        return d
    end
    if type(d) == "string" then
        local total, rest = 0, d
        if rest == "" then error("invalid duration \"\"", 3) end
        while rest ~= "" do
            local num, unit, tail = rest:match("^(%d+%.?%d*)(%a+)(.*)$")
            if not num then num, unit, tail = rest:match("^(%d+%.?%d*)(µs)(.*)$") end
            if not num or not UNITS[unit] then error("invalid duration \"" .. d .. "\"", 3) end
            total = total + tonumber(num) * UNITS[unit]
            rest = tail
        end
        return math.floor(total)
    end
    error("invalid duration (expected a string like \"250ms\" or integer nanoseconds)", 3)
end

local Time = { __name = "spindle.time", __metatable = "locked" }
Time.__index = Time
function Time:unix_nano() return self._ns end
function Time:sub(t) return self._ns - t._ns end
local function now() return setmetatable({ _ns = RT.now() }, Time) end

local function sleep(d)
    local ns = duration(d)
    local P, co = me()
    await_tag(RT.start_sleep(ns), function() wake(P, co) end)
    park()
end

-- A channel that receives `time.now()` once after `ns`.
local function after_ns(P, ns)
    local ch = new_channel(1)
    local src = {}
    src.tag = RT.start_sleep(ns)
    await_tag(src.tag, function() src.tag = nil; offer(P, ch, now()) end)
    ch.timer_source = src
    return ch
end

local Timer = { __name = "spindle.timer", __metatable = "locked" }
Timer.__index = Timer
function Timer:channel() return self._ch end
function Timer:stop()
    local src = self._ch.timer_source
    if src.tag then RT.drop(src.tag); CUR.tags[src.tag] = nil; src.tag = nil; return true end
    return false
end
function Timer:reset(d)
    local ns = duration(d)
    local active = self:stop()
    local P, ch, src = CUR, self._ch, self._ch.timer_source
    src.tag = RT.start_sleep(ns)
    await_tag(src.tag, function() src.tag = nil; offer(P, ch, now()) end)
    return active
end

local Ticker = { __name = "spindle.ticker", __metatable = "locked" }
Ticker.__index = Ticker
function Ticker:channel() return self._ch end
function Ticker:stop()
    local src = self._src
    src.stopped = true
    if src.tag then RT.drop(src.tag); CUR.tags[src.tag] = nil; src.tag = nil end
end

local time = {
    sleep = sleep,
    after = function(d) return after_ns(CUR, duration(d)) end,
    timer = function(d) return setmetatable({ _ch = after_ns(CUR, duration(d)) }, Timer) end,
    ticker = function(d)
        local ns = duration(d)
        if ns <= 0 then error("ticker: duration must be positive", 2) end
        local P = CUR
        local ch = new_channel(1)
        local src = {}
        local function arm()
            src.tag = RT.start_sleep(ns)
            await_tag(src.tag, function()
                src.tag = nil
                offer(P, ch, now(), true) -- a slow reader misses ticks, as in Go
                if not src.stopped then arm() end
            end)
        end
        arm()
        return setmetatable({ _ch = ch, _src = src }, Ticker)
    end,
    now = now,
    duration = function(d) return duration(d) end,
}

-- Coroutines -----------------------------------------------------------------------------------
-- A PARK or UPGRADE yielded inside a user's coroutine passes through the user's resume to the
-- process scheduler, and the answer goes back down; so do preemptions.

local function passthrough(co, ok, ...)
    while ok and co_status(co) == "suspended" do
        local first = ...
        if first == PARK or first == UPGRADE then
            return passthrough(co, co_resume(co, co_yield(...)))
        elseif select("#", ...) == 0 and RT.take_preempted() then
            -- Preempted inside the user's coroutine: the whole process gives way.
            RT.mark_preempted()
            co_yield()
            return passthrough(co, co_resume(co))
        else
            break
        end
    end
    return ok, ...
end

local function resume(co, ...)
    return passthrough(co, co_resume(co, ...))
end

local function wrap(f)
    local co = co_create(f)
    return function(...)
        return (function(ok, ...)
            if not ok then error((...), 0) end
            return ...
        end)(resume(co, ...))
    end
end

local coroutine_ = {
    create = co_create, resume = resume, yield = co_yield, status = co_status,
    running = co_running, wrap = wrap, isyieldable = coroutine.isyieldable, close = co_close,
    spawn = function(f, ...)
        if type(f) ~= "function" then error("coroutine.spawn: expected a function", 2) end
        local P = CUR
        local co = co_create(f)
        P.live = P.live + 1
        wake(P, co, ...)
        return co
    end,
}

-- The process scheduler -------------------------------------------------------------------------

local function handle(P)
    local comps = P.comps
    if #comps == 0 then return end
    P.comps = {}
    for i = 1, #comps do
        local c = comps[i]
        local h = P.tags[c[1]]
        if h then
            P.tags[c[1]] = nil
            h(c)
        end
    end
end

-- Runs the process's ready coroutines until all wait; returns what the step ends with.
-- Order: a coroutine that was preempted finishes what it was doing first; then the handlers of
-- completed operations run (they wake coroutines); then the ready coroutines, in order.
local function step(P, comps)
    CUR = P
    if comps then
        local q = P.comps
        for i = 1, #comps do q[#q + 1] = comps[i] end
    end
    local ready = P.ready
    while true do
        local entry
        if P.preempted then
            entry = pack(P.preempted); P.preempted = nil
        else
            handle(P)
            entry = table.remove(ready, 1)
        end
        if not entry then break end
        local co = entry[1]
        P.running = co
        RT.take_preempted()
        local r = pack(co_resume(co, unpack(entry, 2, entry.n)))
        P.running = nil
        if not r[1] then
            CUR = nil
            return "exit", false, r[2]
        end
        if co_status(co) == "dead" then
            if co == P.main then
                CUR = nil
                return "exit", true, r[2]
            end
            P.live = P.live - 1
        elseif r.n == 1 and RT.take_preempted() then
            P.preempted = co
            CUR = nil
            return "yield"
        elseif r[2] == UPGRADE then
            CUR = nil
            return "upgrade", r[3], r[4]
        elseif r[2] ~= PARK then
            -- A plain coroutine.yield at the top of a process coroutine: run it again later.
            ready[#ready + 1] = pack(co)
        end
    end
    CUR = nil
    return "wait"
end

-- The sandbox ----------------------------------------------------------------------------------
-- Every process gets its own global table (`_ENV`); reads fall through to BASE, which holds
-- read-only proxies of the shared libraries. Nothing a process can reach is writable by it
-- except its own tables.

local raw_load, raw_rawset, raw_setmetatable, raw_next = load, rawset, setmetatable, next
local PROTECTED = setmetatable({}, { __mode = "k" })

local function readonly(t, name)
    local copy = {}
    for k, v in raw_next, t do
        if type(v) == "table" and getmetatable(v) == nil then v = readonly(v, name .. "." .. k) end
        copy[k] = v
    end
    local proxy = setmetatable({}, {
        __index = copy,
        __newindex = function() error("attempt to modify read-only table '" .. name .. "'", 2) end,
        __pairs = function() return function(_, k) return raw_next(copy, k) end, nil, nil end,
        __len = function() return #copy end,
        __metatable = "locked",
    })
    PROTECTED[proxy] = true
    return proxy
end

-- A class's metatable must not be reachable through its instances (`obj.__index` would hand
-- out the shared metatable): instances look methods up in a read-only copy instead.
local function seal(class, name)
    local methods = {}
    for k, v in raw_next, class do
        if type(k) ~= "string" or k:sub(1, 2) ~= "__" then methods[k] = v end
    end
    for k in raw_next, methods do class[k] = nil end
    class.__index = readonly(methods, name)
end
seal(Error, "error")
seal(Channel, "channel")
seal(Payload, "payload")
seal(Message, "message")
seal(Time, "time")
seal(Timer, "timer")
seal(Ticker, "ticker")

local modules = {}
local BASE = {}
local ENV_MT = { __index = BASE, __metatable = "locked" }

local function subset(t, names)
    local out = {}
    for _, n in ipairs(names) do out[n] = t[n] end
    return out
end

local json
if RT.json then
    json = {
        encode = function(v) return fail(RT.json.encode(v)) end,
        decode = function(s) return fail(RT.json.decode(s)) end,
    }
end

for _, n in ipairs({ "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
    "tostring", "type", "xpcall", "rawequal", "rawlen", "rawget", "getmetatable", "print" }) do
    BASE[n] = _G[n]
end
BASE._VERSION = _VERSION
BASE.setmetatable = function(t, mt)
    if PROTECTED[t] then error("cannot change a protected metatable", 2) end
    return raw_setmetatable(t, mt)
end
BASE.rawset = function(t, k, v)
    if PROTECTED[t] then error("attempt to modify a read-only table", 2) end
    return raw_rawset(t, k, v)
end
BASE.collectgarbage = function(opt, ...)
    -- The memory attributed to this process, not the whole shared state's.
    if opt == "count" then return RT.memory() / 1024 end
    error("collectgarbage: only \"count\" is available to processes", 2)
end
BASE.load = function(chunk, chunkname, mode, env)
    if mode ~= nil and mode ~= "t" then return nil, "only text chunks can be loaded" end
    if env == nil then
        env = CUR and CUR.env
        if env == nil then return nil, "load outside a process" end
    end
    return raw_load(chunk, chunkname, "t", env)
end
local safe_string = subset(string, { "byte", "char", "find", "format", "gmatch", "gsub", "len",
    "lower", "match", "rep", "reverse", "sub", "upper", "pack", "packsize", "unpack" })
BASE.string = readonly(safe_string, "string")
BASE.table = readonly(table, "table")
BASE.math = readonly(math, "math")
BASE.utf8 = readonly(utf8, "utf8")
BASE.os = readonly(subset(os, { "time", "clock", "date", "difftime" }), "os")
BASE.coroutine = readonly(coroutine_, "coroutine")
BASE.process = readonly(process, "process")
BASE.channel = readonly(channel, "channel")
BASE.errors = readonly(errors, "errors")
-- The string metatable is shared by every string in the state: nobody may see or change it.
do
    local smt = getmetatable("")
    smt.__index = BASE.string
    smt.__metatable = "locked"
end

modules.time = readonly(time, "time")

-- The terminal (granted on terminal hosts only): one line of stdin, writes to stdout/stderr,
-- the argv of `spindle run -x ID -- ARGS`.
modules.io = readonly({
    write = function(...) return fail(RT.io_write(...)) end,
    ewrite = function(...) return fail(RT.io_ewrite(...)) end,
    args = function() return fail(RT.io_args()) end,
    readline = function()
        local P, co = me()
        local tag, kind, msg = RT.start_readline()
        if tag == nil then return nil, new_error(kind, msg) end
        await_tag(tag, function(c)
            if c[2] == "exit" and c[3] then
                wake(P, co, c[4])
            elseif c[2] == "exit" then
                wake(P, co, nil, new_error(c[4], c[5]))
            else
                wake(P, co, nil, new_error(c[3], c[4]))
            end
        end)
        return park()
    end,
}, "io")
if json then modules.json = readonly(json, "json") end

BASE.require = function(name)
    local P = CUR
    local m = modules[name]
    if P and P.granted[name] and m then return m end
    if P and P.granted[name] and RT.module then
        local got = RT.module(name)
        if got then return got end
    end
    error(new_error("PERMISSION_DENIED", "module '" .. tostring(name) .. "' is not granted to this process"), 2)
end

local function new_env()
    local env = setmetatable({}, ENV_MT)
    raw_rawset(env, "_G", env)
    return env
end

-- The main coroutine: runs the entry's chunk in the process's environment, then its method.
local function run_main(chunk, env, method, ...)
    local mod = chunk(env)
    if type(mod) ~= "table" then
        error(new_error("INVALID", "the source must return a table of functions (got " .. type(mod) .. ")"), 0)
    end
    local f = mod[method]
    if type(f) ~= "function" then
        error(new_error("NOT_FOUND", "method '" .. tostring(method) .. "' not found in the source's table"), 0)
    end
    return f(...)
end

-- A new process: its state table, with the main coroutine ready to start.
local function new_process(chunk, method, granted, args)
    local env = new_env()
    local P = { ready = {}, tags = {}, comps = {}, chans = {}, live = 1, env = env, granted = granted }
    P.main = co_create(run_main)
    P.ready[1] = pack(P.main, chunk, env, method, unpack(args, 1, args.n))
    return P
end

-- What an error raised in a process means: kind and message.
local function describe_error(e)
    if type(e) == "table" and getmetatable(e) == "locked" and rawget(e, "_kind") then
        return rawget(e, "_kind"), rawget(e, "_message")
    end
    return "UNKNOWN", tostring(e)
end

return {
    step = step,
    new_process = new_process,
    describe_error = describe_error,
}
