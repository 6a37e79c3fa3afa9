//! Message topics: short strings, kept inline so that sending a message allocates nothing for
//! its topic.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

const INLINE: usize = 22;

/// A message topic. Topics up to 22 bytes (nearly all) are stored inline.
#[derive(Clone)]
pub struct Topic(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Topic {
    /// The topic `s`.
    pub fn new(s: &str) -> Topic {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Topic(Repr::Inline { len: s.len() as u8, bytes })
        } else {
            Topic(Repr::Heap(s.into()))
        }
    }

    /// The topic as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let b = &bytes[..*len as usize];
                // SAFETY: `new` copied a whole `&str` (valid UTF-8) into the first `len` bytes,
                // and the bytes are never changed after.
                unsafe { std::str::from_utf8_unchecked(b) }
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
        for s in ["", "a", "exactly-22-bytes-long!", "twenty-three bytes long", "ünïcödé tópic ✓"]
        {
            let t = Topic::new(s);
            assert_eq!(t.as_str(), s);
            assert_eq!(Topic::from(s.to_owned()), t);
        }
        assert_eq!(size_of::<Topic>(), 24);
    }
}
