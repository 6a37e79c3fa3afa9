//! Message topics: short strings, kept inline so that sending a message allocates nothing for
//! its topic.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// The longest topic kept inline; longer ones are boxed.
const INLINE: usize = 16;

/// A message topic. Topics up to 16 bytes (nearly all) are stored inline.
#[derive(Clone)]
pub struct Topic(Repr);

// Inline text is kept in whole words built in registers: copying the bytes into a byte array
// costs a `memcpy` call, and moving the topic then reloads what the call stored in smaller,
// overlapping pieces, which stalls (those loads cannot be forwarded from the stores).
#[derive(Clone)]
enum Repr {
    /// The first `len` bytes of `words`, in memory order, are the text; the rest are zero.
    Inline {
        len: u8,
        words: [u64; 2],
    },
    Heap(Box<str>),
}

impl Topic {
    /// The topic `s`.
    #[inline]
    pub fn new(s: &str) -> Topic {
        if s.len() > INLINE {
            return Topic(Repr::Heap(s.into()));
        }
        let text = s.as_bytes();
        let n = text.len();
        let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
        let le32 = |b: &[u8]| u64::from(u32::from_le_bytes(b.try_into().unwrap_or_default()));
        // The bytes as a 128-bit little-endian number in two halves, from loads that overlap
        // rather than run past the end.
        let (lo, hi) = match n {
            0 => (0, 0),
            1..=3 => {
                let byte = |i: usize| u64::from(text[i]) << (8 * i);
                (byte(0) | byte(n / 2) | byte(n - 1), 0)
            }
            4..=7 => (le32(&text[..4]) | le32(&text[n - 4..]) << (8 * (n - 4)), 0),
            8 => (le64(text), 0),
            _ => (le64(&text[..8]), le64(&text[n - 8..]) >> (8 * (16 - n))),
        };
        Topic(Repr::Inline { len: n as u8, words: [lo.to_le(), hi.to_le()] })
    }

    /// The topic as a string slice.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, words } => {
                // SAFETY: `new` laid out the `len` (at most 16) bytes of a `&str` (valid UTF-8)
                // in memory order in the 16 bytes of `words`, which are never changed after.
                unsafe {
                    let bytes =
                        std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), *len as usize);
                    std::str::from_utf8_unchecked(bytes)
                }
            }
            Repr::Heap(s) => s,
        }
    }
}

impl Deref for Topic {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Topic) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Topic {}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl From<&str> for Topic {
    fn from(s: &str) -> Topic {
        Topic::new(s)
    }
}

impl From<String> for Topic {
    fn from(s: String) -> Topic {
        if s.len() <= INLINE { Topic::new(&s) } else { Topic(Repr::Heap(s.into_boxed_str())) }
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_topics_round_trip() {
        for s in [
            "",
            "a",
            "ab",
            "abc",
            "four",
            "seven!!",
            "eight!!!",
            "nine!!!!!",
            "fifteen bytes!!",
            "exactly 16 bytes",
            "seventeen bytes!!",
            "twenty-three bytes long",
            "ünïcödé tópic ✓",
        ] {
            let t = Topic::new(s);
            assert_eq!(t.as_str(), s);
            assert_eq!(Topic::from(s.to_owned()), t);
        }
        assert_eq!(size_of::<Topic>(), 24);
    }
}
