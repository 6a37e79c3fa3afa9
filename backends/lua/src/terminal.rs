//! The terminal: `print`, and the `io` module of processes on a terminal host (`readline`,
//! `write`, `ewrite`, `args`).
//!
//! Output goes through Rust's standard streams (line by line, never interleaved mid-line with
//! the runtime's own logs). Reading a line must not block a worker: `readline` starts an
//! external operation whose completer goes to one reader thread, started on first use.

use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

use mlua::{Lua, MultiValue, Table, Value as LuaValue};
use spindle_runtime::{Completer, Error, ErrorKind, Value};

use crate::api::cx;

/// Concatenates Lua values as `print` and `io.write` do (`tostring` of each).
fn text(lua: &Lua, args: &MultiValue, sep: &str) -> mlua::Result<Vec<u8>> {
    let tostring: mlua::Function = lua.globals().get("tostring")?;
    let mut out = Vec::new();
    for (i, v) in args.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep.as_bytes());
        }
        match v {
            LuaValue::String(s) => out.extend_from_slice(&s.as_bytes()),
            other => {
                let s: mlua::LuaString = tostring.call(other.clone())?;
                out.extend_from_slice(&s.as_bytes());
            }
        }
    }
    Ok(out)
}

/// Writes `bytes` and flushes: a line is out before the call returns.
fn put(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

/// `print(...)`: tab-separated, one line on stdout.
pub(crate) fn print(lua: &Lua) -> mlua::Result<mlua::Function> {
    lua.create_function(|lua, args: MultiValue| {
        let mut line = text(lua, &args, "\t")?;
        line.push(b'\n');
        let _ = put(&mut std::io::stdout().lock(), &line);
        Ok(())
    })
}

fn terminal_only(lua: &Lua) -> mlua::Result<Result<spindle_runtime::Cx, Error>> {
    let cx = cx(lua)?;
    Ok(if cx.host_config().terminal.is_some() {
        Ok(cx)
    } else {
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("host {} is not a terminal host", cx.host()),
        ))
    })
}

fn denied(lua: &Lua, e: &Error) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_vec(vec![
        LuaValue::Nil,
        mlua::IntoLua::into_lua(e.kind().name(), lua)?,
        mlua::IntoLua::into_lua(e.message(), lua)?,
    ]))
}

/// The one thread that reads stdin, a line per request.
fn reader() -> &'static Mutex<Sender<Completer>> {
    static READER: std::sync::OnceLock<Mutex<Sender<Completer>>> = std::sync::OnceLock::new();
    READER.get_or_init(|| {
        let (tx, rx) = channel::<Completer>();
        std::thread::Builder::new()
            .name("spindle:stdin".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                for done in rx {
                    let mut line = String::new();
                    let r = match stdin.lock().read_line(&mut line) {
                        Ok(0) => Ok(Value::Nil),
                        Ok(_) => {
                            if line.ends_with('\n') {
                                line.pop();
                                if line.ends_with('\r') {
                                    line.pop();
                                }
                            }
                            Ok(Value::from(line))
                        }
                        Err(e) => Err(Error::new(ErrorKind::Unavailable, format!("stdin: {e}"))),
                    };
                    done.complete(r);
                }
            })
            .expect("spawning the stdin reader");
        Mutex::new(tx)
    })
}

/// Adds the terminal primitives to `RT`; each fails with `PERMISSION_DENIED` off a terminal
/// host.
pub(crate) fn register(lua: &Lua, rt: &Table) -> mlua::Result<()> {
    let write = |err: bool| {
        move |lua: &Lua, args: MultiValue| {
            if let Err(e) = terminal_only(lua)? {
                return denied(lua, &e);
            }
            let bytes = text(lua, &args, "")?;
            let r = if err {
                put(&mut std::io::stderr().lock(), &bytes)
            } else {
                put(&mut std::io::stdout().lock(), &bytes)
            };
            match r {
                Ok(()) => Ok(MultiValue::from_vec(vec![LuaValue::Boolean(true)])),
                Err(e) => denied(lua, &Error::new(ErrorKind::Unavailable, e.to_string())),
            }
        }
    };
    rt.set("io_write", lua.create_function(write(false))?)?;
    rt.set("io_ewrite", lua.create_function(write(true))?)?;
    rt.set(
        "io_args",
        lua.create_function(|lua, ()| {
            let cx = match terminal_only(lua)? {
                Ok(cx) => cx,
                Err(e) => return denied(lua, &e),
            };
            let args = cx.host_config().terminal.clone().unwrap_or_default();
            let t = lua.create_sequence_from(args)?;
            Ok(MultiValue::from_vec(vec![LuaValue::Table(t)]))
        })?,
    )?;
    rt.set(
        "start_readline",
        lua.create_function(|lua, ()| {
            let cx = match terminal_only(lua)? {
                Ok(cx) => cx,
                Err(e) => return denied(lua, &e),
            };
            let (tag, done) = cx.start_external();
            // A send fails only if the reader thread is gone; the completer then reports it.
            let _ = reader().lock().unwrap_or_else(|e| e.into_inner()).send(done);
            Ok(MultiValue::from_vec(vec![LuaValue::Integer(tag.get() as i64)]))
        })?,
    )?;
    Ok(())
}
