//! What the tests share: building the plugins, a runtime with the native backend, entries.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use spindle_native::NativeBackend;
use spindle_runtime::rust::AsyncProcess;
use spindle_runtime::{
    Cx, Entry, EntryId, HostConfig, Message, Pid, Result, Runtime, Spawn, Value,
};

pub const HOST: &str = "test:main";
/// Generous: only reached when a test is already failing.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The example plugins: (language, entry id).
pub const LANGS: [(&str, &str); 3] =
    [("c", "native:service.c"), ("rust", "native:service.rust"), ("go", "native:service.go")];

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the example plugins once per test run.
pub fn build_examples() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("scripts/build-native-examples.sh"))
            .status()
            .expect("run scripts/build-native-examples.sh");
        assert!(status.success(), "scripts/build-native-examples.sh failed");
    });
}

/// Compiles `tests/plugins/<name>.c` (with the ABI's headers) into a shared library in a
/// temporary folder.
pub fn compile(name: &str) -> PathBuf {
    compile_as(name, name)
}

/// [`compile`] into `lib<library>.so`: a library of its own (its own static data) for a test
/// that must not share one with another test running at the same time. Each library is built
/// once per test run.
pub fn compile_as(name: &str, library: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(out) = built.get(library) {
        return out.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/plugins/{name}.c"));
    let dir = std::env::temp_dir().join(format!("spindle-native-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("lib{library}.so"));
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-Wall", "-Werror", "-I"])
        .arg(root().join("abi/include"))
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling {}", src.display());
    built.insert(library.to_owned(), out.clone());
    out
}

pub fn id(s: &str) -> EntryId {
    s.parse().unwrap()
}

/// A `process.native` entry for `library`, relative to `dir`.
pub fn native_entry(entry: &str, dir: &Path, library: &str) -> Entry {
    let mut e = Entry::new(id(entry), spindle_native::KIND);
    e.fields = Value::map([("library", Value::from(format!("file://{library}")))]);
    e.base_dir = Some(dir.to_owned());
    e
}

/// A runtime with the native backend and an entry per example plugin.
pub fn runtime() -> Runtime {
    build_examples();
    let rt = Runtime::builder()
        .host(HostConfig::new(HOST).workers(2))
        .backend(NativeBackend::new())
        .build()
        .expect("runtime starts");
    for (lang, entry) in LANGS {
        let dir = root().join(format!("examples/native-{lang}"));
        rt.put_entry(native_entry(entry, &dir, &format!("libservice_{lang}.so")));
    }
    rt
}

/// Runs `f` as a Rust process and returns its result.
pub fn exec<F, Fut>(rt: &Runtime, f: F) -> Result<Value>
where
    F: FnOnce(Cx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    let (_, watch) = rt.spawn_watched(Spawn::process(AsyncProcess::new(f), HOST)).expect("spawn");
    watch.wait_timeout(PATIENCE).expect("process did not finish in time")
}

/// A Rust process on the test host.
pub fn proc<F, Fut>(f: F) -> Spawn
where
    F: FnOnce(Cx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    Spawn::process(AsyncProcess::new(f), HOST)
}

/// The next message of `topic` (others are a test failure).
pub async fn expect(cx: &Cx, topic: &str) -> Message {
    let m = cx.recv().await;
    assert_eq!(m.topic, topic, "expected `{topic}`, got {m:?}");
    m
}

/// A pid as the plugins take it: its serial, as an integer.
pub fn serial(p: Pid) -> Value {
    Value::Int(p.serial() as i64)
}
