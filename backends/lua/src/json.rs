//! `require("json")`: `json.encode(value)` → text, `json.decode(text)` → value.
//!
//! Arrays and maps as in payloads (a table with keys 1..n is an array; an empty table is an
//! array); integers stay integers, floats keep a decimal point or exponent. Map keys must be
//! strings. Failures return `nil, err`.

use std::fmt::Write as _;

use mlua::{Lua, MultiValue, Table, Value as LuaValue};
use spindle_runtime::{Error, ErrorKind, Value};

use crate::convert::{to_lua, to_value};

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Invalid, msg)
}

/// JSON text of `v`.
pub(crate) fn encode(v: &Value) -> Result<String, Error> {
    let mut out = String::new();
    write_value(&mut out, v)?;
    Ok(out)
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_value(out: &mut String, v: &Value) -> Result<(), Error> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(invalid("json.encode: NaN and infinities have no JSON form"));
            }
            let s = format!("{f:?}");
            out.push_str(&s);
        }
        Value::Str(s) => write_str(out, s),
        Value::Bytes(_) => return Err(invalid("json.encode: strings must be valid UTF-8")),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Map(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let Value::Str(k) = k else {
                    return Err(invalid("json.encode: object keys must be strings"));
                };
                write_str(out, k);
                out.push(':');
                write_value(out, v)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// The value of JSON text `s`.
pub(crate) fn decode(s: &str) -> Result<Value, Error> {
    let mut p = Parser { s: s.as_bytes(), i: 0, depth: 0 };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> Error {
        invalid(format!("json.decode: {what} at byte {}", self.i))
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<(), Error> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(self.err("unexpected character"))
        }
    }

    fn value(&mut self) -> Result<Value, Error> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else { return Err(self.err("unexpected end")) };
        match c {
            b'n' => self.eat("null").map(|()| Value::Nil),
            b't' => self.eat("true").map(|()| Value::Bool(true)),
            b'f' => self.eat("false").map(|()| Value::Bool(false)),
            b'"' => self.string().map(Value::Str),
            b'[' => {
                self.nest()?;
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(self.err("expected , or ]")),
                        }
                    }
                }
                self.depth -= 1;
                Ok(Value::Array(items))
            }
            b'{' => {
                self.nest()?;
                self.i += 1;
                let mut pairs = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        if self.s.get(self.i) != Some(&b'"') {
                            return Err(self.err("expected a string key"));
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.s.get(self.i) != Some(&b':') {
                            return Err(self.err("expected :"));
                        }
                        self.i += 1;
                        pairs.push((Value::Str(k), self.value()?));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(self.err("expected , or }")),
                        }
                    }
                }
                self.depth -= 1;
                Ok(Value::Map(pairs))
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.err("unexpected character")),
        }
    }

    fn nest(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > 128 { Err(self.err("nesting deeper than 128")) } else { Ok(()) }
    }

    fn number(&mut self) -> Result<Value, Error> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        {
            self.i += 1;
        }
        let text =
            std::str::from_utf8(&self.s[start..self.i]).map_err(|_| self.err("bad number"))?;
        if !text.contains(['.', 'e', 'E'])
            && let Ok(i) = text.parse::<i64>()
        {
            return Ok(Value::Int(i));
        }
        text.parse::<f64>().map(Value::Float).map_err(|_| self.err("bad number"))
    }

    fn string(&mut self) -> Result<String, Error> {
        self.i += 1; // the opening quote
        let mut out = String::new();
        loop {
            let Some(&c) = self.s.get(self.i) else { return Err(self.err("unterminated string")) };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                self.eat("\\u")?;
                                let lo = self.hex4()?;
                                cp = 0x10000
                                    + ((cp - 0xD800) << 10)
                                    + (lo.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            out.push(char::from_u32(cp).ok_or_else(|| self.err("bad \\u escape"))?);
                        }
                        _ => return Err(self.err("bad escape")),
                    }
                }
                _ => {
                    // Copy one UTF-8 sequence.
                    let start = self.i - 1;
                    let len = match c {
                        0x00..=0x7F => 1,
                        0xC0..=0xDF => 2,
                        0xE0..=0xEF => 3,
                        _ => 4,
                    };
                    let end = (start + len).min(self.s.len());
                    let s = std::str::from_utf8(&self.s[start..end])
                        .map_err(|_| self.err("invalid UTF-8"))?;
                    out.push_str(s);
                    self.i = end;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let h = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err("short \\u escape"))?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).unwrap_or("x"), 16)
            .map_err(|_| self.err("bad \\u escape"))
    }
}

fn fail(lua: &Lua, e: &Error) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_vec(vec![
        LuaValue::Nil,
        mlua::IntoLua::into_lua(e.kind().name(), lua)?,
        mlua::IntoLua::into_lua(e.message(), lua)?,
    ]))
}

/// The raw `json` functions (`encode`, `decode`), returning `v` or `nil, kind, message`.
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|lua, v: LuaValue| match to_value(&v).and_then(|v| encode(&v)) {
            Ok(s) => Ok(MultiValue::from_vec(vec![mlua::IntoLua::into_lua(s, lua)?])),
            Err(e) => fail(lua, &e),
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            let text = match s.to_str() {
                Ok(t) => t.to_owned(),
                Err(_) => return fail(lua, &invalid("json.decode: text is not UTF-8")),
            };
            match decode(&text) {
                Ok(v) => Ok(MultiValue::from_vec(vec![to_lua(lua, &v)?])),
                Err(e) => fail(lua, &e),
            }
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in
            ["null", "true", "[]", "{}", "[1,2.5,-3,1e+20]", r#"{"a":[1,{"b":"c\n\u00e9"}]}"#]
        {
            let v = decode(text).unwrap();
            assert_eq!(decode(&encode(&v).unwrap()).unwrap(), v, "{text}");
        }
        assert_eq!(decode("7").unwrap(), Value::Int(7));
        assert_eq!(decode("7.0").unwrap(), Value::Float(7.0));
        assert_eq!(decode(r#""\ud83d\ude00""#).unwrap(), Value::from("😀"));
        assert!(decode("[1,").is_err());
        assert!(decode("{1:2}").is_err());
        assert!(encode(&Value::Map(vec![(Value::Int(1), Value::Nil)])).is_err());
    }
}
