//! Lua's string patterns (`string.find`, `match`, `gmatch`, `gsub`), matched so that a process
//! can be preempted in the middle of a match.
//!
//! The string library matches in C, where no hook runs: a pattern that backtracks without end
//! (`("a*"):rep(20) .. "b"` against a long run of `a`s) held its worker, and with it every
//! process of its island, for as long as it ran, and `terminate` could not reach it. These are
//! the same four functions, with the same results and the same errors raised at the same
//! points, matched by a machine whose whole state is data: the recursion of the C matcher (a
//! call per capture, per `?` tried and per repetition count tried) is a stack of frames here.
//! Every [`LOOK_EVERY`] steps the machine looks whether the process's time slice is over (the
//! time-slice signal armed the running coroutine, see [`crate::slice`]); if so the function
//! yields as the preemption hook does, its state copied into a userdata on the coroutine's
//! stack, and a continuation takes the match up where it stopped when the process runs again.
//! A `gsub` replacement function is called with a continuation (`lua_callk`), so that its code
//! is preempted (and may wait) like any other.
//!
//! No value with a destructor lives in a frame of these functions while Lua may raise or yield
//! (both leave by `longjmp`): the states are plain data, kept on the Rust stack or in Lua
//! userdata; the frames of a match in progress are in a per-thread scratch vector, used only
//! between two calls into Lua (a paused match takes its frames along into its userdata).

use std::cell::RefCell;
use std::ffi::c_int;
use std::mem::size_of;
use std::ptr;

use mlua::{Lua, Table, ffi};

use crate::api::Current;

/// Captures a pattern may have (lstrlib's `LUA_MAXCAPTURES`).
const MAX_CAPTURES: usize = 32;
/// Nested calls the C matcher allows itself (`MAXCCALLS`): one for the match, one per frame.
const MAX_DEPTH: usize = 200;
const CAP_UNFINISHED: isize = -1;
const CAP_POSITION: isize = -2;
/// A pattern without these is searched for as plain text by `find`.
const SPECIALS: &[u8] = b"^$*+?.([%-";
/// Steps of the machine between two looks at the time slice.
const LOOK_EVERY: usize = 256;

/// Stack slots of `find` and `match` (their four arguments), of `gsub`.
const FIND_SLOTS: c_int = 4;
const GSUB_STATE: c_int = 5;
const GSUB_BUFFER: c_int = 6;

/// Adds `str_find`, `str_match`, `str_gmatch` and `str_gsub` to the prelude's `RT` table. Each
/// gets the state's [`Current`] as its first upvalue (null in a state without one), through
/// which a match that cannot yield counts its slices with the step's other stuck ones.
pub(crate) fn register(lua: &Lua, rt: &Table) -> mlua::Result<()> {
    let current =
        lua.app_data_ref::<Current>().map_or(ptr::null(), |c| std::ptr::from_ref::<Current>(&c));
    let fns: [(&std::ffi::CStr, ffi::lua_CFunction); 4] = [
        (c"str_find", str_find),
        (c"str_match", str_match),
        (c"str_gmatch", str_gmatch),
        (c"str_gsub", str_gsub),
    ];
    // SAFETY: `exec_raw` runs the closure in protected mode with `rt` at index 1. Each function
    // follows the `lua_CFunction` protocol and holds no value with a destructor where Lua may
    // leave it by `longjmp` (see the module's docs); the app data box it points to outlives
    // every call (it is dropped with the state).
    unsafe {
        lua.exec_raw::<()>(rt, |state| {
            for (name, f) in fns {
                ffi::lua_pushlightuserdata(state, current.cast_mut().cast());
                ffi::lua_pushcclosure(state, f, 1);
                ffi::lua_setfield(state, 1, name.as_ptr());
            }
        })
    }
}

/// The [`Current`] in upvalue `n` of the running function, if its state has one.
///
/// # Safety
/// Called from a function of this module whose upvalue `n` is the pointer `register` gave.
unsafe fn current<'a>(state: *mut ffi::lua_State, n: c_int) -> Option<&'a Current> {
    // SAFETY: the caller's contract; see `register`.
    unsafe { ffi::lua_touserdata(state, ffi::lua_upvalueindex(n)).cast::<Current>().as_ref() }
}

// The machine ------------------------------------------------------------------------------------

/// Why a pattern, a capture or a replacement is wrong: the C library's messages.
#[derive(Clone, Copy, Debug)]
enum Failure {
    EndsWithEscape,
    MissingBracket,
    BalanceArguments,
    FrontierBracket,
    PatternCapture,
    CaptureIndex(i64),
    TooManyCaptures,
    TooComplex,
    Unfinished,
    ReplacementEscape,
    /// The process ran slice after slice in a match where it could not yield.
    Stuck,
}

impl Failure {
    /// Pushes the message.
    ///
    /// # Safety
    /// `state` has room for one value.
    unsafe fn push(self, state: *mut ffi::lua_State) {
        let text: &str = match self {
            Failure::EndsWithEscape => "malformed pattern (ends with '%')",
            Failure::MissingBracket => "malformed pattern (missing ']')",
            Failure::BalanceArguments => "malformed pattern (missing arguments to '%b')",
            Failure::FrontierBracket => "missing '[' after '%f' in pattern",
            Failure::PatternCapture => "invalid pattern capture",
            Failure::CaptureIndex(i) => {
                // SAFETY: the format takes one integer, which is passed.
                unsafe {
                    ffi::lua_pushfstring(
                        state,
                        c"invalid capture index %%%I".as_ptr(),
                        i as ffi::lua_Integer,
                    )
                };
                return;
            }
            Failure::TooManyCaptures => "too many captures",
            Failure::TooComplex => "pattern too complex",
            Failure::Unfinished => "unfinished capture",
            Failure::ReplacementEscape => "invalid use of '%' in replacement string",
            Failure::Stuck => crate::preempt::STUCK,
        };
        // SAFETY: the caller's contract.
        unsafe { ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len()) };
    }
}

/// Raises `f` as the C library would: its message after the position of the caller.
///
/// # Safety
/// Called from a C function of this module, with nothing to drop in the frames it leaves.
unsafe fn raise(state: *mut ffi::lua_State, f: Failure) -> c_int {
    // SAFETY: the caller's contract; `luaL_where` and the message take two slots.
    unsafe {
        ffi::luaL_checkstack(state, 2, ptr::null());
        if matches!(f, Failure::Stuck) {
            f.push(state);
        } else {
            ffi::luaL_where(state, 1);
            f.push(state);
            ffi::lua_concat(state, 2);
        }
        ffi::lua_error(state)
    }
}

/// The subject and the pattern of a match. Bytes past either end read as 0, as the C matcher
/// reads the terminating NUL of a Lua string.
struct Text<'a> {
    s: &'a [u8],
    p: &'a [u8],
}

impl Text<'_> {
    fn sat(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn pat(&self, i: usize) -> u8 {
        self.p.get(i).copied().unwrap_or(0)
    }

    /// Where the single-character class at `p` ends (its optional suffix).
    fn class_end(&self, p: usize) -> Result<usize, Failure> {
        let end = self.p.len();
        let c = self.pat(p);
        let mut p = p + 1;
        match c {
            b'%' => {
                if p >= end {
                    return Err(Failure::EndsWithEscape);
                }
                Ok(p + 1)
            }
            b'[' => {
                if self.pat(p) == b'^' {
                    p += 1;
                }
                loop {
                    if p >= end {
                        return Err(Failure::MissingBracket);
                    }
                    let c = self.pat(p);
                    p += 1;
                    if c == b'%' && p < end {
                        p += 1;
                    }
                    if self.pat(p) == b']' {
                        return Ok(p + 1);
                    }
                }
            }
            _ => Ok(p),
        }
    }

    /// Whether byte `c` is in the set `[...]` from `p` (its `[`) to `ec` (its `]`).
    fn in_set(&self, c: u8, p: usize, ec: usize) -> bool {
        let mut p = p;
        let mut sig = true;
        if self.pat(p + 1) == b'^' {
            sig = false;
            p += 1;
        }
        loop {
            p += 1;
            if p >= ec {
                return !sig;
            }
            if self.pat(p) == b'%' {
                p += 1;
                if class_has(c, self.pat(p)) {
                    return sig;
                }
            } else if self.pat(p + 1) == b'-' && p + 2 < ec {
                p += 2;
                if self.pat(p - 2) <= c && c <= self.pat(p) {
                    return sig;
                }
            } else if self.pat(p) == c {
                return sig;
            }
        }
    }

    /// Whether the character at `s` matches the class from `p` to `ep`.
    fn single(&self, s: usize, p: usize, ep: usize) -> bool {
        let Some(&c) = self.s.get(s) else { return false };
        match self.pat(p) {
            b'.' => true,
            b'%' => class_has(c, self.pat(p + 1)),
            b'[' => self.in_set(c, p, ep - 1),
            x => x == c,
        }
    }
}

/// Whether `c` is in class `%cl` (in the C locale).
fn class_has(c: u8, cl: u8) -> bool {
    let res = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => matches!(c, b' ' | b'\t'..=b'\r'),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        b'z' => c == 0,
        _ => return cl == c,
    };
    if cl.is_ascii_lowercase() { res } else { !res }
}

#[derive(Clone, Copy)]
struct Capture {
    init: usize,
    /// Its length, or [`CAP_UNFINISHED`] or [`CAP_POSITION`].
    len: isize,
}

/// A call of the C matcher waiting for what follows to match: what it does when that fails.
#[derive(Clone, Copy)]
enum Frame {
    /// A capture was opened: it is dropped again.
    Open,
    /// Capture `.0` was closed: it is open again.
    Close(usize),
    /// `x?` took an `x` at `s`: what follows is tried without it, from `next`.
    Optional { s: usize, next: usize },
    /// `x*` (or `x+`) from `s`: what follows is tried after one `x` fewer than `i`.
    Max { s: usize, i: usize, next: usize },
    /// `x-` (the class from `p` to `ep`): what follows is tried after one `x` more than `s`.
    Min { s: usize, p: usize, ep: usize },
}

#[derive(Clone, Copy)]
enum Mode {
    /// Match the pattern from `p` against the subject from `s`.
    Run { s: usize, p: usize },
    /// Count the `x`s of `x*` from `s` (`i` so far; the class from `p` to `ep`).
    Count { s: usize, i: usize, p: usize, ep: usize },
    /// The innermost call ends: where the match ended, or that it failed.
    Return(Option<usize>),
}

thread_local! {
    /// The frames of the match the thread runs (see the module's docs).
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// A match at one position of the subject, stopped anywhere.
#[derive(Clone, Copy)]
struct Machine {
    mode: Mode,
    level: usize,
    caps: [Capture; MAX_CAPTURES],
}

impl Machine {
    fn new() -> Machine {
        Machine {
            mode: Mode::Return(None),
            level: 0,
            caps: [Capture { init: 0, len: 0 }; MAX_CAPTURES],
        }
    }

    fn push(frames: &mut Vec<Frame>, f: Frame) -> Result<(), Failure> {
        if frames.len() + 1 >= MAX_DEPTH {
            return Err(Failure::TooComplex);
        }
        frames.push(f);
        Ok(())
    }

    /// Runs until the match ends (`Some`: where, or `None` for no match) or `fuel` is spent.
    fn run(
        &mut self,
        t: &Text,
        frames: &mut Vec<Frame>,
        fuel: &mut usize,
    ) -> Result<Option<Option<usize>>, Failure> {
        loop {
            if *fuel == 0 {
                return Ok(None);
            }
            *fuel -= 1;
            self.mode = match self.mode {
                Mode::Run { s, p } => self.body(t, frames, s, p, fuel)?,
                Mode::Count { s, mut i, p, ep } => {
                    while t.single(s + i, p, ep) {
                        i += 1;
                        if *fuel == 0 {
                            self.mode = Mode::Count { s, i, p, ep };
                            return Ok(None);
                        }
                        *fuel -= 1;
                    }
                    Self::push(frames, Frame::Max { s, i, next: ep + 1 })?;
                    Mode::Run { s: s + i, p: ep + 1 }
                }
                Mode::Return(r) => {
                    let Some(top) = frames.last_mut() else { return Ok(Some(r)) };
                    let (done, mode) = self.back(t, top, r);
                    if done {
                        frames.pop();
                    }
                    mode
                }
            };
        }
    }

    /// What frame `top` does with result `r` of what followed it: whether it is done (the
    /// caller pops it), and the mode to go on in.
    fn back(&mut self, t: &Text, top: &mut Frame, r: Option<usize>) -> (bool, Mode) {
        if r.is_some() {
            return (true, Mode::Return(r));
        }
        match *top {
            Frame::Open => {
                self.level -= 1;
                (true, Mode::Return(None))
            }
            Frame::Close(l) => {
                self.caps[l].len = CAP_UNFINISHED;
                (true, Mode::Return(None))
            }
            Frame::Optional { s, next } => (true, Mode::Run { s, p: next }),
            Frame::Max { i: 0, .. } => (true, Mode::Return(None)),
            Frame::Max { s, i, next } => {
                *top = Frame::Max { s, i: i - 1, next };
                (false, Mode::Run { s: s + i - 1, p: next })
            }
            Frame::Min { s, p, ep } => {
                if t.single(s, p, ep) {
                    *top = Frame::Min { s: s + 1, p, ep };
                    (false, Mode::Run { s: s + 1, p: ep + 1 })
                } else {
                    (true, Mode::Return(None))
                }
            }
        }
    }

    /// The C matcher's body from pattern position `p` and subject position `s`, up to a call
    /// (a frame pushed: the mode of what it calls) or a return.
    fn body(
        &mut self,
        t: &Text,
        frames: &mut Vec<Frame>,
        mut s: usize,
        mut p: usize,
        fuel: &mut usize,
    ) -> Result<Mode, Failure> {
        loop {
            if *fuel == 0 {
                return Ok(Mode::Run { s, p });
            }
            *fuel -= 1;
            if p == t.p.len() {
                return Ok(Mode::Return(Some(s)));
            }
            match t.pat(p) {
                b'(' => {
                    let (what, next) = if t.pat(p + 1) == b')' {
                        (CAP_POSITION, p + 2)
                    } else {
                        (CAP_UNFINISHED, p + 1)
                    };
                    if self.level >= MAX_CAPTURES {
                        return Err(Failure::TooManyCaptures);
                    }
                    self.caps[self.level] = Capture { init: s, len: what };
                    self.level += 1;
                    Self::push(frames, Frame::Open)?;
                    return Ok(Mode::Run { s, p: next });
                }
                b')' => {
                    let l = (0..self.level)
                        .rev()
                        .find(|&l| self.caps[l].len == CAP_UNFINISHED)
                        .ok_or(Failure::PatternCapture)?;
                    self.caps[l].len = (s - self.caps[l].init) as isize;
                    Self::push(frames, Frame::Close(l))?;
                    return Ok(Mode::Run { s, p: p + 1 });
                }
                b'$' if p + 1 == t.p.len() => {
                    return Ok(Mode::Return((s == t.s.len()).then_some(s)));
                }
                b'%' if t.pat(p + 1) == b'b' => match self.balance(t, s, p + 2, fuel)? {
                    Some(e) => {
                        s = e;
                        p += 4;
                    }
                    None => return Ok(Mode::Return(None)),
                },
                b'%' if t.pat(p + 1) == b'f' => {
                    p += 2;
                    if t.pat(p) != b'[' {
                        return Err(Failure::FrontierBracket);
                    }
                    let ep = t.class_end(p)?;
                    let previous = if s == 0 { 0 } else { t.sat(s - 1) };
                    if !t.in_set(previous, p, ep - 1) && t.in_set(t.sat(s), p, ep - 1) {
                        p = ep;
                    } else {
                        return Ok(Mode::Return(None));
                    }
                }
                b'%' if t.pat(p + 1).is_ascii_digit() => {
                    match self.same_as_capture(t, s, t.pat(p + 1), fuel)? {
                        Some(e) => {
                            s = e;
                            p += 2;
                        }
                        None => return Ok(Mode::Return(None)),
                    }
                }
                _ => {
                    let ep = t.class_end(p)?;
                    let suffix = t.pat(ep);
                    if !t.single(s, p, ep) {
                        if matches!(suffix, b'*' | b'?' | b'-') {
                            p = ep + 1;
                            continue;
                        }
                        return Ok(Mode::Return(None));
                    }
                    match suffix {
                        b'?' => {
                            Self::push(frames, Frame::Optional { s, next: ep + 1 })?;
                            return Ok(Mode::Run { s: s + 1, p: ep + 1 });
                        }
                        b'+' => return Ok(Mode::Count { s: s + 1, i: 0, p, ep }),
                        b'*' => return Ok(Mode::Count { s, i: 0, p, ep }),
                        b'-' => {
                            Self::push(frames, Frame::Min { s, p, ep })?;
                            return Ok(Mode::Run { s, p: ep + 1 });
                        }
                        _ => {
                            s += 1;
                            p = ep;
                        }
                    }
                }
            }
        }
    }

    /// `%bxy` at `s` (`p` at `x`): where the balanced run ends.
    fn balance(
        &self,
        t: &Text,
        s: usize,
        p: usize,
        fuel: &mut usize,
    ) -> Result<Option<usize>, Failure> {
        if p + 1 >= t.p.len() {
            return Err(Failure::BalanceArguments);
        }
        if t.sat(s) != t.pat(p) {
            return Ok(None);
        }
        let (open, close) = (t.pat(p), t.pat(p + 1));
        let mut depth = 1usize;
        for (i, &c) in t.s.iter().enumerate().skip(s + 1) {
            if c == close {
                depth -= 1;
                if depth == 0 {
                    *fuel = fuel.saturating_sub(i - s);
                    return Ok(Some(i + 1));
                }
            } else if c == open {
                depth += 1;
            }
        }
        *fuel = fuel.saturating_sub(t.s.len() - s);
        Ok(None)
    }

    /// `%1`–`%9` at `s`: where the same text as the capture ends.
    fn same_as_capture(
        &self,
        t: &Text,
        s: usize,
        digit: u8,
        fuel: &mut usize,
    ) -> Result<Option<usize>, Failure> {
        let l = i64::from(digit) - i64::from(b'1');
        let cap = usize::try_from(l)
            .ok()
            .filter(|&l| l < self.level)
            .map(|l| self.caps[l])
            .filter(|c| c.len != CAP_UNFINISHED)
            .ok_or(Failure::CaptureIndex(l + 1))?;
        // A position capture matches nothing (the C matcher compares an unsigned length).
        let Ok(len) = usize::try_from(cap.len) else { return Ok(None) };
        *fuel = fuel.saturating_sub(len / 16);
        let same = t.s.len() - s >= len && t.s[cap.init..cap.init + len] == t.s[s..s + len];
        Ok(same.then_some(s + len))
    }
}

/// A search for the next match from a position of the subject, stopped anywhere.
#[derive(Clone, Copy)]
struct Search {
    /// Where the pattern starts in the pattern string (past a `^` anchor).
    p_from: usize,
    /// The position tried (or being tried).
    src: usize,
    /// Only `src` is tried.
    anchor: bool,
    /// A match ending here does not count (`gmatch` and `gsub`: no empty match right after
    /// the last one).
    lastmatch: Option<usize>,
    /// A match at `src` is under way in `m`.
    matching: bool,
    /// The byte every match starts with, if the pattern starts with a plain one (not a class,
    /// not optional): positions without it are skipped, since a match tried there fails at once
    /// (having looked at nothing else of the pattern, so raising nothing either).
    first: Option<u8>,
    m: Machine,
}

/// What a search came to.
enum Found {
    /// A match from `.0` to `.1` (its captures in the search's machine).
    At(usize, usize),
    None,
    /// Stopped to yield.
    Paused,
}

impl Search {
    /// A search of the pattern from `p_from` of `pattern`.
    fn new(
        pattern: &[u8],
        src: usize,
        anchor: bool,
        p_from: usize,
        lastmatch: Option<usize>,
    ) -> Search {
        let p = &pattern[p_from..];
        let first = match (p.first(), p.get(1)) {
            (Some(c), next)
                if !b"()$%[.".contains(c) && !matches!(next, Some(b'*' | b'?' | b'-')) =>
            {
                Some(*c)
            }
            _ => None,
        };
        Search { p_from, src, anchor, lastmatch, matching: false, first, m: Machine::new() }
    }

    /// The next search of the same pattern, from `src` (the captures are left as they are:
    /// only those a match makes are read).
    fn restart(&mut self, src: usize, lastmatch: Option<usize>) {
        self.src = src;
        self.lastmatch = lastmatch;
        self.matching = false;
    }

    fn next(
        &mut self,
        t: &Text,
        frames: &mut Vec<Frame>,
        fuel: &mut usize,
    ) -> Result<Found, Failure> {
        loop {
            if !self.matching {
                if self.src > t.s.len() {
                    return Ok(Found::None);
                }
                if let Some(c) = self.first
                    && !self.anchor
                {
                    let Some(at) = memchr::memchr(c, &t.s[self.src..]) else {
                        return Ok(Found::None);
                    };
                    *fuel = fuel.saturating_sub(at / 64);
                    self.src += at;
                }
                frames.clear();
                self.m.mode = Mode::Run { s: self.src, p: 0 };
                self.m.level = 0;
                self.matching = true;
            }
            let Some(end) = self.m.run(t, frames, fuel)? else { return Ok(Found::Paused) };
            self.matching = false;
            if let Some(e) = end
                && Some(e) != self.lastmatch
            {
                return Ok(Found::At(self.src, e));
            }
            if self.anchor {
                return Ok(Found::None);
            }
            self.src += 1;
        }
    }
}

// Driving a search from Lua ------------------------------------------------------------------------

/// A string argument (numbers are converted in place, as by the library), as bytes that live
/// as long as the value stays on the stack.
///
/// # Safety
/// `state` is in a C function of this module; `arg` is one of its arguments.
unsafe fn check_bytes<'a>(state: *mut ffi::lua_State, arg: c_int) -> &'a [u8] {
    let mut len = 0;
    // SAFETY: the caller's contract; a non-string raises the library's argument error.
    unsafe {
        let p = ffi::luaL_checklstring(state, arg, &mut len);
        std::slice::from_raw_parts(p.cast::<u8>(), len)
    }
}

/// The bytes of the string at `idx` (which is one).
///
/// # Safety
/// The value at `idx` is a string and stays on the stack while the bytes are used.
unsafe fn bytes_at<'a>(state: *mut ffi::lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0;
    // SAFETY: the caller's contract.
    unsafe {
        let p = ffi::lua_tolstring(state, idx, &mut len);
        std::slice::from_raw_parts(p.cast::<u8>(), len)
    }
}

/// An initial position argument made a 0-based offset (`posrelatI(...) - 1`).
fn start_offset(pos: ffi::lua_Integer, len: usize) -> usize {
    if pos > 0 {
        (pos as u64).saturating_sub(1).try_into().unwrap_or(usize::MAX)
    } else if pos == 0 || pos.unsigned_abs() > len as u64 {
        0
    } else {
        len - pos.unsigned_abs() as usize
    }
}

/// Whether the running coroutine must give way after matching `since` steps: its time slice is
/// over (the watchdog armed it), or it is preempted by instruction count and has matched for
/// as long as its count (`since` starts again then). Where it cannot yield, that slice is
/// counted as one it could not be preempted in: past the hook's limit, the match fails.
///
/// # Safety
/// `state` is the running thread.
unsafe fn give_way(
    state: *mut ffi::lua_State,
    cur: Option<&Current>,
    since: &mut usize,
) -> Result<bool, Failure> {
    let over = crate::slice::disarm(state)
        // SAFETY: the caller's contract.
        || unsafe { crate::preempt::counting(state) }.is_some_and(|n| *since >= n.max(LOOK_EVERY));
    if !over {
        return Ok(false);
    }
    *since = 0;
    // SAFETY: the caller's contract.
    if unsafe { ffi::lua_isyieldable(state) } != 0 {
        return Ok(true);
    }
    if cur.and_then(|c| c.with_here(crate::api::Stepping::stuck_slice)) == Some(true) {
        return Err(Failure::Stuck);
    }
    Ok(false)
}

/// Runs `search` until it ends or must yield.
///
/// # Safety
/// `state` is the running thread; the frames of a resumed search are in [`FRAMES`].
unsafe fn drive(
    state: *mut ffi::lua_State,
    cur: Option<&Current>,
    search: &mut Search,
    t: &Text,
) -> Result<Found, Failure> {
    let mut since = 0;
    loop {
        let mut fuel = LOOK_EVERY;
        let found = FRAMES.with_borrow_mut(|frames| search.next(t, frames, &mut fuel))?;
        if !matches!(found, Found::Paused) {
            return Ok(found);
        }
        since += LOOK_EVERY;
        // SAFETY: the caller's contract.
        if unsafe { give_way(state, cur, &mut since)? } {
            return Ok(Found::Paused);
        }
    }
}

/// A search stopped to yield, as kept in a userdata: the search, then its frames.
#[repr(C)]
struct Paused {
    search: Search,
    frames: usize,
}

/// Yields the running coroutine as a preemption does, `search` (with its frames) pushed in a
/// userdata for continuation `k` to take up (see [`unpause`]).
///
/// # Safety
/// In a C function of this module, as the expression it returns; `state` may yield.
unsafe fn pause(
    state: *mut ffi::lua_State,
    search: &Search,
    ctx: ffi::lua_KContext,
    k: ffi::lua_KFunction,
) -> c_int {
    let frames = FRAMES.with_borrow(Vec::len);
    let size = size_of::<Paused>() + frames * size_of::<Frame>();
    // SAFETY: the caller's contract. The userdata is aligned for any Lua value (at least a
    // pointer's alignment, all these structures need) and is filled before anything else runs.
    unsafe {
        ffi::luaL_checkstack(state, 1, ptr::null());
        let ud = ffi::lua_newuserdatauv(state, size, 0).cast::<Paused>();
        ud.write(Paused { search: *search, frames });
        let dst = ud.add(1).cast::<Frame>();
        FRAMES.with_borrow(|f| ptr::copy_nonoverlapping(f.as_ptr(), dst, frames));
        crate::preempt::yielding(state);
        ffi::lua_yieldk(state, 0, ctx, Some(k))
    }
}

/// The search a [`pause`] left at stack slot `idx`, its frames put back in [`FRAMES`]; the
/// stack is cut back to below `idx`.
///
/// # Safety
/// Called by the continuation the pause named, with the userdata at `idx`.
unsafe fn unpause(state: *mut ffi::lua_State, idx: c_int) -> Search {
    // SAFETY: the caller's contract: the userdata is a `Paused` and its frames.
    unsafe {
        let ud = ffi::lua_touserdata(state, idx).cast::<Paused>();
        let Paused { search, frames } = ud.read();
        let src = std::slice::from_raw_parts(ud.add(1).cast::<Frame>(), frames);
        FRAMES.with_borrow_mut(|f| {
            f.clear();
            f.extend_from_slice(src);
        });
        ffi::lua_settop(state, idx - 1);
        search
    }
}

/// Pushes the captures of a match from `s` to `e`: `whole` says whether a pattern without
/// captures gives the whole match (`match`, `gmatch`, a `gsub` function) or nothing (`find`).
///
/// # Safety
/// In a C function of this module; the subject is `t.s`.
unsafe fn push_captures(
    state: *mut ffi::lua_State,
    m: &Machine,
    t: &Text,
    s: usize,
    e: usize,
    whole: bool,
) -> Result<c_int, Failure> {
    let n = if m.level == 0 && whole { 1 } else { m.level };
    if m.caps[..m.level].iter().any(|c| c.len == CAP_UNFINISHED) {
        return Err(Failure::Unfinished);
    }
    // SAFETY: the caller's contract; room is made first.
    unsafe {
        ffi::luaL_checkstack(state, n as c_int, c"too many captures".as_ptr());
        for i in 0..n {
            push_capture(state, m, t, i, s, e)?;
        }
    }
    Ok(n as c_int)
}

/// Pushes capture `i` (the whole match from `s` to `e` if the pattern has none).
///
/// # Safety
/// As [`push_captures`], with room for one value.
unsafe fn push_capture(
    state: *mut ffi::lua_State,
    m: &Machine,
    t: &Text,
    i: usize,
    s: usize,
    e: usize,
) -> Result<(), Failure> {
    // SAFETY: the caller's contract.
    unsafe {
        if i >= m.level {
            if i != 0 {
                return Err(Failure::CaptureIndex(i as i64 + 1));
            }
            ffi::lua_pushlstring(state, t.s[s..e].as_ptr().cast(), e - s);
            return Ok(());
        }
        let c = m.caps[i];
        match c.len {
            CAP_UNFINISHED => return Err(Failure::Unfinished),
            CAP_POSITION => ffi::lua_pushinteger(state, (c.init + 1) as ffi::lua_Integer),
            len => {
                let len = len as usize;
                ffi::lua_pushlstring(state, t.s[c.init..c.init + len].as_ptr().cast(), len);
            }
        }
    }
    Ok(())
}

// find and match -----------------------------------------------------------------------------------

unsafe extern "C-unwind" fn str_find(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this as a C function.
    unsafe { find_aux(state, true) }
}

unsafe extern "C-unwind" fn str_match(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this as a C function.
    unsafe { find_aux(state, false) }
}

/// `string.find(s, pattern, init, plain)` and `string.match(s, pattern, init)`.
///
/// # Safety
/// Called as a C function.
unsafe fn find_aux(state: *mut ffi::lua_State, find: bool) -> c_int {
    // SAFETY: Lua calls this as a C function; the strings stay on the stack (slots 1 and 2).
    unsafe {
        let s = check_bytes(state, 1);
        let p = check_bytes(state, 2);
        let init = start_offset(ffi::luaL_optinteger(state, 3, 1), s.len());
        if init > s.len() {
            ffi::lua_pushnil(state);
            return 1;
        }
        if find && (ffi::lua_toboolean(state, 4) != 0 || !p.iter().any(|c| SPECIALS.contains(c))) {
            return match memchr::memmem::find(&s[init..], p) {
                Some(at) => {
                    ffi::lua_pushinteger(state, (init + at + 1) as ffi::lua_Integer);
                    ffi::lua_pushinteger(state, (init + at + p.len()) as ffi::lua_Integer);
                    2
                }
                None => {
                    ffi::lua_pushnil(state);
                    1
                }
            };
        }
        ffi::lua_settop(state, FIND_SLOTS);
        let anchor = p.first() == Some(&b'^');
        let mut search = Search::new(p, init, anchor, usize::from(anchor), None);
        find_run(state, find, &mut search)
    }
}

/// Runs the search of `find` or `match` (see [`find_aux`]) to its end or a pause.
///
/// # Safety
/// In `find_aux` or its continuation, with the four argument slots on the stack.
unsafe fn find_run(state: *mut ffi::lua_State, find: bool, search: &mut Search) -> c_int {
    // SAFETY: the caller's contract: slots 1 and 2 hold the strings.
    unsafe {
        let t = Text { s: bytes_at(state, 1), p: &bytes_at(state, 2)[search.p_from..] };
        let r = match drive(state, current(state, 1), search, &t) {
            Ok(Found::Paused) => return pause(state, search, isize::from(find), find_k),
            Ok(Found::None) => {
                ffi::lua_pushnil(state);
                return 1;
            }
            Ok(Found::At(s, e)) if find => {
                ffi::luaL_checkstack(state, 2, ptr::null());
                ffi::lua_pushinteger(state, (s + 1) as ffi::lua_Integer);
                ffi::lua_pushinteger(state, e as ffi::lua_Integer);
                push_captures(state, &search.m, &t, s, e, false).map(|n| n + 2)
            }
            Ok(Found::At(s, e)) => push_captures(state, &search.m, &t, s, e, true),
            Err(f) => Err(f),
        };
        match r {
            Ok(n) => n,
            Err(f) => raise(state, f),
        }
    }
}

unsafe extern "C-unwind" fn find_k(
    state: *mut ffi::lua_State,
    _status: c_int,
    ctx: ffi::lua_KContext,
) -> c_int {
    // SAFETY: the continuation of `find_run`'s pause: the search is in the slot after the
    // arguments.
    unsafe {
        let mut search = unpause(state, FIND_SLOTS + 1);
        find_run(state, ctx != 0, &mut search)
    }
}

// gmatch ---------------------------------------------------------------------------------------------

/// The upvalue of a `gmatch` iterator that holds the [`Current`] (after the subject, the
/// pattern and its [`Gmatch`]).
const GMATCH_CURRENT: c_int = 4;

/// Where a `gmatch` iterator stands (its third upvalue).
#[derive(Clone, Copy)]
struct Gmatch {
    src: usize,
    lastmatch: Option<usize>,
}

/// `string.gmatch(s, pattern, init)`: an iterator over the matches.
unsafe extern "C-unwind" fn str_gmatch(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this as a C function; the userdata is written before anything runs.
    unsafe {
        let s = check_bytes(state, 1);
        check_bytes(state, 2);
        let init = start_offset(ffi::luaL_optinteger(state, 3, 1), s.len()).min(s.len() + 1);
        ffi::lua_settop(state, 2);
        let ud = ffi::lua_newuserdatauv(state, size_of::<Gmatch>(), 0).cast::<Gmatch>();
        ud.write(Gmatch { src: init, lastmatch: None });
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_pushcclosure(state, gmatch_next, GMATCH_CURRENT);
        1
    }
}

/// The iterator: the captures of the next match, or nothing.
unsafe extern "C-unwind" fn gmatch_next(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this as a C function with the upvalues `str_gmatch` gave it.
    unsafe {
        ffi::lua_settop(state, 0);
        let g = ffi::lua_touserdata(state, ffi::lua_upvalueindex(3)).cast::<Gmatch>().read();
        let p = bytes_at(state, ffi::lua_upvalueindex(2));
        let mut search = Search::new(p, g.src, false, 0, g.lastmatch);
        gmatch_run(state, &mut search)
    }
}

/// # Safety
/// In `gmatch_next` or its continuation, with an empty stack.
unsafe fn gmatch_run(state: *mut ffi::lua_State, search: &mut Search) -> c_int {
    // SAFETY: the caller's contract: the strings are the closure's upvalues.
    unsafe {
        let t = Text {
            s: bytes_at(state, ffi::lua_upvalueindex(1)),
            p: bytes_at(state, ffi::lua_upvalueindex(2)),
        };
        let r = match drive(state, current(state, GMATCH_CURRENT), search, &t) {
            Ok(Found::Paused) => return pause(state, search, 0, gmatch_k),
            Ok(Found::None) => return 0,
            Ok(Found::At(s, e)) => {
                let g = ffi::lua_touserdata(state, ffi::lua_upvalueindex(3)).cast::<Gmatch>();
                g.write(Gmatch { src: e, lastmatch: Some(e) });
                push_captures(state, &search.m, &t, s, e, true)
            }
            Err(f) => Err(f),
        };
        match r {
            Ok(n) => n,
            Err(f) => raise(state, f),
        }
    }
}

unsafe extern "C-unwind" fn gmatch_k(
    state: *mut ffi::lua_State,
    _status: c_int,
    _ctx: ffi::lua_KContext,
) -> c_int {
    // SAFETY: the continuation of `gmatch_run`'s pause, its userdata in slot 1.
    unsafe {
        let mut search = unpause(state, 1);
        gmatch_run(state, &mut search)
    }
}

// gsub ---------------------------------------------------------------------------------------------

/// A `gsub` in progress, in a userdata at [`GSUB_STATE`]; its output is built in the userdata at
/// [`GSUB_BUFFER`] (Lua's memory, so that it counts against the process's budget).
#[derive(Clone, Copy)]
struct Gsub {
    /// The subject is copied to the output up to here.
    copied: usize,
    /// The next match is searched for from here.
    src: usize,
    lastmatch: Option<usize>,
    anchor: bool,
    p_from: usize,
    /// Replacements made, and the most that may be.
    n: ffi::lua_Integer,
    max: ffi::lua_Integer,
    changed: bool,
    /// The replacement's type.
    repl: c_int,
    /// The match whose replacement a called function returns.
    pending: (usize, usize),
    /// The output's length and its buffer's size.
    len: usize,
    cap: usize,
}

/// Continuation contexts of `gsub`: after a pause, after the replacement function returned.
const GSUB_PAUSED: ffi::lua_KContext = 1;
const GSUB_CALLED: ffi::lua_KContext = 2;

/// `string.gsub(s, pattern, repl, n)`.
unsafe extern "C-unwind" fn str_gsub(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: Lua calls this as a C function; the state's userdata is written before anything
    // else runs.
    unsafe {
        let s = check_bytes(state, 1);
        let p = check_bytes(state, 2);
        let repl = ffi::lua_type(state, 3);
        let max = ffi::luaL_optinteger(state, 4, s.len() as ffi::lua_Integer + 1);
        if !matches!(
            repl,
            ffi::LUA_TNUMBER | ffi::LUA_TSTRING | ffi::LUA_TFUNCTION | ffi::LUA_TTABLE
        ) {
            return type_error(state, 3, c"string/function/table");
        }
        let anchor = p.first() == Some(&b'^');
        ffi::lua_settop(state, 4);
        let g = ffi::lua_newuserdatauv(state, size_of::<Gsub>(), 0).cast::<Gsub>();
        g.write(Gsub {
            copied: 0,
            src: 0,
            lastmatch: None,
            anchor,
            p_from: usize::from(anchor),
            n: 0,
            max,
            changed: false,
            repl,
            pending: (0, 0),
            len: 0,
            cap: 0,
        });
        ffi::lua_pushnil(state);
        gsub_run(state, None)
    }
}

/// The library's argument type error (`luaL_typeerror`).
///
/// # Safety
/// In a C function, `arg` one of its arguments.
unsafe fn type_error(state: *mut ffi::lua_State, arg: c_int, expected: &std::ffi::CStr) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::luaL_checkstack(state, 2, ptr::null());
        let got = if ffi::luaL_getmetafield(state, arg, c"__name".as_ptr()) == ffi::LUA_TSTRING {
            ffi::lua_tostring(state, -1)
        } else if ffi::lua_type(state, arg) == ffi::LUA_TLIGHTUSERDATA {
            c"light userdata".as_ptr()
        } else {
            ffi::luaL_typename(state, arg)
        };
        let msg =
            ffi::lua_pushfstring(state, c"%s expected, got %s".as_ptr(), expected.as_ptr(), got);
        ffi::luaL_argerror(state, arg, msg)
    }
}

/// The `gsub` in slot [`GSUB_STATE`].
///
/// # Safety
/// In `str_gsub` or its continuations.
unsafe fn gsub_state<'a>(state: *mut ffi::lua_State) -> &'a mut Gsub {
    // SAFETY: the caller's contract.
    unsafe { &mut *ffi::lua_touserdata(state, GSUB_STATE).cast::<Gsub>() }
}

/// Appends `len` bytes from `bytes` to the output, growing its buffer as needed.
///
/// # Safety
/// In `gsub_run`; `bytes` stays valid while Lua allocates (a string on the stack).
unsafe fn append(state: *mut ffi::lua_State, bytes: *const u8, len: usize) {
    // SAFETY: the caller's contract; the buffer userdata in GSUB_BUFFER is `cap` bytes long.
    unsafe {
        let g = gsub_state(state);
        if g.len + len > g.cap {
            let cap = (g.cap * 2).max(g.len + len).max(64);
            ffi::luaL_checkstack(state, 1, ptr::null());
            let new = ffi::lua_newuserdatauv(state, cap, 0).cast::<u8>();
            let old = ffi::lua_touserdata(state, GSUB_BUFFER).cast::<u8>();
            if g.len > 0 {
                ptr::copy_nonoverlapping(old, new, g.len);
            }
            ffi::lua_replace(state, GSUB_BUFFER);
            let g = gsub_state(state);
            g.cap = cap;
        }
        let g = gsub_state(state);
        let buf = ffi::lua_touserdata(state, GSUB_BUFFER).cast::<u8>();
        if len > 0 {
            ptr::copy_nonoverlapping(bytes, buf.add(g.len), len);
        }
        g.len += len;
    }
}

/// How `gsub_run` is entered.
enum Resumed {
    /// After a pause: the search is in the slot after the buffer.
    Paused,
    /// After the replacement function returned: its value is on top.
    Called,
}

/// The loop of `gsub`, entered at its start or by a continuation.
///
/// # Safety
/// In `str_gsub` or its continuations, slots 1 to 6 as `str_gsub` made them.
unsafe fn gsub_run(state: *mut ffi::lua_State, resumed: Option<Resumed>) -> c_int {
    // SAFETY: the caller's contract; every pointer into the subject stays valid while slot 1
    // holds it.
    unsafe {
        let g = *gsub_state(state);
        let (s, p) = (bytes_at(state, 1), bytes_at(state, 2));
        // The search, and whether it goes on (after a pause; else the next one starts at
        // `g.src`).
        let (mut search, mut goes_on) = match resumed {
            Some(Resumed::Paused) => (unpause(state, GSUB_BUFFER + 1), true),
            Some(Resumed::Called) => {
                if let Err(f) = add_result(state) {
                    return raise(state, f);
                }
                (Search::new(p, 0, g.anchor, g.p_from, None), false)
            }
            None => (Search::new(p, 0, g.anchor, g.p_from, None), false),
        };
        let t = Text { s, p: &p[g.p_from..] };
        loop {
            let g = *gsub_state(state);
            if !std::mem::take(&mut goes_on) {
                // An anchored pattern is tried once.
                if g.n >= g.max || (g.anchor && g.n > 0) {
                    break;
                }
                search.restart(g.src, g.lastmatch);
            }
            let (start, e) = match drive(state, current(state, 1), &mut search, &t) {
                Ok(Found::Paused) => return pause(state, &search, GSUB_PAUSED, gsub_k),
                Ok(Found::None) => break,
                Ok(Found::At(start, e)) => (start, e),
                Err(f) => return raise(state, f),
            };
            append(state, t.s[g.copied..].as_ptr(), start - g.copied);
            {
                let g = gsub_state(state);
                g.n += 1;
                g.copied = e;
                g.src = e;
                g.lastmatch = Some(e);
                g.pending = (start, e);
            }
            let m = &search.m;
            let r = match g.repl {
                ffi::LUA_TFUNCTION => {
                    ffi::luaL_checkstack(state, 1, ptr::null());
                    ffi::lua_pushvalue(state, 3);
                    match push_captures(state, m, &t, start, e, true) {
                        Ok(n) => {
                            ffi::lua_callk(state, n, 1, GSUB_CALLED, Some(gsub_k));
                            add_result(state)
                        }
                        Err(f) => Err(f),
                    }
                }
                ffi::LUA_TTABLE => {
                    ffi::luaL_checkstack(state, 1, ptr::null());
                    match push_capture(state, m, &t, 0, start, e) {
                        Ok(()) => {
                            ffi::lua_gettable(state, 3);
                            add_result(state)
                        }
                        Err(f) => Err(f),
                    }
                }
                _ => add_string(state, m, &t, start, e),
            };
            if let Err(f) = r {
                return raise(state, f);
            }
        }
        let g = *gsub_state(state);
        ffi::luaL_checkstack(state, 2, ptr::null());
        if g.changed {
            let s = bytes_at(state, 1);
            append(state, s[g.copied..].as_ptr(), s.len() - g.copied);
            let g = gsub_state(state);
            ffi::lua_pushlstring(state, ffi::lua_touserdata(state, GSUB_BUFFER).cast(), g.len);
        } else {
            ffi::lua_pushvalue(state, 1);
        }
        ffi::lua_pushinteger(state, g.n);
        2
    }
}

unsafe extern "C-unwind" fn gsub_k(
    state: *mut ffi::lua_State,
    _status: c_int,
    ctx: ffi::lua_KContext,
) -> c_int {
    // SAFETY: a continuation of `gsub_run`, which named the context.
    unsafe {
        gsub_run(state, Some(if ctx == GSUB_PAUSED { Resumed::Paused } else { Resumed::Called }))
    }
}

/// Adds the value a replacement function or table gave (on top) for the pending match: the
/// match itself for `nil` or `false`, else the value, which must be a string or a number.
///
/// # Safety
/// In `gsub_run`, the value on top of slot [`GSUB_BUFFER`].
unsafe fn add_result(state: *mut ffi::lua_State) -> Result<(), Failure> {
    // SAFETY: the caller's contract.
    unsafe {
        let (start, e) = gsub_state(state).pending;
        if ffi::lua_toboolean(state, -1) == 0 {
            ffi::lua_settop(state, GSUB_BUFFER);
            let s = bytes_at(state, 1);
            append(state, s[start..].as_ptr(), e - start);
        } else if ffi::lua_isstring(state, -1) == 0 {
            ffi::lua_pushfstring(
                state,
                c"invalid replacement value (a %s)".as_ptr(),
                ffi::luaL_typename(state, -1),
            );
            ffi::luaL_where(state, 1);
            ffi::lua_rotate(state, -2, 1);
            ffi::lua_concat(state, 2);
            ffi::lua_error(state);
        } else {
            let v = bytes_at(state, -1);
            append(state, v.as_ptr(), v.len());
            ffi::lua_settop(state, GSUB_BUFFER);
            gsub_state(state).changed = true;
        }
    }
    Ok(())
}

/// Adds a replacement string (slot 3) for the match from `s` to `e`: `%0`–`%9` are the match
/// and its captures, `%%` a `%`.
///
/// # Safety
/// In `gsub_run`, with the machine of the match.
unsafe fn add_string(
    state: *mut ffi::lua_State,
    m: &Machine,
    t: &Text,
    s: usize,
    e: usize,
) -> Result<(), Failure> {
    // SAFETY: the caller's contract; slot 3 is a string or a number, made a string in place.
    unsafe {
        let mut len = 0;
        let r = ffi::lua_tolstring(state, 3, &mut len).cast::<u8>();
        let repl = std::slice::from_raw_parts(r, len);
        gsub_state(state).changed = true;
        let mut rest = repl;
        while let Some(at) = memchr::memchr(b'%', rest) {
            append(state, rest.as_ptr(), at);
            let c = rest.get(at + 1).copied().unwrap_or(0);
            match c {
                b'%' => append(state, rest[at + 1..].as_ptr(), 1),
                b'0' => append(state, t.s[s..].as_ptr(), e - s),
                b'1'..=b'9' => {
                    let i = usize::from(c - b'1');
                    if i >= m.level {
                        if i != 0 {
                            return Err(Failure::CaptureIndex(i as i64 + 1));
                        }
                        append(state, t.s[s..].as_ptr(), e - s);
                    } else {
                        let cap = m.caps[i];
                        match cap.len {
                            CAP_UNFINISHED => return Err(Failure::Unfinished),
                            CAP_POSITION => {
                                let mut digits = [0u8; 20];
                                let text = decimal(cap.init + 1, &mut digits);
                                append(state, text.as_ptr(), text.len());
                            }
                            l => append(state, t.s[cap.init..].as_ptr(), l as usize),
                        }
                    }
                }
                _ => return Err(Failure::ReplacementEscape),
            }
            rest = rest.get(at + 2..).unwrap_or(&[]);
        }
        append(state, rest.as_ptr(), rest.len());
    }
    Ok(())
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::c_int;

    use mlua::{Lua, ffi};

    /// `sethook(co, n)`: a count hook of `n` instructions on coroutine `co` that does nothing
    /// (the matcher pauses on its own once it has run that long).
    unsafe extern "C-unwind" fn sethook(state: *mut ffi::lua_State) -> c_int {
        unsafe extern "C-unwind" fn nothing(_: *mut ffi::lua_State, _: *mut ffi::lua_Debug) {}
        // SAFETY: called as a C function with a coroutine and an integer.
        unsafe {
            let co = ffi::lua_tothread(state, 1);
            let n = ffi::luaL_checkinteger(state, 2) as c_int;
            ffi::lua_sethook(co, Some(nothing), ffi::LUA_MASKCOUNT, n);
        }
        0
    }

    /// A Lua state with the library's functions and these (`P.find` ...) side by side.
    fn lua() -> Lua {
        let lua = Lua::new();
        let rt = lua.create_table().unwrap();
        super::register(&lua, &rt).unwrap();
        let p = lua.create_table().unwrap();
        for (ours, name) in [
            ("str_find", "find"),
            ("str_match", "match"),
            ("str_gmatch", "gmatch"),
            ("str_gsub", "gsub"),
        ] {
            p.set(name, rt.get::<mlua::Function>(ours).unwrap()).unwrap();
        }
        lua.globals().set("P", p).unwrap();
        // SAFETY: `sethook` follows the C function protocol.
        let f = unsafe { lua.create_c_function(sethook).unwrap() };
        lua.globals().set("sethook", f).unwrap();
        lua
    }

    /// Every function, over generated patterns and subjects (malformed ones included), gives
    /// the library's results and errors; also when it pauses every few hundred steps (run in a
    /// coroutine with a count hook, resumed until done).
    #[test]
    fn same_results_as_the_library() {
        let lua = lua();
        let checked: i64 = lua.load(DIFFERENTIAL).set_name("differential").eval().unwrap();
        assert!(checked > 100_000, "{checked} cases");
    }

    const DIFFERENTIAL: &str = r#"
local S = { find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub }
local pack = table.pack

local function same(a, b, path)
    if type(a) ~= type(b) then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    if type(a) == "table" then
        if a.n ~= b.n then return false, path .. ": " .. tostring(a.n) .. " values vs " .. tostring(b.n) end
        for k, v in pairs(a) do
            local ok, why = same(v, b[k], path .. "." .. tostring(k))
            if not ok then return false, why end
        end
        for k in pairs(b) do
            if a[k] == nil then return false, path .. "." .. tostring(k) .. " extra" end
        end
        return true
    end
    if a ~= b and not (a ~= a and b ~= b) then
        return false, path .. ": " .. string.format("%q", a) .. " vs " .. string.format("%q", b)
    end
    if math.type(a) ~= math.type(b) then return false, path .. ": number types" end
    return true
end

-- Each call goes through the same line for both libraries, so that an error's position and
-- the function's name come out the same.
local function gm(L, s, p, init)
    local out = {}
    for a, b, c in L.gmatch(s, p, init) do
        out[#out + 1] = pack(a, b, c)
        if #out > 40 then break end
    end
    return out
end
local function call(L, name, ...)
    if name == "find" then return L.find(...)
    elseif name == "match" then return L.match(...)
    elseif name == "gsub" then return L.gsub(...)
    else return gm(L, ...) end
end

-- Runs `f` in a coroutine with a count hook of one instruction (so that our functions pause
-- each time they have matched a few hundred steps), resumed until it ends.
local function paused(f, ...)
    local co = coroutine.create(f)
    sethook(co, 1)
    local r = pack(coroutine.resume(co, ...))
    local pauses = 0
    while coroutine.status(co) == "suspended" do
        pauses = pauses + 1
        r = pack(coroutine.resume(co))
    end
    return r, pauses
end

local checked, pauses = 0, 0
local function check(name, ...)
    local want = pack(pcall(call, S, name, ...))
    local got = pack(pcall(call, P, name, ...))
    local args = pack(...)
    local function show()
        local t = {}
        for i = 1, args.n do t[i] = type(args[i]) == "string" and string.format("%q", args[i]) or tostring(args[i]) end
        return name .. "(" .. table.concat(t, ", ") .. ")"
    end
    local ok, why = same(want, got, "")
    if not ok then error(show() .. ": " .. why, 0) end
    local inner, n = paused(function(...) return pcall(call, P, name, ...) end, ...)
    pauses = pauses + n
    ok, why = same(want, pack(table.unpack(inner, 2, inner.n)), "")
    if not ok then error(show() .. " (paused): " .. why, 0) end
    checked = checked + 1
end

local pieces = { "a", "b", "c", ".", "%a", "%d", "%s", "%w", "%A", "%S", "%p", "%x", "%z", "%g", "%l", "%u", "%c",
    "[abc]", "[^a]", "[a-c]", "[%a_]", "[]]", "[^]]", "[a-]", "[%]]", "*", "+", "-", "?", "(", ")", "()", "%1",
    "%2", "%0", "%b()", "%bab", "%f[%w]", "%f[%W]", "%f[a]", "^", "$", "%", "[a", "%b", "%f", "%.", "%%", "%(",
    "a*", "b+", "c-", ".?", "(a)", "(%w+)", "(.-)", "\0", "[%z]", "%q", "%y" }
local alphabet = { "a", "b", "c", "(", ")", " ", "1", "_", "]", "^", "$", "%", "\0", "x", "A", "\t" }
local repls = { "x", "%0", "%1", "%2", "%%", "<%1|%0>", "x%", "%q", "", 7, 2.5 }
local tables = { { a = "A", b = false, c = 3, ["1"] = "one" }, {} }
local funcs = {
    function(x) return x and tostring(x):upper() end,
    function() return nil end,
    function() return false end,
    function(x, y) return y end,
    function() return {} end,
    function(x) return 10 end,
}

local seed = 42
local function rand(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n + 1
end
local function pattern()
    local t = {}
    for i = 1, rand(6) do t[i] = pieces[rand(#pieces)] end
    return table.concat(t)
end
local function subject()
    local t = {}
    for i = 1, rand(12) - 1 do t[i] = alphabet[rand(#alphabet)] end
    return table.concat(t)
end

for _ = 1, 20000 do
    local p, s = pattern(), subject()
    local init = rand(9) - 4
    check("find", s, p)
    check("find", s, p, init, rand(2) == 1)
    check("match", s, p, init)
    check("gmatch", s, p)
    check("gmatch", s, p, init)
    local r = rand(3)
    if r == 1 then
        check("gsub", s, p, repls[rand(#repls)], rand(5) == 1 and rand(4) - 1 or nil)
    elseif r == 2 then
        check("gsub", s, p, tables[rand(#tables)])
    else
        check("gsub", s, p, funcs[rand(#funcs)])
    end
end

-- Long subjects: matches that run many steps, and so pause (and go on) many times.
local long = ("ab"):rep(500) .. "c" .. (" x1"):rep(300)
for _, p in ipairs({ "(a-)c", "^(.*)c", "(.-)x1$", "%f[%w]%w+", "((a)(b))*c", "a?b?a?b?c", "(ab)+%1*c",
    "%b()", "[^c]*c", "(.)%1", ".-$", "()x", "(ab)-c" }) do
    check("find", long, p)
    check("match", long, p)
    check("gmatch", long, p)
    check("gsub", long, p, "<%0>")
    check("gsub", long, p, funcs[1])
    check("find", long, p, 700)
end
-- Deep recursion: the C matcher's depth limit, reached at the same point.
for _, n in ipairs({ 150, 198, 199, 200, 201, 260 }) do
    check("match", ("a"):rep(300), ("a?"):rep(n))
    check("match", ("a"):rep(300), ("(a)"):rep(math.min(n, 40)))
    check("find", ("a"):rep(300), ("a-"):rep(n) .. "$")
end
-- Arguments: conversions and errors, as the library's.
check("find", 12345, 3)
check("find", 12345, 3.0)
check("match", 2.5, "%.")
check("find", "abc", "b", 2.0)
check("find", "abc", "b", -100)
check("find", "abc", "b", 100)
check("find", "abc", "", 4)
check("find", "abc", "", 5)
check("find", "a.c", ".", 1, true)
check("find", nil, "a")
check("find", "a", {})
check("find", "a", "a", 1.5)
check("gsub", "abc", "b", nil)
check("gsub", "abc", "b", true)
check("gsub", "abc", "b", "x", 1.5)
check("gsub", "abc", "b", "x", -1)
check("gsub", "abc", "", "-")
check("gsub", "abc", "^", "-")
check("gsub", "abc", "$", "-")
check("gsub", "hello world", "(o)", "%1%1", 1)
check("gmatch", "abc", nil)
check("match", "abc", "()", 4)
check("gmatch", "abc", ".", 10)
check("gmatch", "abc", "", -1)
assert(pauses > 1000, "the matches paused " .. pauses .. " times")
return checked
"#;

    /// A match that would backtrack for ages gives way again and again, and is dropped when
    /// its coroutine is never resumed again.
    #[test]
    fn a_runaway_match_pauses() {
        let lua = lua();
        let n: i64 = lua
            .load(
                r#"
                local co = coroutine.create(function()
                    return P.find(("a"):rep(5000), ("a*"):rep(20) .. "b")
                end)
                sethook(co, 1)
                local n = 0
                for _ = 1, 1000 do
                    assert(coroutine.resume(co))
                    assert(coroutine.status(co) == "suspended")
                    n = n + 1
                end
                return n
            "#,
            )
            .eval()
            .unwrap();
        assert_eq!(n, 1000);
        lua.gc_collect().unwrap();
    }
}
