//! Process identifiers.
//!
//! A [`Pid`] is a host index and a serial number that is never reused while the program runs
//! (one counter for every runtime in the program). It prints as `{host|0x0000002a}`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The identity of a process: which host it lives on and its serial number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    host: HostId,
    serial: u64,
}

/// An interned host name. Host names are interned once for the whole program so that a [`Pid`]
/// stays `Copy` and prints without a runtime at hand.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct HostId(u32);

static HOST_NAMES: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());
/// Serials are handed out in runs of `1 << SERIAL_RUN_BITS`: a thread takes a whole run from
/// the program's counter and hands its serials out one by one. A worker that spawns in a loop
/// touches no shared counter for 63 of every 64 processes, and the process table keeps each run
/// in one shard (see `table`). Serials are unique, not in the order of creation across threads.
pub(crate) const SERIAL_RUN_BITS: u32 = 6;
/// The next run (run 0 is never handed out, so no serial is 0).
static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's next serial and the end of its run.
    static RUN: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    /// This thread's copy of `HOST_NAMES` as it last saw it. Names never change once interned
    /// and are only appended, so a copy is right as far as it goes: printing or parsing a pid
    /// (every message a Lua process sends or receives) takes no lock.
    static SEEN: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// `f` over this thread's copy of the host names, and again over a fresh copy if `found` says
/// the first answer is not good enough.
fn with_names<R>(f: impl Fn(&[&'static str]) -> R, found: impl Fn(&R) -> bool) -> R {
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let r = f(&seen);
        if found(&r) {
            return r;
        }
        seen.clone_from(&HOST_NAMES.read().unwrap_or_else(|e| e.into_inner()));
        f(&seen)
    })
}

impl HostId {
    /// The id of host `name`, interning it on first use.
    pub fn intern(name: &str) -> HostId {
        if let Some(id) = HostId::lookup(name) {
            return id;
        }
        let mut names = HOST_NAMES.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = names.iter().position(|n| *n == name) {
            return HostId(i as u32);
        }
        // Host names are few and live as long as the program: leaking them keeps `Pid` `Copy`.
        names.push(Box::leak(name.to_owned().into_boxed_str()));
        HostId((names.len() - 1) as u32)
    }

    /// The id of host `name` if it was ever interned.
    pub fn lookup(name: &str) -> Option<HostId> {
        with_names(|names| names.iter().position(|n| *n == name), Option::is_some)
            .map(|i| HostId(i as u32))
    }

    /// The host's name.
    pub fn name(self) -> &'static str {
        let i = self.0 as usize;
        // A `HostId` is only made by interning, so its name is there.
        with_names(|names| names.get(i).copied(), Option::is_some).expect("an interned host")
    }
}

impl Pid {
    /// A fresh pid on `host`, never handed out before.
    pub(crate) fn fresh(host: HostId) -> Pid {
        let new_run = || {
            let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
            (run << SERIAL_RUN_BITS, (run + 1) << SERIAL_RUN_BITS)
        };
        let serial = RUN
            .try_with(|r| {
                let (next, end) = match r.get() {
                    (next, end) if next < end => (next, end),
                    _ => new_run(),
                };
                r.set((next + 1, end));
                next
            })
            // A thread whose thread-locals are gone (spawning from a destructor at its exit)
            // takes a run for the one serial.
            .unwrap_or_else(|_| new_run().0);
        Pid { host, serial }
    }

    /// The host the process lives on.
    pub fn host(self) -> HostId {
        self.host
    }

    /// The serial number, unique in the program.
    pub fn serial(self) -> u64 {
        self.serial
    }

    /// Bits of a host index in [`Pid::to_bits`]: the top ones but the sign's.
    const HOST_BITS: u32 = 15;
    const SERIAL_BITS: u32 = 63 - Pid::HOST_BITS;

    /// The pid as one non-negative 63-bit number (host index over serial), for a backend that
    /// keeps a pid where a string would cost an allocation; `None` for a serial or host index
    /// too large for it (after 2^48 spawns, or 2^15 hosts). [`Pid::from_bits`] undoes it.
    pub fn to_bits(self) -> Option<u64> {
        (self.serial >> Pid::SERIAL_BITS == 0 && self.host.0 >> Pid::HOST_BITS == 0)
            .then(|| u64::from(self.host.0) << Pid::SERIAL_BITS | self.serial)
    }

    /// The pid whose [`Pid::to_bits`] `bits` are; `None` if no such host was ever interned.
    pub fn from_bits(bits: u64) -> Option<Pid> {
        if bits >> 63 != 0 {
            return None;
        }
        let host = (bits >> Pid::SERIAL_BITS) as usize;
        let serial = bits & ((1 << Pid::SERIAL_BITS) - 1);
        let known = with_names(|names| names.len() > host, |&known| known);
        known.then_some(Pid { host: HostId(host as u32), serial })
    }

    /// Writes the pid as it prints (`{host|0x0000002a}`) into `buf`, without the formatting
    /// machinery; returns the length, or `None` if `buf` is too short.
    pub fn write_to(self, buf: &mut [u8]) -> Option<usize> {
        let name = self.host.name().as_bytes();
        let digits = (64 - self.serial.leading_zeros()).div_ceil(4).max(8) as usize;
        let len = name.len() + digits + 5;
        let out = buf.get_mut(..len)?;
        out[0] = b'{';
        out[1..=name.len()].copy_from_slice(name);
        let mut at = name.len() + 1;
        out[at..at + 3].copy_from_slice(b"|0x");
        at += 3;
        for k in (0..digits).rev() {
            out[at] = b"0123456789abcdef"[((self.serial >> (4 * k)) & 0xf) as usize];
            at += 1;
        }
        out[at] = b'}';
        Some(len)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 128];
        match self.write_to(&mut buf).map(|n| std::str::from_utf8(&buf[..n])) {
            Some(Ok(text)) => f.write_str(text),
            _ => write!(f, "{{{}|{:#010x}}}", self.host.name(), self.serial),
        }
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Pid {
    type Err = Error;

    /// Parses `{host|0x2a}` (a `node@` prefix before the host is accepted and ignored).
    fn from_str(s: &str) -> Result<Pid> {
        let bad = || Error::invalid(format!("`{s}` is not a pid (expected {{host|0x…}})"));
        let inner = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')).ok_or_else(bad)?;
        let (host, hex) = inner.rsplit_once('|').ok_or_else(bad)?;
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let hex = hex.strip_prefix("0x").ok_or_else(bad)?;
        let serial = u64::from_str_radix(hex, 16).map_err(|_| bad())?;
        let host = HostId::lookup(host).ok_or_else(|| Error::not_found(format!("host {host}")))?;
        Ok(Pid { host, serial })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_printed() {
        let host = HostId::intern("pid:test");
        for serial in [0, 1, 0x2a, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let pid = Pid { host, serial };
            let mut buf = [0u8; 64];
            let n = pid.write_to(&mut buf).expect("fits");
            let expected = format!("{{pid:test|{serial:#010x}}}");
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), expected);
            assert_eq!(pid.to_string(), expected);
            assert_eq!(pid.to_string().parse::<Pid>().unwrap(), pid);
            assert_eq!(pid.write_to(&mut buf[..n - 1]), None);
        }
    }

    /// A node part before the host (`{node@host|hex}`) names the same process; malformed
    /// text is INVALID, an unknown host NOT_FOUND.
    #[test]
    fn a_node_part_is_accepted_and_bad_text_refused() {
        let host = HostId::intern("pid:node");
        let pid = Pid { host, serial: 0x2a };
        assert_eq!("{n1@pid:node|0x0000002a}".parse::<Pid>().unwrap(), pid);
        assert_eq!("{a@b@pid:node|0x2a}".parse::<Pid>().unwrap(), pid);
        for bad in ["pid:node|0x2a", "{pid:node 0x2a}", "{pid:node|2a}", "{pid:node|0xzz}", ""] {
            let e = bad.parse::<Pid>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Invalid, "{bad}: {e}");
        }
        let e = "{pid:nowhere|0x2a}".parse::<Pid>().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn bits_round_trip_where_they_fit() {
        let host = HostId::intern("pid:bits");
        for serial in [1, 0x2a, 0xffff_ffff, (1 << 48) - 1] {
            let pid = Pid { host, serial };
            let bits = pid.to_bits().expect("fits");
            assert!(bits < 1 << 63);
            assert_eq!(Pid::from_bits(bits), Some(pid));
        }
        assert_eq!(Pid { host, serial: 1 << 48 }.to_bits(), None);
        assert_eq!(Pid { host: HostId(1 << 15), serial: 1 }.to_bits(), None);
        assert_eq!(Pid::from_bits(1 << 63), None);
        assert_eq!(Pid::from_bits(((1 << 15) - 1) << 48 | 7), None, "a host never interned");
    }

    /// Fresh pids are unique across threads, never 0, and each thread's come in runs: 64
    /// consecutive serials from one run before it takes the next.
    #[test]
    fn fresh_serials_are_unique_and_come_in_runs() {
        let host = HostId::intern("pid:fresh");
        let per_thread = 1000;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    (0..per_thread).map(|_| Pid::fresh(host).serial()).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            let serials = t.join().unwrap();
            for pair in serials.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if (b >> SERIAL_RUN_BITS) == (a >> SERIAL_RUN_BITS) {
                    assert_eq!(b, a + 1, "within a run, serials follow each other");
                } else {
                    assert_eq!(a & ((1 << SERIAL_RUN_BITS) - 1), (1 << SERIAL_RUN_BITS) - 1);
                    assert_eq!(
                        b & ((1 << SERIAL_RUN_BITS) - 1),
                        0,
                        "a new run starts at its first"
                    );
                }
            }
            for s in serials {
                assert_ne!(s, 0);
                assert!(all.insert(s), "serial {s} handed out twice");
            }
        }
        assert_eq!(all.len(), 4 * per_thread);
    }
}
