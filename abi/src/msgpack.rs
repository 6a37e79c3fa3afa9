//! The payload format: MessagePack, read and written token by token without allocating.
//!
//! Spindle values map to MessagePack as: nil, boolean, integer (64-bit signed; unsigned
//! integers above `i64::MAX` are rejected), float (always written as float 64, so a float stays
//! a float; float 32 is read), str (UTF-8 text), bin (bytes), array, map (any keys). Extension
//! types are rejected. A [`Writer`] writes tokens into any [`Sink`]; a [`Reader`] yields
//! [`Token`]s borrowing from the input. Nesting is the caller's: an `Array(n)` token is followed
//! by `n` values, a `Map(n)` by `n` key/value pairs.
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use spindle_abi::msgpack::{Reader, Token, Writer};
//!
//! let mut buf = Vec::new();
//! let mut w = Writer(&mut buf);
//! w.array(2);
//! w.int(-5);
//! w.str("five");
//! let mut r = Reader::new(&buf);
//! assert_eq!(r.next(), Ok(Token::Array(2)));
//! assert_eq!(r.next(), Ok(Token::Int(-5)));
//! assert_eq!(r.next(), Ok(Token::Str("five")));
//! assert!(r.is_empty());
//! # }
//! ```

use core::fmt;

/// Where a [`Writer`] puts bytes.
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

#[cfg(feature = "alloc")]
impl Sink for alloc::vec::Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes MessagePack tokens into a [`Sink`], each in its shortest form (floats always as
/// float 64).
#[derive(Debug)]
pub struct Writer<'a, S: Sink + ?Sized>(pub &'a mut S);

impl<S: Sink + ?Sized> Writer<'_, S> {
    /// nil.
    pub fn nil(&mut self) {
        self.0.put(&[0xc0]);
    }

    /// A boolean.
    pub fn bool(&mut self, b: bool) {
        self.0.put(&[if b { 0xc3 } else { 0xc2 }]);
    }

    /// An integer.
    pub fn int(&mut self, i: i64) {
        let s = &mut *self.0;
        match i {
            0..=0x7f => s.put(&[i as u8]),
            -32..=-1 => s.put(&[i as i8 as u8]),
            0x80..=0xff => s.put(&[0xcc, i as u8]),
            0x100..=0xffff => put2(s, 0xcd, &(i as u16).to_be_bytes()),
            0x1_0000..=0xffff_ffff => put2(s, 0xce, &(i as u32).to_be_bytes()),
            -0x80..=-33 => s.put(&[0xd0, i as i8 as u8]),
            -0x8000..=-0x81 => put2(s, 0xd1, &(i as i16).to_be_bytes()),
            -0x8000_0000..=-0x8001 => put2(s, 0xd2, &(i as i32).to_be_bytes()),
            _ if i > 0 => put2(s, 0xcf, &(i as u64).to_be_bytes()),
            _ => put2(s, 0xd3, &i.to_be_bytes()),
        }
    }

    /// A float, as float 64.
    pub fn float(&mut self, x: f64) {
        put2(self.0, 0xcb, &x.to_bits().to_be_bytes());
    }

    /// A UTF-8 string.
    pub fn str(&mut self, s: &str) {
        self.head(s.len(), Some(0xa0), [0xd9, 0xda, 0xdb]);
        self.0.put(s.as_bytes());
    }

    /// A byte string.
    pub fn bin(&mut self, b: &[u8]) {
        self.head(b.len(), None, [0xc4, 0xc5, 0xc6]);
        self.0.put(b);
    }

    /// The start of an array of `n` values.
    pub fn array(&mut self, n: usize) {
        self.collection(n, 0x90, 0xdc, 0xdd);
    }

    /// The start of a map of `n` key/value pairs.
    pub fn map(&mut self, n: usize) {
        self.collection(n, 0x80, 0xde, 0xdf);
    }

    fn head(&mut self, len: usize, fix: Option<u8>, [m8, m16, m32]: [u8; 3]) {
        let s = &mut *self.0;
        match (len, fix) {
            (0..=31, Some(f)) => s.put(&[f | len as u8]),
            (0..=0xff, _) => s.put(&[m8, len as u8]),
            (0x100..=0xffff, _) => put2(s, m16, &(len as u16).to_be_bytes()),
            _ => put2(s, m32, &(len as u32).to_be_bytes()),
        }
    }

    fn collection(&mut self, n: usize, fix: u8, m16: u8, m32: u8) {
        let s = &mut *self.0;
        match n {
            0..=15 => s.put(&[fix | n as u8]),
            0x10..=0xffff => put2(s, m16, &(n as u16).to_be_bytes()),
            _ => put2(s, m32, &(n as u32).to_be_bytes()),
        }
    }
}

fn put2<S: Sink + ?Sized>(s: &mut S, marker: u8, rest: &[u8]) {
    s.put(&[marker]);
    s.put(rest);
}

/// One MessagePack token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Token<'a> {
    /// nil.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A float (float 32 widened).
    Float(f64),
    /// A UTF-8 string.
    Str(&'a str),
    /// A byte string.
    Bin(&'a [u8]),
    /// An array of this many values follows.
    Array(u32),
    /// A map of this many key/value pairs follows.
    Map(u32),
}

/// `bytes` as a token if they are exactly one nil, boolean, integer or float (most payloads
/// are), read without the [`Reader`]: a match on the marker and the length, small enough to
/// inline where a payload becomes a value. `None` for anything else, valid or not (an
/// unsigned 64-bit integer above `i64::MAX` included: the reader reports that one).
#[inline]
pub fn scalar(bytes: &[u8]) -> Option<Token<'static>> {
    Some(match *bytes {
        [m @ 0x00..=0x7f] => Token::Int(i64::from(m)),
        [m @ 0xe0..=0xff] => Token::Int(i64::from(m as i8)),
        [0xc0] => Token::Nil,
        [0xc2] => Token::Bool(false),
        [0xc3] => Token::Bool(true),
        [0xcc, b] => Token::Int(i64::from(b)),
        [0xcd, ref b @ ..] => Token::Int(i64::from(u16::from_be_bytes(b.try_into().ok()?))),
        [0xce, ref b @ ..] => Token::Int(i64::from(u32::from_be_bytes(b.try_into().ok()?))),
        [0xcf, ref b @ ..] => {
            Token::Int(i64::try_from(u64::from_be_bytes(b.try_into().ok()?)).ok()?)
        }
        [0xd0, b] => Token::Int(i64::from(b as i8)),
        [0xd1, ref b @ ..] => Token::Int(i64::from(i16::from_be_bytes(b.try_into().ok()?))),
        [0xd2, ref b @ ..] => Token::Int(i64::from(i32::from_be_bytes(b.try_into().ok()?))),
        [0xd3, ref b @ ..] => Token::Int(i64::from_be_bytes(b.try_into().ok()?)),
        [0xca, ref b @ ..] => {
            Token::Float(f64::from(f32::from_bits(u32::from_be_bytes(b.try_into().ok()?))))
        }
        [0xcb, ref b @ ..] => Token::Float(f64::from_bits(u64::from_be_bytes(b.try_into().ok()?))),
        _ => return None,
    })
}

/// Why bytes are not a Spindle payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a token, at this offset.
    Truncated(usize),
    /// A str token that is not UTF-8, at this offset.
    NotUtf8(usize),
    /// An unsigned integer above `i64::MAX`, at this offset.
    IntOutOfRange(usize),
    /// A marker Spindle does not use (extension types, 0xc1), at this offset.
    Unsupported(u8, usize),
    /// Arrays and maps nested deeper than the reader allows, at this offset.
    TooDeep(usize),
    /// Bytes left over after the value, at this offset.
    Trailing(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated(at) => write!(f, "MessagePack ends inside a value at byte {at}"),
            DecodeError::NotUtf8(at) => write!(f, "MessagePack str at byte {at} is not UTF-8"),
            DecodeError::IntOutOfRange(at) => {
                write!(f, "MessagePack integer at byte {at} does not fit a signed 64-bit integer")
            }
            DecodeError::Unsupported(m, at) => {
                write!(f, "MessagePack marker {m:#04x} at byte {at} is not a Spindle value")
            }
            DecodeError::TooDeep(at) => write!(f, "MessagePack nested too deeply at byte {at}"),
            DecodeError::Trailing(at) => write!(f, "bytes left over after the value at byte {at}"),
        }
    }
}

/// How deep arrays and maps may nest in a payload (a guard against hostile input overflowing
/// a decoder's stack).
pub const MAX_DEPTH: usize = 128;

/// Reads MessagePack tokens from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// The offset of the next token.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// [`DecodeError::Trailing`] unless every byte has been read.
    ///
    /// # Errors
    /// When bytes are left.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() { Ok(()) } else { Err(DecodeError::Trailing(self.pos)) }
    }

    fn take(&mut self, n: usize, at: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(DecodeError::Truncated(at))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn be<const N: usize>(&mut self, at: usize) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, at)?);
        Ok(a)
    }

    fn len(&mut self, width: usize, at: usize) -> Result<usize, DecodeError> {
        Ok(match width {
            1 => self.be::<1>(at)?[0] as usize,
            2 => u16::from_be_bytes(self.be(at)?) as usize,
            _ => u32::from_be_bytes(self.be(at)?) as usize,
        })
    }

    fn str(&mut self, len: usize, at: usize) -> Result<Token<'a>, DecodeError> {
        let bytes = self.take(len, at)?;
        core::str::from_utf8(bytes).map(Token::Str).map_err(|_| DecodeError::NotUtf8(at))
    }

    /// The next token.
    ///
    /// # Errors
    /// When the input is truncated or holds something that is not a Spindle value.
    #[expect(clippy::should_implement_trait, reason = "a fallible reader, not an iterator")]
    pub fn next(&mut self) -> Result<Token<'a>, DecodeError> {
        let at = self.pos;
        let m = self.be::<1>(at)?[0];
        Ok(match m {
            0x00..=0x7f => Token::Int(i64::from(m)),
            0x80..=0x8f => Token::Map(u32::from(m & 0x0f)),
            0x90..=0x9f => Token::Array(u32::from(m & 0x0f)),
            0xa0..=0xbf => self.str(usize::from(m & 0x1f), at)?,
            0xc0 => Token::Nil,
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4..=0xc6 => {
                let len = self.len(1 << (m - 0xc4), at)?;
                Token::Bin(self.take(len, at)?)
            }
            0xca => Token::Float(f64::from(f32::from_bits(u32::from_be_bytes(self.be(at)?)))),
            0xcb => Token::Float(f64::from_bits(u64::from_be_bytes(self.be(at)?))),
            0xcc => Token::Int(i64::from(self.be::<1>(at)?[0])),
            0xcd => Token::Int(i64::from(u16::from_be_bytes(self.be(at)?))),
            0xce => Token::Int(i64::from(u32::from_be_bytes(self.be(at)?))),
            0xcf => {
                let u = u64::from_be_bytes(self.be(at)?);
                Token::Int(i64::try_from(u).map_err(|_| DecodeError::IntOutOfRange(at))?)
            }
            0xd0 => Token::Int(i64::from(i8::from_be_bytes(self.be(at)?))),
            0xd1 => Token::Int(i64::from(i16::from_be_bytes(self.be(at)?))),
            0xd2 => Token::Int(i64::from(i32::from_be_bytes(self.be(at)?))),
            0xd3 => Token::Int(i64::from_be_bytes(self.be(at)?)),
            0xd9..=0xdb => {
                let len = self.len(1 << (m - 0xd9), at)?;
                self.str(len, at)?
            }
            0xdc => Token::Array(u32::from(u16::from_be_bytes(self.be(at)?))),
            0xdd => Token::Array(u32::from_be_bytes(self.be(at)?)),
            0xde => Token::Map(u32::from(u16::from_be_bytes(self.be(at)?))),
            0xdf => Token::Map(u32::from_be_bytes(self.be(at)?)),
            0xe0..=0xff => Token::Int(i64::from(m as i8)),
            other => return Err(DecodeError::Unsupported(other, at)),
        })
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn written(f: impl FnOnce(&mut Writer<'_, Vec<u8>>)) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut Writer(&mut buf));
        buf
    }

    /// Every scalar encoding, the widths the writer never picks included, decodes as the
    /// reader decodes it; anything else is left to the reader.
    #[test]
    fn scalars_decode_without_the_reader_as_the_reader_does() {
        let mut cases: Vec<Vec<u8>> = [
            0,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            1 << 40,
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32_768,
            -32_769,
            -(1 << 40),
            i64::MIN,
        ]
        .iter()
        .map(|&i| written(|w| w.int(i)))
        .collect();
        cases.extend([written(|w| w.float(-2.5)), written(|w| w.nil()), written(|w| w.bool(true))]);
        cases.extend([
            vec![0xc2],
            vec![0xcc, 5],
            vec![0xcd, 0, 5],
            vec![0xce, 0, 0, 0, 5],
            vec![0xcf, 0, 0, 0, 0, 0, 0, 0, 5],
            vec![0xd0, 0xfb],
            vec![0xd1, 0xff, 0xfb],
            vec![0xd2, 0xff, 0xff, 0xff, 0xfb],
            vec![0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb],
            vec![0xca, 0x40, 0x20, 0, 0],
        ]);
        for b in &cases {
            let read = Reader::new(b).next().unwrap();
            assert_eq!(scalar(b), Some(read), "{b:02x?}");
        }
        let not_scalars: &[&[u8]] = &[
            &[],
            &[0xcd, 1],
            &[0x01, 0x02],
            &[0x91, 0x01],
            &[0xa1, b'a'],
            &[0xc4, 0],
            &[0xc1],
            &[0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0],
        ];
        for b in not_scalars {
            assert_eq!(scalar(b), None, "{b:02x?}");
        }
    }

    #[test]
    fn integers_round_trip_in_their_shortest_form() {
        let cases: &[(i64, usize)] = &[
            (0, 1),
            (127, 1),
            (-1, 1),
            (-32, 1),
            (-33, 2),
            (128, 2),
            (255, 2),
            (256, 3),
            (-129, 3),
            (65_536, 5),
            (-40_000, 5),
            (1 << 40, 9),
            (i64::MAX, 9),
            (i64::MIN, 9),
        ];
        for &(i, len) in cases {
            let buf = written(|w| w.int(i));
            assert_eq!(buf.len(), len, "{i}");
            let mut r = Reader::new(&buf);
            assert_eq!(r.next(), Ok(Token::Int(i)));
            assert!(r.is_empty());
        }
    }

    #[test]
    fn strings_bins_and_collections_round_trip() {
        let long = "x".repeat(70_000);
        let buf = written(|w| {
            w.map(2);
            w.str("k");
            w.bin(&[0, 255]);
            w.str(&long);
            w.array(20);
            w.float(1.5);
            w.bool(true);
            w.nil();
        });
        let mut r = Reader::new(&buf);
        assert_eq!(r.next(), Ok(Token::Map(2)));
        assert_eq!(r.next(), Ok(Token::Str("k")));
        assert_eq!(r.next(), Ok(Token::Bin(&[0, 255])));
        assert_eq!(r.next(), Ok(Token::Str(long.as_str())));
        assert_eq!(r.next(), Ok(Token::Array(20)));
        assert_eq!(r.next(), Ok(Token::Float(1.5)));
        assert_eq!(r.next(), Ok(Token::Bool(true)));
        assert_eq!(r.next(), Ok(Token::Nil));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(Reader::new(&[0xcd, 1]).next(), Err(DecodeError::Truncated(0)));
        assert_eq!(Reader::new(&[0xa2, b'a']).next(), Err(DecodeError::Truncated(0)));
        assert_eq!(Reader::new(&[0xa1, 0xff]).next(), Err(DecodeError::NotUtf8(0)));
        assert_eq!(Reader::new(&[0xc1]).next(), Err(DecodeError::Unsupported(0xc1, 0)));
        assert_eq!(Reader::new(&[0xd4, 0, 0]).next(), Err(DecodeError::Unsupported(0xd4, 0)));
        let big = written(|w| w.0.extend_from_slice(&[0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(Reader::new(&big).next(), Err(DecodeError::IntOutOfRange(0)));
        assert_eq!(
            Reader::new(&[0xc6, 0xff, 0xff, 0xff, 0xff]).next(),
            Err(DecodeError::Truncated(0))
        );
        // float 32 is widened
        let f32buf = written(|w| w.0.extend_from_slice(&[0xca, 0x3f, 0xc0, 0, 0]));
        assert_eq!(Reader::new(&f32buf).next(), Ok(Token::Float(1.5)));
    }
}
