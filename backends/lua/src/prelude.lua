-- The Lua side of a Spindle process: the process API (`process`, `channel`, `errors`, the
-- `time` module), process-local channels and select, and the scheduler of a process's
-- coroutines. Loaded once per Lua state ("island"); every table it builds is shared read-only
-- by the processes of the island, and every function acts on the process being stepped
-- (`CUR`), which the Rust side sets by calling `start` or `step`.
--
-- Protocol with the Rust side (`RT`, primitive functions over the runtime):
--   * `RT.start_*` start a runtime operation and return its tag. `RT.start_receive` and
--     `RT.start_event` take what already waits instead: they return `false` and the
--     completion. A tag's completion comes back in a later `step(P, tag, ...)` or
--     `deliver(P, tag, ...)` and goes to what `P[-tag]` holds: a coroutine (woken), a
--     runtime channel (fed), or a function (called with the completion).
--   * A completion is passed as values, never as a table, its kind first (`MSG` ... below):
--     MSG, from (as `Message` keeps it), topic, data / EVENT, kind, from, ok, value_or_kind,
--     message, reason / TIMER / EXIT, ok, value_or_kind, message / FAILED, kind, message.
--   * A coroutine that must wait yields `PARK` (through any user coroutines it runs in: see
--     `coroutine.resume` below); whoever completes its wait calls `wake(co, ...)`.
--   * `start` returns the process's state table and then what `step` returns: "wait",
--     "yield", "exit", ok, value, or "upgrade", id, args.
--
-- A process's state table `P`: in its array part `P[MAIN]` (its main coroutine), `P[ENV]` (its
-- globals), `P[GRANTED]` (modules it may require) and `P[INBOX]` (its inbox, `false` until
-- first used); in its hash part `[-tag]` (what waits for operation `tag`), `events` / `topics`
-- (runtime channels, made on first use), `preempted` and `later` (a coroutine stopped by the
-- hook and the completions that came meanwhile), `ready` (the ready queue of a step that ended
-- preempted or with coroutines still ready). Kept small: an idle process is mostly this table
-- and its coroutine, so the fields every process has sit in an array made at its exact size
-- (a hash node costs half as much again as an array slot, and hash parts grow in powers of
-- two).

local RT = ...

-- Every resume goes through RT.resume, which tells the time-slice handler what runs.
local co_create, co_resume, co_yield = coroutine.create, RT.resume, coroutine.yield
local co_status, co_running, co_wrap, co_close = coroutine.status, coroutine.running, coroutine.wrap, coroutine.close
local pack, unpack, select, type, error, tostring = table.pack, table.unpack, select, type, error, tostring
local setmetatable, getmetatable, rawget, rawset, pairs = setmetatable, getmetatable, rawget, rawset, pairs
local RT_start_receive, RT_start_event, RT_start_sleep = RT.start_receive, RT.start_event, RT.start_sleep
local RT_drop, RT_arm = RT.drop, RT.arm
local math_random = math.random
-- What RT.resume returns after `true` when the hook preempted the coroutine.
local PREEMPTED = RT.PREEMPTED
local box, unbox = RT.box, RT.unbox

local MAIN <const>, ENV <const>, GRANTED <const>, INBOX <const> = 1, 2, 3, 4

-- Light userdata: compared with `==`, which runs no metamethod for them.
local PARK, UPGRADE = RT.PARK, RT.UPGRADE
-- The third value a listened topic's receiver is woken with: the first is then the whole
-- message, whose data the receive returns (see `hand`).
local TOPIC = RT.TOPIC

-- Completion kinds (the Rust side's `api::Kind`).
local MSG, EVENT, EXIT = 1, 2, 4

-- The process being stepped and the coroutine of it that runs. The ready queue of the step:
-- four slots per entry (a coroutine and the three values it is resumed with) from `QH` to
-- `QT`; one for the island, since one process is stepped at a time (see `leave` for a step that
-- ends with work left).
local CUR, RUNNING
local RQ, QH, QT = {}, 1, 1

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
end, is = function(v) return type(v) == "table" and getmetatable(v) == "locked" and rawget(v, "_kind") ~= nil end }
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

-- The coroutine that would wait: only a process's own coroutines may block.
local function me()
    local co = RUNNING
    if not co then error("blocking call outside a process", 3) end
    return co
end

local function park()
    return co_yield(PARK)
end

-- What `wake` is given in place of each value a coroutine is resumed without (the queue holds
-- three per entry): a coroutine spawned with fewer arguments gets only those, and a plain
-- `coroutine.yield()` returns nothing.
local NOARG = {}

-- Queues `co` to be resumed with `a, b, c` in this step.
local function wake(co, a, b, c)
    local q, t = RQ, QT
    q[t] = co; q[t + 1] = a; q[t + 2] = b; q[t + 3] = c
    QT = t + 4
end

-- Operation `tag` goes to `handler` when it completes (see the protocol above). Handlers run
-- between coroutine runs, never while a preempted coroutine is in the middle of an operation
-- (see `deliver`), so the prelude's own bookkeeping is never seen half done.
local function await(tag, handler)
    CUR[-tag] = handler
end

-- Starts an operation that ends with a value or an error (exec, readline) with
-- `start(...)` (an `RT.start_*`) and waits for it; returns `value, err`.
local function await_result(start, ...)
    local co = me()
    local tag, kind, msg = start(...)
    if tag == nil then return nil, new_error(kind, msg) end
    await(tag, function(k, a, b, c)
        if k == EXIT then
            if a then wake(co, b) else wake(co, nil, new_error(b, c)) end
        else
            wake(co, nil, new_error(a, b))
        end
    end)
    local v, e = park()
    return v, e
end

local function forget(tag)
    RT_drop(tag)
    CUR[-tag] = nil
end

-- Queues ---------------------------------------------------------------------------------------
-- A queue is an array: [1] the head's index, [2] the tail's, items from [3] on.

local function qnew() return { 3, 2 } end
local function qpush(q, v) local t = q[2] + 1; q[t] = v; q[2] = t end
local function qlen(q) return q[2] - q[1] + 1 end
-- Takes the head of a queue that is not empty.
local function qpop(q)
    local h = q[1]
    local v = q[h]
    q[h] = nil
    if h == q[2] then q[1] = 3; q[2] = 2 else q[1] = h + 1 end
    return v
end

-- Messages and events --------------------------------------------------------------------------
-- A message is {from, topic, data}. It is its own payload: `msg:payload()` returns the message,
-- whose `data()` is the payload's data, so receiving makes one table, not two. `from` comes
-- as the pid's bits (an integer: no string made for a message whose sender nobody asks for)
-- and is made text the first time `from()` is called.

local RT_pid_text = RT.pid_text
local Message = { __name = "spindle.message", __metatable = "locked" }
function Message:topic() return self[2] end
function Message:from()
    local f = RT_pid_text(self[1])
    self[1] = f
    return f
end
function Message:payload() return self end
function Message:data() return self[3] end

local function to_message(kind, from, topic, data)
    if kind ~= MSG then return false end
    return true, setmetatable({ from, topic, data }, Message)
end

-- A listened topic's channel keeps the whole message, sender included, until a receiver takes
-- it (an upgrade gives back what nobody took: see `untaken`); receivers get its data
-- (`handed`).
local function to_topic_message(kind, from, topic, data)
    if kind ~= MSG then return false end
    return true, setmetatable({ from, topic, data }, Message)
end

-- The completion each event table was made from, while the table is alive: an upgrade gives
-- back the events the old code was handed and never received (see `untaken`).
local EVENTS = setmetatable({}, { __mode = "k" })

local function to_event(kind, ekind, from, ok, v, msg, reason)
    if kind ~= EVENT then return false end
    local e = { kind = ekind, from = from, reason = reason }
    if ok ~= nil then
        if ok then e.result = { value = v } else e.result = { error = new_error(v, msg) } end
    end
    EVENTS[e] = { ekind, from, ok, v, msg, reason, event = true }
    return true, e
end

-- Channels -------------------------------------------------------------------------------------
-- A channel handed to a process is opaque: a userdata (`RT.box`) whose state `s` only the
-- prelude reaches (`RT.unbox`), since the scheduler reads that state outside the process's
-- coroutine (when a completion feeds a runtime channel) and must find only what the prelude
-- put there. The state: `size`, and made on first use `buf` (values), `recvq` and `sendq`
-- (waiters), `closed`. A waiter is a receiving coroutine itself, or {co = coroutine, value =
-- for a sender, sel = select state, case = index}. `recvq` is a queue, or the one receiving
-- coroutine itself while it is the only waiter: every idle process waits so in its inbox,
-- and a queue would cost it two more tables; `many` is set once it has been a queue. A runtime
-- channel (inbox, events, a topic) also has `src` (turns a completion into `true, value`, or
-- `false` if it is not one), `topic`, and `tag` while its one operation is outstanding.

local Channel = {}
Channel.__name = "spindle.channel"
Channel.__metatable = "locked"

-- A new channel and its state.
local function new_channel(size)
    local s = { size = size }
    return box(s, Channel), s
end

-- The next waiter that has not fired yet (select waiters fire once).
local function next_waiter(q)
    if not q then return nil end
    while q[1] <= q[2] do
        local w = qpop(q)
        if type(w) == "thread" then return w end
        local sel = w.sel
        if not sel or not sel.fired then return w end
    end
    return nil
end

-- Takes the waiters of selects that have fired out of queue `q` (a select waits on every
-- case's queue; the one that fires takes its own entry, the others are left behind).
local function purge(q)
    if type(q) ~= "table" then return end
    local h, t = q[1], q[2]
    local j = h
    for i = h, t do
        local w = q[i]
        q[i] = nil
        if type(w) == "thread" or not (w.sel and w.sel.fired) then
            q[j] = w
            j = j + 1
        end
    end
    if j == h then q[1] = 3; q[2] = 2 else q[2] = j - 1 end
end

-- The next receiver that has not fired yet.
local function next_receiver(s)
    local q = s.recvq
    if type(q) == "thread" then
        s.recvq = nil
        return q
    end
    return next_waiter(q)
end

-- Whether receivers wait (select waiters that already fired included).
local function has_receivers(s)
    local q = s.recvq
    if q == nil then return false end
    return type(q) == "thread" or q[1] <= q[2]
end

-- Queues receiver `w` (a coroutine or a select waiter).
local function add_receiver(s, w)
    local q = s.recvq
    if q == nil and type(w) == "thread" then
        s.recvq = w
        return
    end
    if type(q) ~= "table" then
        local first = q
        q = qnew()
        if first then qpush(q, first) end
        s.recvq = q
        s.many = true -- (for `step`: `recvq` may be a queue from now on)
    end
    qpush(q, w)
end

local function fire(w, a, b, c)
    if type(w) == "thread" then
        wake(w, a, b, c)
    elseif w.sel then
        w.sel.fired = true
        wake(w.co, w.case, a, b)
    else
        wake(w.co, a, b)
    end
end

-- What a receiver of channel `s` gets for item `v`: a listened topic's payload data, else
-- the item itself.
local function handed(s, v)
    if s.src == to_topic_message then return v[3] end
    return v
end

-- Wakes receiver `w` of channel `s` with item `v`. A listened topic's receiver gets the whole
-- message, and its data only once it runs (`Channel.receive` takes it, see parking.rs; so does
-- `select`): if its process upgrades first, the message is given back (`untaken`).
local function hand(s, w, v)
    if s.src == to_topic_message then fire(w, v, true, TOPIC) else fire(w, v, true) end
end

-- Puts `v` into the channel (from a runtime source or a sender): to a waiting receiver, or
-- the buffer. Returns false if it had to be dropped (a full ticker channel).
local function offer(s, v, may_drop)
    local w = next_receiver(s)
    if w then hand(s, w, v); return true end
    local buf = s.buf
    if not buf then buf = qnew(); s.buf = buf end
    if may_drop and qlen(buf) >= math.max(s.size, 1) then return false end
    qpush(buf, v)
    return true
end

local function start_source(s)
    if s.src == to_event then return RT_start_event() end
    return RT_start_receive(s.topic)
end

-- While receivers wait on a runtime channel, keeps one operation outstanding for them; what
-- already waits in the mailbox is handed over at once.
local function pump(s)
    while s.tag == nil and not s.closed do
        if not has_receivers(s) then return end
        local tag, kind, a, b, c, d, e, f = start_source(s)
        if tag then
            s.tag = tag
            await(tag, s)
            return
        end
        local ok, v = s.src(kind, a, b, c, d, e, f)
        if not ok then return end
        offer(s, v)
    end
end

-- A runtime channel's operation completed.
local function on_source(s, kind, a, b, c, d, e, f)
    s.tag = nil
    local ok, v = s.src(kind, a, b, c, d, e, f)
    if ok then
        local q = s.recvq
        if type(q) == "thread" then
            -- The common case: one coroutine waits in a plain receive.
            s.recvq = nil
            if s.src == to_topic_message then wake(q, v, true, TOPIC) else wake(q, v, true) end
            return
        end
        offer(s, v)
    end
    if has_receivers(s) then pump(s) end
end

local function take(s)
    -- A buffered value first; then a waiting sender (unbuffered hand-over).
    local buf = s.buf
    if buf and buf[1] <= buf[2] then
        local v = qpop(buf)
        local w = next_waiter(s.sendq)
        if w then qpush(buf, w.value); fire(w, true) end
        return true, handed(s, v)
    end
    -- No call when no sender waits: each call level a receive reaches is a call record its
    -- coroutine keeps (the collector frees only every other spare one).
    local sq = s.sendq
    local w = sq and next_waiter(sq)
    if w then fire(w, true); return true, w.value end
    return false
end

-- The completion of operation `tag` that came while a coroutine of process `P` was preempted
-- (kept back in `P.later` until the run goes on: see `deliver_now`), taken out of there.
local function take_later(P, tag)
    local later = P.later
    if not later then return nil end
    for i = 1, #later do
        local l = later[i]
        if l[1] == tag then
            table.remove(later, i)
            if later[1] == nil then P.later = nil end
            return l[2], l[3], l[4], l[5], l[6], l[7], l[8]
        end
    end
    return nil
end

-- A runtime channel that nobody waits on any more gives its outstanding operation up, so that
-- what comes next stays in the mailbox (a receive dropped after its message came puts it back
-- in front). A completion kept back during a preemption (`P.later`) is the channel's already.
local function release(s)
    local tag = s.tag
    if not tag or has_receivers(s) then return end
    local kind, a, b, c, d, e, f = take_later(CUR, tag)
    forget(tag)
    s.tag = nil
    if kind ~= nil then
        local ok, v = s.src(kind, a, b, c, d, e, f)
        if ok then offer(s, v) end
    end
end

-- For a select that would take its default: what already waits for runtime channel `s` (in
-- the mailbox, or as the completion of its outstanding operation, taken by the runtime or
-- kept back during a preemption) without blocking.
local function poll(s)
    if s.closed then return false end
    local tag = s.tag
    if tag then
        local P = CUR
        local t, kind, a, b, c, d, e, f = RT.take_completion(tag)
        if t == nil then
            kind, a, b, c, d, e, f = take_later(P, tag)
            if kind == nil then return false end
        end
        P[-tag] = nil
        on_source(s, kind, a, b, c, d, e, f)
        return take(s)
    end
    local t, kind, a, b, c, d, e, f = RT.try_take(s.src == to_event, s.topic)
    if t == nil then return false end
    local ok, v = s.src(kind, a, b, c, d, e, f)
    if not ok then return false end
    return true, handed(s, v)
end

function Channel:send(v)
    local s = unbox(self, Channel)
    if not s then error("not a channel", 2) end
    if s.closed then error("send on closed channel", 2) end
    if s.src then error("cannot send on a runtime channel", 2) end
    local co = me()
    local w = next_receiver(s)
    if w then fire(w, v, true); return true end
    local size = s.size
    if size > 0 then
        local buf = s.buf
        if not buf then buf = qnew(); s.buf = buf end
        if qlen(buf) < size then qpush(buf, v); return true end
    end
    local q = s.sendq
    if not q then q = qnew(); s.sendq = q end
    qpush(q, { co = co, value = v })
    local ok = park()
    if not ok then error("send on closed channel", 2) end
    return true
end

-- A channel receive up to its wait: `true, value, ok` when it needs none, or `false` once the
-- running coroutine is queued to be woken. `Channel.receive` is a C function around it that
-- yields itself (`RT.parking`, see parking.rs): a process waiting in a receive, as most idle
-- ones do, holds that one frame above its own code and none of this one's registers. These
-- still count while it runs: inlining `start_source` here made every receiving coroutine's
-- stack outgrow Lua's initial 40 slots (it doubles, and is shrunk to 57 slots at best: about
-- 190 bytes more per idle process). Nor does it call what calls on (not even `type`): a
-- coroutine keeps a 64-byte call record for each call level it ever reached (collections free
-- every other spare one); the idle benchmark's processes kept five, now four.
local function receive_or_queue(s)
    -- (`s`: the channel's state, unboxed by the C function; level 3: past it, the caller's line.)
    if not s then error("not a channel", 3) end
    -- (`take`'s work, called only when there is some: a buffered value or a waiting sender.)
    if s.buf or s.sendq then
        local got, v = take(s)
        if got then return true, v, true end
    end
    if s.closed then return true, nil, false end
    local co = RUNNING
    if not co then error("blocking call outside a process", 3) end
    if s.src and s.tag == nil and (s.recvq == nil or not has_receivers(s)) then
        -- Nobody else waits here: what waits in the mailbox is mine at once; else I wait for
        -- the operation this starts.
        -- (`start_source`, without its call level; written as statements it needed
        -- registers enough to grow the stack.)
        local tag, kind, a, b, c, d, e, f =
            (s.src == to_event and RT_start_event or RT_start_receive)(s.topic)
        if tag then
            s.tag = tag
            CUR[-tag] = s -- (`await`)
        else
            local ok, val = s.src(kind, a, b, c, d, e, f)
            if ok then return true, handed(s, val), true end
        end
    end
    if s.recvq == nil then s.recvq = co else add_receiver(s, co) end -- (`add_receiver`)
    return false
end
Channel.receive = RT.parking(receive_or_queue, PARK, Channel)

local function close(s)
    s.closed = true
    while true do
        local w = next_receiver(s)
        if not w then break end
        fire(w, nil, false)
    end
    while true do
        local w = next_waiter(s.sendq)
        if not w then break end
        fire(w, false)
    end
end

function Channel:close()
    local s = unbox(self, Channel)
    if not s then error("not a channel", 2) end
    if s.closed then error("close of closed channel", 2) end
    close(s)
end

function Channel:case_receive() return { op = "recv", ch = self } end
function Channel:case_send(v) return { op = "send", ch = self, value = v } end

local function select_(cases)
    if type(cases) ~= "table" then error("channel.select: expected a table of cases", 2) end
    -- The cases as they are now (a case table may change while I wait): channel, state, and
    -- for a send case the value.
    local chs, states, sends, values, n = {}, {}, {}, {}, 0
    for i, c in ipairs(cases) do
        local ch, op = c.ch, c.op
        local s = unbox(ch, Channel)
        if not s or (op ~= "recv" and op ~= "send") then error("channel.select: bad case", 2) end
        chs[i], states[i], sends[i], n = ch, s, op == "send", i
        if op == "send" then values[i] = c.value end
    end
    -- Ready cases first, looked at from a case picked at random (as Go does: a select in a
    -- loop serves every ready case, where the first one in order starved the others).
    local first = n > 1 and math_random(n) or 1
    for k = 0, n - 1 do
        local i = (first + k - 1) % n + 1
        local s = states[i]
        if not sends[i] then
            local got, v = take(s)
            if got then return { channel = chs[i], value = v, ok = true } end
            if s.closed then return { channel = chs[i], value = nil, ok = false } end
        else
            if s.closed then error("send on closed channel", 2) end
            if s.src then error("cannot send on a runtime channel", 2) end
            local w = next_receiver(s)
            if w then fire(w, values[i], true); return { channel = chs[i], ok = true } end
            local buf = s.buf
            if s.size > 0 and (not buf or qlen(buf) < s.size) then
                if not buf then buf = qnew(); s.buf = buf end
                qpush(buf, values[i])
                return { channel = chs[i], ok = true }
            end
        end
    end
    if cases.default then
        -- A runtime channel is ready when its message already waits in the mailbox.
        for i = 1, n do
            local s = states[i]
            if not sends[i] and s.src then
                local got, v = poll(s)
                if got then return { channel = chs[i], value = v, ok = true } end
            end
        end
        return { default = true }
    end
    local co = me()
    local sel = { fired = false }
    for i = 1, n do
        local s = states[i]
        if not sends[i] then
            add_receiver(s, { co = co, sel = sel, case = i })
            if s.src then pump(s) end
        else
            local q = s.sendq
            if not q then q = qnew(); s.sendq = q end
            qpush(q, { co = co, sel = sel, case = i, value = values[i] })
        end
        -- A runtime channel may have had something for me at once.
        if sel.fired then break end
    end
    local i, v, ok = park()
    -- My entries on the other cases' channels go now: left until someone used those channels,
    -- a select in a loop grew their queues without end (and a runtime channel kept counting
    -- me as its receiver, its operation pulling the next message out of the mailbox for me).
    for j = 1, n do
        if j ~= i then
            local st = states[j]
            if sends[j] then
                purge(st.sendq)
            else
                purge(st.recvq)
                release(st)
            end
        end
    end
    if sends[i] then
        if v == false then error("send on closed channel", 2) end
        return { channel = chs[i], ok = true }
    end
    if ok then v = handed(states[i], v) end
    return { channel = chs[i], value = v, ok = ok }
end

local channel = {
    new = function(size)
        if size ~= nil and (math.type(size) ~= "integer" or size < 0) then
            error("channel.new: size must be a non-negative integer", 2)
        end
        return (new_channel(size or 0))
    end,
    select = select_,
}

local function runtime_channel(src, topic)
    -- Made at the size it keeps: with `tag` and `recvq` added, an inbox's state fills the four
    -- hash nodes this makes and never grows (growing leaves the smaller parts as garbage).
    return box({ size = 0, src = src, topic = topic }, Channel)
end

-- Runtime channels ------------------------------------------------------------------------------
-- Per-process singletons: the inbox, topic and event channels. Runtime channels buffer without
-- limit: what the runtime handed over is never dropped.
local function inbox()
    local P = CUR
    local ch = P[INBOX]
    if not ch then ch = runtime_channel(to_message); P[INBOX] = ch end
    return ch
end

local function events()
    local P = CUR
    local ch = P.events
    if not ch then ch = runtime_channel(to_event); P.events = ch end
    return ch
end

local function listen(topic)
    local P = CUR
    if type(topic) ~= "string" then return nil, new_error("INVALID", "listen: topic must be a string") end
    local ok, err = check(RT.listen(topic))
    if not ok then return nil, err end
    local ch = runtime_channel(to_topic_message, topic)
    local topics = P.topics
    if not topics then topics = {}; P.topics = topics end
    topics[topic] = ch
    return ch
end

local function unlisten(ch)
    local P = CUR
    local topics = P.topics
    local s = unbox(ch, Channel)
    local topic = s and s.topic
    if not topic or not topics or topics[topic] ~= ch then
        return nil, new_error("NOT_FOUND", "unlisten: not a listened channel")
    end
    topics[topic] = nil
    -- A message the runtime handed to this topic's receive while a coroutine was preempted
    -- waits in `P.later` (see `deliver_now`), out of the runtime's reach: it goes to the inbox
    -- here, ahead of the queued ones `RT.unlisten` moves there (it came before them).
    local kind, from, mtopic, data
    if s.tag then
        kind, from, mtopic, data = take_later(P, s.tag)
        forget(s.tag)
        s.tag = nil
    end
    local ok, err = check(RT.unlisten(topic))
    if not s.closed then close(s) end
    if kind == MSG then
        local _, msg = to_message(kind, from, mtopic, data)
        offer(unbox(inbox(), Channel), msg)
    end
    if not ok then return nil, err end
    return true
end
-- Process API ----------------------------------------------------------------------------------

-- `send` and the spawns are RT's C functions themselves: they make their error objects.
RT.error_class(Error)

local process = {
    pid = RT.pid,
    spawn = RT.spawn,
    spawn_monitored = RT.spawn_monitored,
    spawn_linked = RT.spawn_linked,
    spawn_linked_monitored = RT.spawn_linked_monitored,
    exec = function(id, host, ...)
        return await_result(RT.start_exec, id, host, ...)
    end,
    send = RT.send,
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
        for k, v in pairs(o) do
            if k ~= "trap_links" and k ~= "upgradable" then
                return nil, new_error("INVALID", "set_options: unknown option " .. tostring(k))
            elseif type(v) ~= "boolean" then
                return nil, new_error("INVALID", "set_options: " .. k .. " must be a boolean, not a " .. type(v))
            end
        end
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
function Time:unix_nano() return self._ns end
function Time:sub(t) return self._ns - t._ns end
local function now() return setmetatable({ _ns = RT.now() }, Time) end

local function sleep(d)
    local ns = duration(d)
    local co = me()
    await(RT_start_sleep(ns), co)
    park()
end

-- Arms the timer of channel state `s` (size 1): it receives `time.now()` once after `ns` (a
-- channel of size 1 never holds two).
local function arm_timer(s, ns)
    local tag = RT_start_sleep(ns)
    s.timer = tag
    await(tag, function() s.timer = nil; offer(s, now(), true) end)
end

-- A channel that receives `time.now()` once after `ns`, and its state.
local function after_ns(ns)
    local ch, s = new_channel(1)
    arm_timer(s, ns)
    return ch, s
end

-- Timers and tickers are opaque like channels: {ch = the channel, s = its state} and for a
-- ticker `src` (its operation).
local Timer = { __name = "spindle.timer", __metatable = "locked" }
function Timer:channel() return unbox(self, Timer).ch end
local function stop_timer(t)
    local s = t.s
    -- A time it put in its channel that nobody received is from before: no receive after a
    -- stop or a reset gets one (as in Go since 1.23).
    s.buf = nil
    if s.timer then forget(s.timer); s.timer = nil; return true end
    return false
end
function Timer:stop() return stop_timer(unbox(self, Timer)) end
function Timer:reset(d)
    local ns = duration(d)
    local t = unbox(self, Timer)
    local active = stop_timer(t)
    arm_timer(t.s, ns)
    return active
end

local Ticker = { __name = "spindle.ticker", __metatable = "locked" }
function Ticker:channel() return unbox(self, Ticker).ch end
function Ticker:stop()
    local src = unbox(self, Ticker).src
    src.stopped = true
    if src.tag then forget(src.tag); src.tag = nil end
end

local time = {
    sleep = sleep,
    after = function(d) return (after_ns(duration(d))) end,
    timer = function(d)
        local ch, s = after_ns(duration(d))
        return box({ ch = ch, s = s }, Timer)
    end,
    ticker = function(d)
        local ns = duration(d)
        if ns <= 0 then error("ticker: duration must be positive", 2) end
        local ch, s = new_channel(1)
        local src = {}
        -- Ticks keep to a grid (start + k * period): each is due a period after the last one
        -- was due, not after it came, so late deliveries do not stretch the period; ticks a
        -- slow reader missed are dropped, as in Go.
        local due = RT.clock() + ns
        local function arm()
            src.tag = RT_start_sleep(due - RT.clock())
            await(src.tag, function()
                src.tag = nil
                offer(s, now(), true)
                if not src.stopped then
                    local t = RT.clock()
                    due = due + ns
                    if due <= t then due = due + ((t - due) // ns + 1) * ns end
                    arm()
                end
            end)
        end
        arm()
        return box({ ch = ch, src = src }, Ticker)
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
        elseif first == PREEMPTED then
            -- Preempted inside the user's coroutine: the whole process gives way.
            co_yield(PREEMPTED)
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
        if not CUR then error("coroutine.spawn outside a process", 2) end
        local co
        local n = select("#", ...)
        if n <= 3 then
            co = co_create(f)
            local a, b, c = ...
            if n == 0 then a = NOARG end
            if n <= 1 then b = NOARG end
            if n <= 2 then c = NOARG end
            wake(co, a, b, c)
        else
            local args = pack(...)
            co = co_create(function() return f(unpack(args, 1, args.n)) end)
            wake(co, NOARG, NOARG, NOARG)
        end
        return co
    end,
}

-- The process scheduler -------------------------------------------------------------------------

local function enter(P)
    -- A step that ended in an error (out of memory in a handler) may have left its ready
    -- coroutines behind: they are not this process's to run.
    if QT ~= 1 then RQ, QH, QT = {}, 1, 1 end
    RUNNING = nil
    CUR = P
    local ready = P.ready
    if ready then
        P.ready = nil
        RQ, QH, QT = ready[1], ready[2], ready[3]
    end
end

-- A step ends. A process whose coroutine was preempted may have been stopped in the middle of
-- `wake`, holding the queue and its tail in locals: the queue goes with the process (the
-- island takes a new one), so that when the coroutine goes on, the queue and tail it holds are
-- what `enter` puts back. So does a queue that still holds ready coroutines (rare).
local function leave(P, ...)
    if QH ~= QT or P.preempted then
        P.ready = { RQ, QH, QT }
        RQ, QH, QT = {}, 1, 1
    end
    CUR = nil
    return ...
end

-- Hands a completion to what waits for it (see the protocol above); while a coroutine is
-- preempted, it is kept until that coroutine has run.
local function deliver_now(P, tag, kind, a, b, c, d, e, f)
    if P.preempted then
        local later = P.later
        if not later then later = {}; P.later = later end
        later[#later + 1] = { tag, kind, a, b, c, d, e, f }
        return
    end
    local h = P[-tag]
    if h == nil then return end
    P[-tag] = nil
    local t = type(h)
    if t == "thread" then
        wake(h)
    elseif t == "table" then
        on_source(h, kind, a, b, c, d, e, f)
    else
        h(kind, a, b, c, d, e, f)
    end
end

local function deliver_later(P)
    local later = P.later
    P.later = nil
    for i = 1, #later do
        local l = later[i]
        deliver_now(P, l[1], l[2], l[3], l[4], l[5], l[6], l[7], l[8])
    end
end

-- The messages and events the runtime handed over that the process's code has not received
-- yet: those a woken coroutine has not run with yet, those waiting in the buffer of its inbox's,
-- events' or listened topics' channel, those kept back during a preemption (`P.later`), in the
-- order they came (an event as the completion it came in, marked `event`). On an upgrade they
-- go back to the mailbox for the new code, which would never see them otherwise.
local RT_metatable = RT.metatable
local function untaken(P)
    local out = {}
    local function add(v)
        if type(v) ~= "table" then return end
        if RT_metatable(v) == Message then
            out[#out + 1] = v
        elseif EVENTS[v] then
            out[#out + 1] = EVENTS[v]
        end
    end
    local function buffered(ch)
        local s = ch and unbox(ch, Channel)
        local buf = s and s.buf
        if buf then
            for i = buf[1], buf[2] do add(buf[i]) end
        end
    end
    -- Handed to a coroutine first: a message is buffered only while no receiver waits, and a
    -- receiver takes from the buffer first, so what a woken coroutine holds came before.
    local q = RQ
    for i = QH, QT - 1, 4 do
        add(q[i + 1]); add(q[i + 2]); add(q[i + 3])
    end
    buffered(P[INBOX])
    buffered(P.events)
    for _, ch in pairs(P.topics or {}) do buffered(ch) end
    for _, l in ipairs(P.later or {}) do
        if l[2] == MSG then
            out[#out + 1] = { l[3], l[4], l[5] }
        elseif l[2] == EVENT then
            out[#out + 1] = { l[3], l[4], l[5], l[6], l[7], l[8], event = true }
        end
    end
    return out
end

-- What a coroutine's run ended with: nothing (it waits, died, or yielded plainly), or the
-- values that end the step.
local function ran(P, co, ok, r1, r2, r3)
    if not ok then return "exit", false, r1 end
    if co_status(co) == "dead" then
        if co == P[MAIN] then return "exit", true, r1 end
        return nil
    end
    if r1 == PREEMPTED then
        P.preempted = co
        return "yield"
    end
    if r1 == UPGRADE then return "upgrade", r2, r3, untaken(P) end
    -- A plain coroutine.yield at the top of a process coroutine: run it again later.
    wake(co, NOARG, NOARG, NOARG)
    return nil
end

-- Runs the process's ready coroutines until all wait; returns what the step ends with.
-- Order: a coroutine that was preempted finishes what it was doing first; then the completions
-- that came meanwhile are handled (they wake coroutines); then the ready coroutines, in order.
local function run(P)
    while true do
        local co, a, b, c
        local pre = P.preempted
        if pre then
            co = pre
            P.preempted = nil
        else
            if P.later then deliver_later(P) end
            local h = QH
            if h == QT then break end
            local q = RQ
            co, a, b, c = q[h], q[h + 1], q[h + 2], q[h + 3]
            q[h], q[h + 1], q[h + 2], q[h + 3] = nil, nil, nil, nil
            h = h + 4
            if h == QT then QH, QT = 1, 1 else QH = h end
        end
        RUNNING = co
        local ok, r1, r2, r3
        if pre then
            -- It goes on where the hook stopped it, with no values: a hook's yield takes none,
            -- and passed all the same, each resume raised the top of its frame by three (Lua
            -- makes room for them there), so a function preempted often enough overflowed.
            ok, r1, r2, r3 = co_resume(co)
        elseif c ~= NOARG then
            ok, r1, r2, r3 = co_resume(co, a, b, c)
        elseif a == NOARG then
            ok, r1, r2, r3 = co_resume(co)
        elseif b == NOARG then
            ok, r1, r2, r3 = co_resume(co, a)
        else
            ok, r1, r2, r3 = co_resume(co, a, b)
        end
        RUNNING = nil
        if not ok or r1 ~= PARK then
            local s, x, y, z = ran(P, co, ok, r1, r2, r3)
            if s then return leave(P, s, x, y, z) end
        end
    end
    return leave(P, "wait")
end

-- A step, with the last completion that came (if any) as `tag, ...`.
local function step(P, tag, kind, a, b, c, ...)
    -- The common case first: a message for the inbox, where one coroutine waits in a plain
    -- receive, and nothing else to do (what `deliver_now`, `on_source` and `run` would do).
    -- (Without `type`, a call: a message completes only a runtime channel's receive, so
    -- `P[-tag]` is its state or nil; its `recvq` is a coroutine or nil unless `many`.)
    if kind == MSG and QT == 1 and not P.ready and not P.preempted and not P.later then
        local s = P[-tag]
        local co = s and s.src == to_message and not s.many and s.recvq
        if co then
            s.recvq = nil
            P[-tag] = nil
            s.tag = nil
            CUR = P
            RUNNING = co
            local ok, r1, r2, r3 = co_resume(co, setmetatable({ a, b, c }, Message), true)
            RUNNING = nil
            if not ok or r1 ~= PARK then
                local st, x, y, z = ran(P, co, ok, r1, r2, r3)
                if st then return leave(P, st, x, y, z) end
            end
            if QH == QT and not P.preempted then
                CUR = nil
                return "wait"
            end
            return run(P)
        end
    end
    enter(P)
    if tag ~= nil then deliver_now(P, tag, kind, a, b, c, ...) end
    return run(P)
end

-- A completion that came before the step's last one.
local function deliver(P, tag, ...)
    enter(P)
    deliver_now(P, tag, ...)
    return leave(P)
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
-- out the shared metatable if the class were its own `__index`): instances look their methods
-- up in a table of their own that nothing hands out (the metatable is locked, and the methods
-- table holds no `__index`), so one lookup finds a method.
local function seal(class)
    local methods = {}
    for k, v in raw_next, class do
        if type(k) ~= "string" or k:sub(1, 2) ~= "__" then methods[k] = v end
    end
    for k in raw_next, methods do class[k] = nil end
    class.__index = methods
end
seal(Error)
seal(Channel)
seal(Message)
seal(Time)
seal(Timer)
seal(Ticker)

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
-- No finalizers: a `__gc` would run during some later collection, in whatever process is
-- being stepped then (or on the scheduler's thread), unpreempted. Lua marks a table for
-- finalization only if its metatable has the field when it is set, so refusing it here is
-- enough; a `__gc` added to the metatable later is never called.
BASE.setmetatable = function(t, mt)
    if PROTECTED[t] then error("cannot change a protected metatable", 2) end
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
        error("setmetatable: finalizers (__gc) are not available to processes", 2)
    end
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
        env = CUR and CUR[ENV]
        if env == nil then return nil, "load outside a process" end
    end
    return raw_load(chunk, chunkname, "t", env)
end
local safe_string = subset(string, { "byte", "char", "find", "format", "gmatch", "gsub", "len",
    "lower", "match", "rep", "reverse", "sub", "upper", "pack", "packsize", "unpack" })
-- Pattern matching that a time slice can stop (see pattern.rs): the library's matches in C,
-- where no hook runs, and a pattern that backtracks without end would hold the island.
safe_string.find, safe_string.match = RT.str_find, RT.str_match
safe_string.gmatch, safe_string.gsub = RT.str_gmatch, RT.str_gsub
BASE.string = readonly(safe_string, "string")
BASE.table = readonly(table, "table")
-- Random numbers per process: the library's generator is one per Lua state, so processes of
-- an island shared it, and one could seed it (math.randomseed) or read it to know another's
-- draws. Each process gets its own xoshiro256** (the library's algorithm), seeded from the
-- library's generator when it first draws, or by its own randomseed.
local function rotl(x, n) return (x << n) | (x >> (64 - n)) end

local function next_random(s)
    local s0, s1, s2, s3 = s[1], s[2], s[3], s[4]
    local result = rotl(s1 * 5, 7) * 9
    local t = s1 << 17
    s2 = s2 ~ s0
    s3 = s3 ~ s1
    s1 = s1 ~ s2
    s0 = s0 ~ s3
    s2 = s2 ~ t
    s[1], s[2], s[3], s[4] = s0, s1, s2, rotl(s3, 45)
    return result
end

local function random_state()
    local P = CUR
    if not P then error("math.random outside a process", 3) end
    local s = P.rng
    if not s then
        s = { math_random(0), math_random(0), math_random(0), math_random(0) }
        P.rng = s
    end
    return s
end

local math_ = {}
for k, v in pairs(math) do math_[k] = v end
local math_type, math_floor, math_tointeger, math_ult = math.type, math.floor, math.tointeger, math.ult

-- math.random: as the library's, with the process's own generator.
function math_.random(m, n)
    local s = random_state()
    local r = next_random(s)
    if m == nil then return (r >> 11) * 0x1p-53 end
    local lo, hi
    if n == nil then
        lo, hi = 1, math_tointeger(m)
        if hi == nil then error("bad argument #1 to 'random' (number has no integer representation)", 2) end
        if m == 0 then return r end
    else
        lo, hi = math_tointeger(m), math_tointeger(n)
        if lo == nil or hi == nil then
            error("bad argument to 'random' (number has no integer representation)", 2)
        end
    end
    if lo > hi then error("bad argument to 'random' (interval is empty)", 2) end
    -- A draw in [0, hi - lo], unbiased: the bits of the range's size, drawn again when above.
    local range = hi - lo
    local lim = range
    lim = lim | (lim >> 1); lim = lim | (lim >> 2); lim = lim | (lim >> 4)
    lim = lim | (lim >> 8); lim = lim | (lim >> 16); lim = lim | (lim >> 32)
    local v = r & lim
    while math_ult(range, v) do v = next_random(s) & lim end
    return lo + v
end

-- math.randomseed: seeds the process's own generator (with no seed, a fresh random one).
function math_.randomseed(x, y)
    local P = CUR
    if not P then error("math.randomseed outside a process", 2) end
    if x == nil then
        P.rng = nil
        random_state()
        return
    end
    local n = math_type(x) == "float" and math_floor(x) or x
    if math_type(n) ~= "integer" then
        n = math_tointeger(n)
        if n == nil then error("bad argument #1 to 'randomseed' (number expected)", 2) end
    end
    local s = { n, 0xff, math_tointeger(y or 0) or 0, 0 }
    P.rng = s
    for _ = 1, 16 do next_random(s) end
end

BASE.math = readonly(math_, "math")
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
    readline = function() return await_result(RT.start_readline) end,
}, "io")
if json then modules.json = readonly(json, "json") end

BASE.require = function(name)
    local P = CUR
    local m = modules[name]
    if P and P[GRANTED][name] and m then return m end
    if P and P[GRANTED][name] and RT.module then
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

-- A new process: its state table, and its first step (the main coroutine starts).
local function start(chunk, method, granted, ...)
    local env = new_env()
    local main = co_create(run_main)
    RT_arm(main)
    local P = { main, env, granted, false }
    enter(P)
    RUNNING = main
    local ok, r1, r2, r3 = co_resume(main, chunk, env, method, ...)
    RUNNING = nil
    if not ok or r1 ~= PARK then
        local s, x, y, z = ran(P, main, ok, r1, r2, r3)
        if s then return P, leave(P, s, x, y, z) end
    end
    return P, run(P)
end

-- What an error raised in a process means: kind and message. This runs on the scheduler's
-- thread, so the process's own code (an error object's `__tostring`) runs only in a coroutine
-- of its own with the preemption hook: if it is preempted or blocks, it is abandoned.
local function describe_error(e)
    local t = type(e)
    if t == "string" then return "UNKNOWN", e end
    if t == "table" and getmetatable(e) == "locked" then
        local kind, message = rawget(e, "_kind"), rawget(e, "_message")
        if type(kind) == "string" and type(message) == "string" then return kind, message end
    end
    if t == "number" or t == "boolean" or t == "nil" then return "UNKNOWN", tostring(e) end
    local mt = RT.metatable(e)
    local f = mt and rawget(mt, "__tostring")
    if f then
        local co = co_create(f)
        RT_arm(co)
        local ok, text = co_resume(co, e)
        if ok and co_status(co) == "dead" and type(text) == "string" then return "UNKNOWN", text end
    end
    return "UNKNOWN", "(error object is a " .. t .. " value)"
end

return {
    start = start,
    step = step,
    deliver = deliver,
    describe_error = describe_error,
}
