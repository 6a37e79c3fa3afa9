//! Message topics: text that is nearly always short, kept inline so that receiving a message
//! allocates nothing for its topic.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// The longest topic kept inline; longer ones are boxed.
const INLINE: usize = 16;

/// A message's topic. It derefs to `&str` and compares with `str` and `String`; topics of up to
/// 16 bytes (all the usual ones) are stored inline, without an allocation.
///
/// ```
/// use spindle_guest::Topic;
///
/// let t = Topic::from("echo");
/// assert_eq!(t, "echo");
/// assert!(t.starts_with("ec"));
/// match t.as_str() {
///     "echo" => {}
///     _ => unreachable!(),
/// }
/// ```
#[derive(Clone)]
pub struct Topic(Repr);

// Inline text is kept in whole words built in registers (see `spindle_abi::inline_text`).
#[derive(Clone)]
enum Repr {
    /// The first `len` bytes of `words`, in memory order, are the text; the rest are zero.
    Inline {
        len: usize,
        words: [u64; 2],
    },
    Heap(Box<str>),
}

impl Topic {
    /// The topic as text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, words } => {
                // SAFETY: `Inline` is only built by `Topic::inline`, from `len` (at most 16)
                // bytes of UTF-8 laid out in memory order in the 16 bytes of `words`.
                unsafe {
                    let bytes = std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), *len);
                    std::str::from_utf8_unchecked(bytes)
                }
            }
            Repr::Heap(s) => s,
        }
    }

    /// The topic of bytes the host lent (UTF-8 from any conforming host; bad bytes are
    /// replaced rather than trusted).
    #[inline]
    pub(crate) fn lent(b: &[u8]) -> Topic {
        if b.len() <= INLINE {
            // ASCII told from the words already built: no byte-by-byte look.
            let words = spindle_abi::inline_text(b);
            if (words[0] | words[1]) & 0x8080_8080_8080_8080 == 0 {
                return Topic(Repr::Inline { len: b.len(), words });
            }
        }
        Topic::lent_other(b)
    }

    /// [`Topic::lent`] of a topic that is not short ASCII (out of line: the common path
    /// stays short enough to build its topic in place).
    #[cold]
    #[inline(never)]
    fn lent_other(b: &[u8]) -> Topic {
        match std::str::from_utf8(b) {
            Ok(_) if b.len() <= INLINE => Topic::inline(b),
            Ok(s) => Topic(Repr::Heap(s.into())),
            Err(_) => Topic::from(String::from_utf8_lossy(b).into_owned()),
        }
    }

    /// The topic of `text`, UTF-8 of at most [`INLINE`] bytes.
    #[inline]
    fn inline(text: &[u8]) -> Topic {
        Topic(Repr::Inline { len: text.len(), words: spindle_abi::inline_text(text) })
    }
}

impl Default for Topic {
    fn default() -> Topic {
        Topic::from("")
    }
}

impl From<&str> for Topic {
    fn from(s: &str) -> Topic {
        if s.len() > INLINE { Topic(Repr::Heap(s.into())) } else { Topic::inline(s.as_bytes()) }
    }
}

impl From<String> for Topic {
    fn from(s: String) -> Topic {
        if s.len() > INLINE { Topic(Repr::Heap(s.into_boxed_str())) } else { Topic::from(&*s) }
    }
}

impl From<Topic> for String {
    fn from(t: Topic) -> String {
        match t.0 {
            Repr::Heap(s) => s.into_string(),
            Repr::Inline { .. } => t.as_str().to_owned(),
        }
    }
}

impl Deref for Topic {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Topic) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Topic {}

impl PartialOrd for Topic {
    fn partial_cmp(&self, other: &Topic) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Topic {
    fn cmp(&self, other: &Topic) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// `Topic == other` and `other == Topic` for the string types.
macro_rules! eq_str {
    ($($other:ty),*) => {$(
        impl PartialEq<$other> for Topic {
            fn eq(&self, other: &$other) -> bool {
                self.as_str() == &other[..]
            }
        }
        impl PartialEq<Topic> for $other {
            fn eq(&self, other: &Topic) -> bool {
                &self[..] == other.as_str()
            }
        }
    )*};
}

eq_str!(str, &str, String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_topics_are_inline_and_long_ones_boxed() {
        for n in (0..=INLINE + 2).chain([200]) {
            let s = "é".repeat(n / 2) + &"x".repeat(n % 2);
            for t in [Topic::from(s.as_str()), Topic::from(s.clone())] {
                assert_eq!(t, s);
                assert_eq!(t.len(), s.len());
                assert_eq!(matches!(t.0, Repr::Inline { .. }), s.len() <= INLINE, "{n}");
                assert_eq!(String::from(t), s);
            }
        }
    }

    #[test]
    fn lent_topics_are_their_text_or_its_lossy_form() {
        for n in 0..=INLINE + 2 {
            for s in ["x".repeat(n), "é".repeat(n / 2) + &"x".repeat(n % 2)] {
                let t = Topic::lent(s.as_bytes());
                assert_eq!(t, s);
                assert_eq!(matches!(t.0, Repr::Inline { .. }), s.len() <= INLINE, "{s:?}");
            }
            // A stray continuation byte or a cut sequence, at each place of a short topic.
            let mut bad = b"x".repeat(n);
            for b in [0x80, 0xc3] {
                bad.push(b);
                assert_eq!(Topic::lent(&bad), *String::from_utf8_lossy(&bad), "{bad:?}");
                bad.pop();
            }
        }
    }

    #[test]
    fn compares_and_prints_as_its_text() {
        let t = Topic::from("ring");
        assert_eq!(t, "ring");
        assert_eq!("ring", t);
        assert_eq!(t, *"ring");
        assert_eq!(t, String::from("ring"));
        assert_eq!(String::from("ring"), t);
        assert_ne!(t, "ring2");
        assert_eq!(format!("{t} {t:?}"), "ring \"ring\"");
        assert_eq!(Topic::from("a").cmp(&Topic::from("b")), Ordering::Less);
        assert_eq!(Topic::default(), "");
        assert_eq!(Topic::lent(&[b'o', 0xff, b'k']), "o\u{fffd}k");
        let long = "abcdefghijklmnopqrstuvwxyz";
        for n in 0..=long.len() {
            assert_eq!(Topic::lent(&long.as_bytes()[..n]), long[..n]);
            assert_eq!(Topic::lent(&long.as_bytes()[long.len() - n..]), long[long.len() - n..]);
        }
    }
}
