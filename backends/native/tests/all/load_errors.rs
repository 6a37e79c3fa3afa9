//! Libraries that are not plugins for this runtime fail to load with their own clear error.

use std::path::Path;

use spindle_runtime::{Entry, ErrorKind, Spawn, Value};

use crate::common::*;

fn spawn_error(lib: &Path) -> spindle_runtime::Error {
    let rt = runtime();
    let dir = lib.parent().unwrap();
    let name = lib.file_name().unwrap().to_str().unwrap();
    rt.put_entry(native_entry("bad:plugin", dir, name));
    rt.spawn(Spawn::entry(id("bad:plugin"), HOST)).unwrap_err()
}

#[test]
fn a_library_without_the_symbol_is_refused() {
    let lib = compile("no_symbol");
    let err = spawn_error(&lib);
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let msg = err.message();
    assert!(msg.contains("bad:plugin"), "names the entry: {msg}");
    assert!(msg.contains(lib.to_str().unwrap()), "names the file: {msg}");
    assert!(msg.contains("does not export the symbol `spindle_plugin_entry`"), "{msg}");
}

#[test]
fn a_library_for_another_abi_version_is_refused() {
    let lib = compile("wrong_version");
    let err = spawn_error(&lib);
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let msg = err.message();
    assert!(msg.contains("bad:plugin"), "names the entry: {msg}");
    assert!(msg.contains(lib.to_str().unwrap()), "names the file: {msg}");
    assert!(msg.contains("ABI version 99") && msg.contains("ABI version 1"), "{msg}");
}

#[test]
fn a_plugin_without_a_table_or_with_a_short_one_is_refused() {
    let lib = compile("null_table");
    let err = spawn_error(&lib);
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let msg = err.message();
    assert!(msg.contains(lib.to_str().unwrap()), "names the file: {msg}");
    assert!(msg.contains("`spindle_plugin_entry()` returned NULL"), "{msg}");

    let lib = compile("small_table");
    let err = spawn_error(&lib);
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let msg = err.message();
    assert!(msg.contains(lib.to_str().unwrap()), "names the file: {msg}");
    assert!(msg.contains("table is 16 bytes") && msg.contains("needs at least 32"), "{msg}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let dir = std::env::temp_dir().join(format!("spindle-native-notlib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("libtext.so");
    std::fs::write(&file, "not a shared library\n").unwrap();
    let err = spawn_error(&file);
    assert_eq!(err.kind(), ErrorKind::Invalid, "it exists, so it is not NOT_FOUND: {err}");
    assert!(err.message().contains(file.to_str().unwrap()), "names the file: {err}");
}

#[test]
fn a_missing_library_and_bad_fields_are_refused() {
    let err = spawn_error(Path::new("/nonexistent/libnothing.so"));
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("/nonexistent/libnothing.so"), "{err}");

    let rt = runtime();
    let mut e = Entry::new(id("bad:fields"), spindle_native::KIND);
    e.fields = Value::map([("library", Value::from("libx.so")), ("lib", Value::Nil)]);
    rt.put_entry(e.clone());
    let err = rt.spawn(Spawn::entry(id("bad:fields"), HOST)).unwrap_err();
    assert!(err.message().contains("unknown field `lib`"), "{err}");
    e.fields = Value::map([("library", Value::from("libx.so"))]);
    rt.put_entry(e);
    let err = rt.spawn(Spawn::entry(id("bad:fields"), HOST)).unwrap_err();
    assert!(err.message().contains("file://"), "{err}");
}
