//! The one payload type that crosses between processes.
//!
//! A [`Value`] is owned data: sending it moves or copies it, so nothing is ever shared between
//! processes. Backends convert their own values to and from it (Lua tables, MessagePack bytes).

use std::fmt;

/// A message payload, a spawn argument or a process result.
#[derive(Clone, PartialEq, Default)]
pub enum Value {
    /// No value (`nil`).
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer; stays an integer across every backend.
    Int(i64),
    /// A 64-bit float; stays a float across every backend.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A byte string that is not valid UTF-8, kept byte-exact.
    Bytes(Vec<u8>),
    /// An ordered sequence.
    Array(Vec<Value>),
    /// Key/value pairs in insertion order.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// Whether every process can take this value as it is: nested at most
    /// [`MAX_DEPTH`](spindle_abi::msgpack::MAX_DEPTH) levels (as deep as MessagePack decoding
    /// goes) and no map key a NaN (which no Lua table can hold). Checked where a value leaves
    /// its process, so that the sender gets the error, not the receiver.
    ///
    /// # Errors
    /// `INVALID`, saying which rule `what` (e.g. "payload") broke.
    #[inline]
    pub(crate) fn check_portable(&self, what: &str) -> crate::error::Result<()> {
        fn walk(v: &Value, depth: usize) -> Result<(), &'static str> {
            match v {
                Value::Array(_) | Value::Map(_) if depth >= spindle_abi::msgpack::MAX_DEPTH => {
                    Err("is nested too deep")
                }
                Value::Array(items) => items.iter().try_for_each(|i| walk(i, depth + 1)),
                Value::Map(pairs) => pairs.iter().try_for_each(|(k, v)| {
                    if matches!(k, Value::Float(f) if f.is_nan()) {
                        return Err("has a map key that is NaN");
                    }
                    walk(k, depth + 1)?;
                    walk(v, depth + 1)
                }),
                _ => Ok(()),
            }
        }
        // Scalars, most payloads, are decided here, where this is inlined into the send.
        if !matches!(self, Value::Array(_) | Value::Map(_)) {
            return Ok(());
        }
        walk(self, 0).map_err(|rule| crate::error::Error::invalid(format!("the {what} {rule}")))
    }

    /// A map from string keys, in the order given.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (Value::Str(k.into()), v)).collect())
    }

    /// The string, if this is a UTF-8 string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float, if this is one.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value under string key `key`, if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => {
                pairs.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// `true` for [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
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

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            other => write!(f, "{other:?}"),
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
impl From<u32> for Value {
    fn from(i: u32) -> Self {
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
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        match String::from_utf8(b) {
            Ok(s) => Value::Str(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        }
    }
}
impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}
