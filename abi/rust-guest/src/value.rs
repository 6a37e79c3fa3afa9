//! The payload type, and its MessagePack form.

use std::fmt;

use spindle_abi::msgpack::{DecodeError, MAX_DEPTH, Reader, Token, Writer};

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
        let mut r = Reader::new(bytes);
        let v = read(&mut r, 0)?;
        r.finish()?;
        Ok(v)
    }
}

/// `items` as one MessagePack array.
pub(crate) fn array_to_msgpack(items: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer(&mut out);
    w.array(items.len());
    items.iter().for_each(|v| write(&mut w, v));
    out
}

fn write(w: &mut Writer<'_, Vec<u8>>, v: &Value) {
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

fn read(r: &mut Reader<'_>, depth: usize) -> Result<Value, DecodeError> {
    let at = r.position();
    Ok(match r.next()? {
        Token::Nil => Value::Nil,
        Token::Bool(b) => Value::Bool(b),
        Token::Int(i) => Value::Int(i),
        Token::Float(x) => Value::Float(x),
        Token::Str(s) => Value::Str(s.to_owned()),
        Token::Bin(b) => Value::Bytes(b.to_vec()),
        Token::Array(_) | Token::Map(_) if depth >= MAX_DEPTH => {
            return Err(DecodeError::TooDeep(at));
        }
        Token::Array(n) => {
            let mut a = Vec::with_capacity((n as usize).min(r.remaining()));
            for _ in 0..n {
                a.push(read(r, depth + 1)?);
            }
            Value::Array(a)
        }
        Token::Map(n) => {
            let mut m = Vec::with_capacity((n as usize).min(r.remaining() / 2));
            for _ in 0..n {
                let k = read(r, depth + 1)?;
                m.push((k, read(r, depth + 1)?));
            }
            Value::Map(m)
        }
    })
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
    fn values_round_trip() {
        let v = Value::Map(vec![
            ("i".into(), Value::Int(-1 << 40)),
            ("f".into(), Value::Float(2.0)),
            ("b".into(), Value::Bytes(vec![1, 2, 255])),
            (Value::Int(3), Value::Array(vec![Value::Nil, true.into(), "s".into()])),
        ]);
        assert_eq!(Value::from_msgpack(&v.to_msgpack()), Ok(v));
    }
}
