//! Lua processes and native plugins in one runtime: messages both ways (values exactly),
//! monitors and links in both directions. The Lua side is `lua/driver.lua`.

use std::path::Path;

use spindle_lua::LuaBackend;
use spindle_native::NativeBackend;
use spindle_runtime::{Entry, HostConfig, Runtime, Spawn, Value};

use crate::common::*;

fn lua_entry(entry: &str, method: &str) -> Entry {
    let mut e = Entry::new(id(entry), "process.lua");
    e.fields =
        Value::map([("source", Value::from("file://driver.lua")), ("method", Value::from(method))]);
    e.base_dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/all/lua"));
    e
}

#[test]
fn lua_and_native_processes_talk_monitor_and_link() {
    build_examples();
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(2))
        .backend(NativeBackend::new())
        .backend(LuaBackend::default())
        .build()
        .unwrap();
    for (lang, entry) in LANGS {
        let dir = root().join(format!("examples/native-{lang}"));
        rt.put_entry(native_entry(entry, &dir, &format!("libservice_{lang}.so")));
    }
    rt.put_entry(lua_entry("test:driver", "main"));
    rt.put_entry(lua_entry("test:driver.waiter", "waiter"));
    for (lang, entry) in LANGS {
        let (_, watch) = rt
            .spawn_watched(Spawn::entry(id("test:driver"), HOST).args(vec![Value::from(entry)]))
            .unwrap();
        let r = watch.wait_timeout(PATIENCE).expect("the Lua driver finished");
        assert_eq!(r, Ok(Value::from("ok")), "{lang}");
    }
}

/// A Lua process in islands mode cannot continue as a native plugin (an upgrade keeps a
/// process where it runs, and a plugin runs outside every island): it ends with UNAVAILABLE
/// saying so.
#[test]
fn a_lua_process_in_an_island_cannot_upgrade_into_a_plugin() {
    build_examples();
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(1))
        .backend(NativeBackend::new())
        .backend(LuaBackend::default())
        .build()
        .unwrap();
    let dir = root().join("examples/native-c");
    rt.put_entry(native_entry("native:service.c", &dir, "libservice_c.so"));
    rt.put_entry(lua_entry("test:driver.become", "become"));
    let (_, watch) = rt
        .spawn_watched(
            Spawn::entry(id("test:driver.become"), HOST)
                .args(vec![Value::from("native:service.c")]),
        )
        .unwrap();
    let err = watch.wait_timeout(PATIENCE).expect("it ended").unwrap_err();
    assert_eq!(err.kind(), spindle_runtime::ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("another isolation group"), "{err}");
}
