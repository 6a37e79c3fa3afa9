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

// Inline text is kept in whole words built in registers (see `spindle_abi::inline_text`).
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
        Topic(Repr::Inline { len: s.len() as u8, words: spindle_abi::inline_text(s.as_bytes()) })
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
