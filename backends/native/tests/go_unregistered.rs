//! A Go plugin that never calls `spindle.Register` (`tests/plugins/go_unregistered`): each
//! process of it ends in its first step (where a native process is initialized) with the Go
//! package's own error, which its watcher sees, and the runtime carries on. In a test
//! binary of its own, because a process can hold only one Go runtime and the other tests load
//! the Go example.

use std::path::PathBuf;
use std::process::Command;

use std::time::Duration;

use spindle_native::NativeBackend;
use spindle_runtime::rust::AsyncProcess;
use spindle_runtime::{Entry, EntryId, ErrorKind, HostConfig, Runtime, Spawn, Value};

const HOST: &str = "test:main";
/// Generous: only reached when the test is already failing.
const PATIENCE: Duration = Duration::from_secs(30);

/// Builds the plugin with the example's toolchain (see `scripts/build-native-examples.sh`).
fn build() -> PathBuf {
    let status = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/build-native-examples.sh"))
        .arg("go")
        .status()
        .expect("run scripts/build-native-examples.sh");
    assert!(status.success(), "scripts/build-native-examples.sh go failed");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/go_unregistered");
    let dir = std::env::temp_dir().join(format!("spindle-go-unregistered-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("libunregistered.so");
    let status = Command::new("go")
        .args(["build", "-buildmode=c-shared", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .env("GOPROXY", "off")
        .status()
        .expect("run go build");
    assert!(status.success(), "go build in {}", src.display());
    out
}

#[test]
fn a_go_plugin_that_never_registers_fails_each_spawn_clearly() {
    let lib = build();
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(2))
        .backend(NativeBackend::new())
        .build()
        .expect("runtime starts");
    let id: EntryId = "bad:go".parse().unwrap();
    let mut e = Entry::new(id.clone(), spindle_native::KIND);
    e.fields = Value::map([("library", Value::from("file://libunregistered.so"))]);
    e.base_dir = Some(lib.parent().unwrap().to_owned());
    rt.put_entry(e);
    for _ in 0..2 {
        let (_, watch) = rt.spawn_watched(Spawn::entry(id.clone(), HOST)).expect("spawn");
        let err = watch.wait_timeout(PATIENCE).expect("ends in time").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        assert!(err.message().contains("did not call spindle.Register"), "{err}");
    }
    // The runtime carries on: a Rust process runs to its result.
    let (_, watch) = rt
        .spawn_watched(Spawn::process(AsyncProcess::new(|_| async { Ok(Value::from("ok")) }), HOST))
        .expect("spawn");
    assert_eq!(watch.wait_timeout(PATIENCE).expect("ends in time"), Ok(Value::from("ok")));
}
