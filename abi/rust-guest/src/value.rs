//! The payload type, and its MessagePack form.

use std::fmt;
use std::mem::MaybeUninit;

use spindle_abi::msgpack::{self, DecodeError, MAX_DEPTH, Reader, Sink, Token, Writer};

use crate::error::{Error, ErrorKind};

/// A message payload, a spawn argument or a process result: the same shapes as every other
/// Spindle backend sees, so values cross between languages exactly.
#[derive(Clone, PartialEq, Default)]
pub enum Value {
    /// nil.
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// An ordered sequence.
    Array(Vec<Value>),
    /// Key/value pairs in order.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// A map from string keys, in the order given.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (Value::Str(k.into()), v)).collect())
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        if let Value::Int(i) = self { Some(*i) } else { None }
    }

    /// The float, if this is one.
    pub fn as_float(&self) -> Option<f64> {
        if let Value::Float(x) = self { Some(*x) } else { None }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        if let Value::Str(s) = self { Some(s) } else { None }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        if let Value::Array(a) = self { Some(a) } else { None }
    }

    /// The value under string key `key`, if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as MessagePack.
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut Writer(&mut out), self);
        out
    }

    /// The one value `bytes` hold.
    ///
    /// # Errors
    /// When the bytes are not exactly one Spindle value.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Value, DecodeError> {
        if let Some(v) = scalar(bytes) {
            return Ok(v);
        }
        let mut r = Reader::new(bytes);
        let v = read(&mut r, 0)?;
        r.finish()?;
        Ok(v)
    }
}

/// The arguments a process starts with: the array `bytes` hold (none for no bytes). The items
/// are read straight into the vector the process gets.
pub(crate) fn arguments(bytes: &[u8]) -> Result<Vec<Value>, Error> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader::new(bytes);
    let read = match r.next() {
        Ok(Token::Array(n)) => array(&mut r, n, 0).and_then(|a| r.finish().map(|()| a)),
        _ => match Value::from_msgpack(bytes) {
            Ok(other) => {
                return Err(Error::new(ErrorKind::Invalid, format!("arguments {other:?}")));
            }
            Err(e) => Err(e),
        },
    };
    read.map_err(|e| Error::new(ErrorKind::Invalid, format!("arguments: {e}")))
}

/// The value of payload bytes the host lent, which it encoded itself (nil if they were
/// malformed all the same). Inlined where messages are received: a scalar is decoded in place.
#[inline]
pub(crate) fn lent(bytes: &[u8]) -> Value {
    match scalar(bytes) {
        Some(v) => v,
        None => lent_compound(bytes),
    }
}

#[inline(never)]
fn lent_compound(bytes: &[u8]) -> Value {
    Value::from_msgpack(bytes).unwrap_or(Value::Nil)
}

/// `bytes` if they are exactly one nil, boolean, integer or float (see
/// [`spindle_abi::msgpack::scalar`]).
#[inline]
fn scalar(bytes: &[u8]) -> Option<Value> {
    Some(match msgpack::scalar(bytes)? {
        Token::Nil => Value::Nil,
        Token::Bool(b) => Value::Bool(b),
        Token::Int(i) => Value::Int(i),
        Token::Float(x) => Value::Float(x),
        _ => return None,
    })
}

/// MessagePack bytes on their way to the host, which copies them: kept on the stack when they
/// fit (most payloads do), so that sending costs no allocation.
pub(crate) struct Packed {
    len: usize,
    /// The first `len` bytes are written (the rest is left as it was: a send of one integer
    /// writes three bytes, not sixty-four zeros first).
    inline: [MaybeUninit<u8>; Packed::INLINE],
    heap: Vec<u8>,
}

impl Packed {
    const INLINE: usize = 64;

    /// Empty. Fill it with one of the methods below, in place: the buffer is large, moving it
    /// costs more than writing it.
    pub(crate) fn new() -> Packed {
        Packed { len: 0, inline: [MaybeUninit::uninit(); Packed::INLINE], heap: Vec::new() }
    }

    /// The bytes written inline.
    fn written(&self) -> &[u8] {
        // SAFETY: `put` wrote the first `len` bytes, and `len` never exceeds the buffer.
        unsafe { std::slice::from_raw_parts(self.inline.as_ptr().cast::<u8>(), self.len) }
    }

    /// `v` as MessagePack.
    #[inline]
    pub(crate) fn value(&mut self, v: &Value) -> &[u8] {
        match *v {
            // The common payload, written without the general writer's recursion.
            Value::Int(i) => Writer(&mut *self).int(i),
            _ => write(&mut Writer(&mut *self), v),
        }
        self.as_bytes()
    }

    /// [`Packed::value`] of a value given away: a scalar needs no call to drop it.
    #[inline(always)]
    pub(crate) fn owned(&mut self, v: Value) -> &[u8] {
        let scalar = match v {
            Value::Int(i) => {
                Writer(&mut *self).int(i);
                true
            }
            Value::Nil => {
                Writer(&mut *self).nil();
                true
            }
            ref other => {
                write(&mut Writer(&mut *self), other);
                false
            }
        };
        if scalar {
            // Owns nothing: forgetting it is dropping it, without the call the compiler would
            // make to the value's whole drop glue.
            std::mem::forget(v);
        }
        self.as_bytes()
    }

    /// `items` as one MessagePack array; no bytes at all for no items.
    pub(crate) fn array(&mut self, items: &[Value]) -> &[u8] {
        if !items.is_empty() {
            let mut w = Writer(&mut *self);
            w.array(items.len());
            items.iter().for_each(|v| write(&mut w, v));
        }
        self.as_bytes()
    }

    fn as_bytes(&self) -> &[u8] {
        if self.heap.is_empty() { self.written() } else { &self.heap }
    }

    /// `put` once the bytes no longer fit inline.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, bytes: &[u8]) {
        if self.heap.is_empty() {
            let mut heap = Vec::with_capacity(2 * (self.len + bytes.len()));
            heap.extend_from_slice(self.written());
            self.heap = heap;
        }
        self.heap.extend_from_slice(bytes);
    }
}

impl Sink for Packed {
    // Small enough to inline into the writer, where each token's length is a constant.
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        match self.inline.get_mut(self.len..self.len + bytes.len()) {
            Some(to) if self.heap.is_empty() => {
                to.write_copy_of_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.spill(bytes),
        }
    }
}

fn write<S: Sink>(w: &mut Writer<'_, S>, v: &Value) {
    match v {
        Value::Nil => w.nil(),
        Value::Bool(b) => w.bool(*b),
        Value::Int(i) => w.int(*i),
        Value::Float(x) => w.float(*x),
        Value::Str(s) => w.str(s),
        Value::Bytes(b) => w.bin(b),
        Value::Array(a) => {
            w.array(a.len());
            a.iter().for_each(|v| write(w, v));
        }
        Value::Map(m) => {
            w.map(m.len());
            for (k, v) in m {
                write(w, k);
                write(w, v);
            }
        }
    }
}

/// One value.
#[inline(always)]
fn read(r: &mut Reader<'_>, depth: usize) -> Result<Value, DecodeError> {
    let mut v = MaybeUninit::uninit();
    read_into(r, depth, &mut v)?;
    // SAFETY: `read_into` returned `Ok`, so it wrote the value.
    Ok(unsafe { v.assume_init() })
}

/// One value, written into `out` (which it leaves uninitialized on an error). Inlined into the
/// loops over an array's or a map's items, so that each item is built in its slot: built
/// elsewhere and moved there, it was read back in wider pieces than it had been written, which
/// stalls on store forwarding.
#[inline(always)]
fn read_into(
    r: &mut Reader<'_>,
    depth: usize,
    out: &mut MaybeUninit<Value>,
) -> Result<(), DecodeError> {
    let at = r.position();
    match r.next()? {
        Token::Nil => out.write(Value::Nil),
        Token::Bool(b) => out.write(Value::Bool(b)),
        Token::Int(i) => out.write(Value::Int(i)),
        Token::Float(x) => out.write(Value::Float(x)),
        Token::Str(s) => out.write(Value::Str(s.to_owned())),
        Token::Bin(b) => out.write(Value::Bytes(b.to_vec())),
        Token::Array(_) | Token::Map(_) if depth >= MAX_DEPTH => {
            return Err(DecodeError::TooDeep(at));
        }
        Token::Array(n) => out.write(Value::Array(array(r, n, depth)?)),
        Token::Map(n) => out.write(Value::Map(map(r, n, depth)?)),
    };
    Ok(())
}

#[inline(never)]
fn array(r: &mut Reader<'_>, n: u32, depth: usize) -> Result<Vec<Value>, DecodeError> {
    let mut a = Vec::with_capacity((n as usize).min(r.remaining()));
    for _ in 0..n {
        a.reserve(1);
        read_into(r, depth + 1, &mut a.spare_capacity_mut()[0])?;
        // SAFETY: the slot after the last item was just written.
        unsafe { a.set_len(a.len() + 1) };
    }
    Ok(a)
}

#[inline(never)]
fn map(r: &mut Reader<'_>, n: u32, depth: usize) -> Result<Vec<(Value, Value)>, DecodeError> {
    let mut m: Vec<(Value, Value)> = Vec::with_capacity((n as usize).min(r.remaining() / 2));
    for _ in 0..n {
        m.reserve(1);
        let pair = m.spare_capacity_mut()[0].as_mut_ptr();
        // SAFETY: both halves of a free slot of `m`'s capacity, written (or, on an error,
        // the key dropped) before the slot counts as an item.
        unsafe {
            let key = &mut *std::ptr::addr_of_mut!((*pair).0).cast::<MaybeUninit<Value>>();
            read_into(r, depth + 1, key)?;
            let value = &mut *std::ptr::addr_of_mut!((*pair).1).cast::<MaybeUninit<Value>>();
            if let Err(e) = read_into(r, depth + 1, value) {
                key.assume_init_drop();
                return Err(e);
            }
            m.set_len(m.len() + 1);
        }
    }
    Ok(m)
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::Array(a) => f.debug_list().entries(a).finish(),
            Value::Map(m) => f.debug_map().entries(m.iter().map(|(k, v)| (k, v))).finish(),
        }
    }
}

impl From<()> for Value {
    fn from((): ()) -> Self {
        Value::Nil
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_bytes_spill_to_the_heap_unchanged() {
        for n in [0, 1, 30, 60, 61, 62, 63, 64, 65, 200, 70_000] {
            let v = Value::Array(vec![Value::Str("x".repeat(n)), Value::Int(n as i64)]);
            assert_eq!(Packed::new().value(&v), v.to_msgpack(), "{n}");
        }
        for v in [
            Value::Nil,
            Value::Bool(true),
            Value::Int(-33),
            Value::Int(1 << 40),
            Value::Float(0.5),
            Value::Str("s".into()),
            Value::Array(vec![Value::Int(1), Value::Bytes(vec![2; 80])]),
        ] {
            assert_eq!(Packed::new().owned(v.clone()), v.to_msgpack(), "{v:?}");
        }
        assert!(Packed::new().array(&[]).is_empty());
        let items = [Value::Int(1), Value::Nil];
        let mut expected = vec![0x92];
        expected.extend(items.iter().flat_map(Value::to_msgpack));
        assert_eq!(Packed::new().array(&items), expected);
    }

    #[test]
    fn scalars_decode_as_the_reader_decodes_them() {
        let ints = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 1 << 40, i64::MAX, -1, -32, -33];
        let more = [-128, -129, -32_768, -32_769, -(1 << 40), i64::MIN];
        let mut values: Vec<Value> = ints.iter().chain(&more).map(|&i| Value::Int(i)).collect();
        values.extend([Value::Nil, Value::Bool(true), Value::Bool(false), Value::Float(-2.5)]);
        for v in values {
            let b = v.to_msgpack();
            assert_eq!(scalar(&b), Some(v.clone()), "{b:?}");
            let mut r = Reader::new(&b);
            assert_eq!(read(&mut r, 0), Ok(v));
        }
        let too_big = [0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(scalar(&too_big), None);
        assert_eq!(Value::from_msgpack(&too_big), Err(DecodeError::IntOutOfRange(0)));
        for not_scalar in [&[][..], &[0xcd, 1], &[0x01, 0x02], &[0x91, 0x01], &[0xa1, b'a']] {
            assert_eq!(scalar(not_scalar), None, "{not_scalar:?}");
        }
    }

    #[test]
    fn values_round_trip() {
        let v = Value::Map(vec![
            ("i".into(), Value::Int(-1 << 40)),
            ("f".into(), Value::Float(2.0)),
            ("b".into(), Value::Bytes(vec![1, 2, 255])),
            (Value::Int(3), Value::Array(vec![Value::Nil, true.into(), "s".into()])),
        ]);
        assert_eq!(Value::from_msgpack(&v.to_msgpack()), Ok(v));
    }

    /// Nesting up to the limit decodes, one level more is refused where it starts, and an
    /// error inside an array or a map ends the whole decode.
    #[test]
    fn nesting_and_errors_inside_compounds() {
        let mut deep = Value::Int(7);
        for i in 0..MAX_DEPTH {
            deep = if i % 2 == 0 {
                Value::Array(vec![deep])
            } else {
                Value::Map(vec![(1.into(), deep)])
            };
        }
        assert_eq!(Value::from_msgpack(&deep.to_msgpack()), Ok(deep.clone()));
        let too_deep = Value::Array(vec![deep]).to_msgpack();
        assert!(matches!(Value::from_msgpack(&too_deep), Err(DecodeError::TooDeep(_))));
        // [1, <truncated str>] and {1: <never-used byte>}
        assert!(Value::from_msgpack(&[0x92, 0x01, 0xa3, b'a']).is_err());
        assert!(Value::from_msgpack(&[0x81, 0x01, 0xc1]).is_err());
        assert_eq!(
            Value::from_msgpack(&[0x92, 0x91, 0x01, 0x81, 0xa1, b'k', 0xc3]),
            Ok(Value::Array(vec![
                Value::Array(vec![Value::Int(1)]),
                Value::Map(vec![("k".into(), true.into())]),
            ]))
        );
    }

    /// A map whose value fails after a key that owns memory: the key is dropped, the decode
    /// fails (a leak or a double free would show under a leak checker or Miri).
    #[test]
    fn a_map_that_fails_after_its_key_drops_the_key() {
        let mut b = vec![0x82, 0xa1, b'a', 0x01, 0xa2, b'k', b'2', 0xa3, b'x'];
        assert!(matches!(Value::from_msgpack(&b), Err(DecodeError::Truncated(_))));
        b.extend(b"yz");
        assert_eq!(
            Value::from_msgpack(&b),
            Ok(Value::map([("a", Value::Int(1)), ("k2", "xyz".into())]))
        );
        b.push(0xc0);
        assert!(matches!(Value::from_msgpack(&b), Err(DecodeError::Trailing(_))));
    }

    /// A process's arguments: an array's items, nothing for no bytes, and a clear error for
    /// anything else.
    #[test]
    fn arguments_are_an_array() {
        let args = vec![Value::from("done"), Value::Int(-7), Value::Array(vec![Value::Nil])];
        assert_eq!(arguments(&Value::Array(args.clone()).to_msgpack()), Ok(args));
        assert_eq!(arguments(&[]), Ok(vec![]));
        assert_eq!(arguments(&[0x90]), Ok(vec![]));
        let not_array = arguments(&[0x05]).unwrap_err();
        assert_eq!((not_array.kind(), not_array.message()), (ErrorKind::Invalid, "arguments 5"));
        for bad in [&[0x92, 0x01][..], &[0x91, 0x01, 0x02], &[0xc1]] {
            let e = arguments(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{bad:?}");
            assert!(e.message().starts_with("arguments: "), "{bad:?}: {}", e.message());
        }
    }
}
