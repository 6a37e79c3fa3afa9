//! [`Value`]s as MessagePack bytes: the payload format of the stable C ABI (`spindle-abi`),
//! which native and Wasm plugin processes speak.
//!
//! Every value round-trips exactly: integers stay integers, floats stay floats (written as
//! float 64), [`Value::Str`] is a MessagePack str and [`Value::Bytes`] a bin.
//!
//! ```
//! use spindle_runtime::Value;
//!
//! let v = Value::Array(vec![1.into(), 2.5.into(), "three".into(), Value::Bytes(vec![0xff])]);
//! assert_eq!(Value::from_msgpack(&v.to_msgpack()), Ok(v));
//! ```

use spindle_abi::msgpack::{DecodeError, MAX_DEPTH, Reader, Token, Writer};

use crate::error::{Error, Result};
use crate::value::Value;

impl Value {
    /// The value as MessagePack bytes.
    pub fn to_msgpack(&self) -> Vec<u8> {
        // Most payloads are small: one allocation instead of a few doublings.
        let mut out = Vec::with_capacity(32);
        self.write_msgpack(&mut out);
        out
    }

    /// Appends the value as MessagePack to `out`.
    pub fn write_msgpack(&self, out: &mut Vec<u8>) {
        write(&mut Writer(out), self);
    }

    /// The one value `bytes` hold.
    ///
    /// # Errors
    /// `INVALID` when the bytes are not exactly one MessagePack value Spindle can hold
    /// (truncated, trailing bytes, extension types, integers above `i64::MAX`, too deep).
    #[inline(always)]
    pub fn from_msgpack(bytes: &[u8]) -> Result<Value> {
        // Most payloads are one number, boolean or nil: built where the caller wants it.
        match spindle_abi::msgpack::scalar(bytes) {
            Some(Token::Nil) => Ok(Value::Nil),
            Some(Token::Bool(b)) => Ok(Value::Bool(b)),
            Some(Token::Int(i)) => Ok(Value::Int(i)),
            Some(Token::Float(x)) => Ok(Value::Float(x)),
            _ => from_msgpack_any(bytes),
        }
    }
}

/// [`Value::from_msgpack`] for any value.
#[inline(never)]
pub(crate) fn from_msgpack_any(bytes: &[u8]) -> Result<Value> {
    let mut r = Reader::new(bytes);
    let v = read(&mut r, 0).and_then(|v| r.finish().map(|()| v));
    let v = v.map_err(|e| Error::invalid(format!("payload: {e}")))?;
    // What MessagePack can say and no process can take (a NaN map key).
    v.check_portable("payload")?;
    Ok(v)
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
            // A length is a claim, not a promise: every element takes at least one byte.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_round_trips_exactly() {
        let v = Value::Map(vec![
            ("int".into(), Value::Int(-7_000_000_000)),
            ("float".into(), Value::Float(3.0)),
            ("str".into(), "héllo".into()),
            ("bytes".into(), Value::Bytes(vec![0, 0xfe, 0xff])),
            ("utf8 bytes".into(), Value::Bytes(b"abc".to_vec())),
            (Value::Int(1), Value::Array(vec![Value::Nil, true.into(), Value::Array(vec![])])),
            ("max".into(), Value::Int(i64::MAX)),
            ("min".into(), Value::Int(i64::MIN)),
        ]);
        assert_eq!(Value::from_msgpack(&v.to_msgpack()), Ok(v));
    }

    /// A payload that is one scalar takes the short path: the same values as the general one.
    #[test]
    fn scalars_round_trip_exactly() {
        let ints = [0, 1, 127, 128, 255, 256, 65_535, 65_536, -1, -32, -33, -129, -32_769];
        let mut values: Vec<Value> = ints.into_iter().map(Value::Int).collect();
        values.extend([i64::MIN, i64::MAX, u32::MAX.into(), i32::MIN.into()].map(Value::Int));
        values.extend([Value::Nil, true.into(), false.into(), Value::Float(-0.5)]);
        values.push(Value::Float(f64::MAX));
        for v in values {
            assert_eq!(Value::from_msgpack(&v.to_msgpack()), Ok(v.clone()), "{v:?}");
        }
        // A float 32 widens; an unsigned 64-bit integer above i64::MAX is no value.
        assert_eq!(Value::from_msgpack(&[0xca, 0x3f, 0xc0, 0, 0]), Ok(Value::Float(1.5)));
        assert!(Value::from_msgpack(&[0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn malformed_payloads_are_invalid() {
        for bad in [&[][..], &[0x92, 0x01], &[0xc0, 0xc0], &[0xd4, 0, 0]] {
            let err = Value::from_msgpack(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Invalid, "{bad:?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n(0x91, 10_000).chain([0xc0]).collect();
        assert!(Value::from_msgpack(&deep).unwrap_err().message().contains("deep"));
        // A huge claimed length does not allocate up front.
        assert!(Value::from_msgpack(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        // A map key that is NaN: MessagePack can say it, no Lua table can hold it.
        let nan_key = Value::Map(vec![(Value::Float(f64::NAN), Value::Int(1))]).to_msgpack();
        let err = Value::from_msgpack(&nan_key).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Invalid);
        assert!(err.message().contains("NaN"), "{err}");
    }
}
