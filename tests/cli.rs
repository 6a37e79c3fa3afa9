//! The `spindle` command end to end: `run -x` exit codes and stdio, `check`, `run` of the
//! examples, graceful stop on SIGTERM, and the command line's own errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn spindle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spindle"))
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

/// Runs `cmd` with `stdin` fed in, failing the test if it takes longer than a minute.
fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spindle starts");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("spindle did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Reads `pipe` into `seen` until `seen` contains `what`; fails the test after a minute or if
/// the output ends first.
fn read_until(pipe: &mut impl std::io::Read, seen: &mut String, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains(what) {
        assert!(Instant::now() < deadline, "no {what:?} in: {seen}");
        let mut buf = [0u8; 256];
        let n = pipe.read(&mut buf).unwrap();
        assert!(n > 0, "the output ended without {what:?}: {seen}");
        seen.push_str(&text(&buf[..n]));
    }
}

/// A temporary app folder, removed when dropped.
struct TempApp(PathBuf);

impl TempApp {
    fn new(files: &[(&str, &str)]) -> TempApp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spindle-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, body) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        TempApp(dir)
    }
}

impl Drop for TempApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const TERMINAL_APP: &str = r#"
namespace = "t"

[[entries]]
name = "procs"
kind = "process.host"
workers = 1

[[entries]]
name = "locked"
kind = "process.host"
workers = 1
modules = ["json"]

[[entries]]
name = "main"
kind = "process.lua"
source = "file://main.lua"

[[entries]]
name = "fail"
kind = "process.lua"
source = "file://main.lua"
method = "fail"

[[entries]]
name = "probe"
kind = "process.lua"
source = "file://main.lua"
method = "probe"
modules = ["io", "time", "json"]

[[entries]]
name = "probe_time"
kind = "process.lua"
source = "file://main.lua"
method = "probe"
modules = ["time"]

[[entries]]
name = "noisy"
kind = "process.lua"
source = "file://main.lua"
method = "noisy"

[[entries]]
name = "noisy.service"
kind = "process.service"
process = "noisy"
lifecycle = { auto_start = true }
"#;

const TERMINAL_MAIN: &str = r#"
local function main(...)
    local io = require("io")
    local args = { ... }
    io.write("args:", table.concat(args, ","), ";io.args:", table.concat(io.args(), ","), "\n")
    local line = io.readline()
    while line do
        io.write("echo:", line, "\n")
        line = io.readline()
    end
    io.ewrite("to stderr\n")
    -- Off the terminal host `io` is denied; a host's module list bounds the rest.
    io.write("procs:", process.exec("t:probe", "t:procs"), "\n")
    io.write("locked:", process.exec("t:probe", "t:locked"), "\n")
    -- An entry's own list narrows what the host grants.
    io.write("entry:", process.exec("t:probe_time", "t:procs"), "\n")
    return "ok"
end

local function probe()
    local out = {}
    for _, m in ipairs({ "io", "time", "json" }) do
        local ok, err = pcall(require, m)
        out[#out + 1] = m .. "=" .. (ok and "ok" or err:kind())
    end
    return table.concat(out, " ")
end

local function fail(code)
    require("io").write("about to fail\n")
    error("failed with " .. tostring(code))
end

-- An auto-start service: `run -x` runs one process and prints nothing else, so never this.
local function noisy()
    print("the noisy service ran")
end

return { main = main, fail = fail, probe = probe, noisy = noisy }
"#;

#[test]
fn run_x_gives_the_process_the_terminal_and_its_args() {
    let app = TempApp::new(&[("_index.toml", TERMINAL_APP), ("main.lua", TERMINAL_MAIN)]);
    let out = run(
        spindle().args(["run", "-x", "t:main"]).arg(&app.0).args(["--", "a b", "c"]),
        "one\ntwo\n",
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "args:a b,c;io.args:a b,c\necho:one\necho:two\n\
         procs:io=PERMISSION_DENIED time=ok json=ok\n\
         locked:io=PERMISSION_DENIED time=PERMISSION_DENIED json=ok\n\
         entry:io=PERMISSION_DENIED time=ok json=PERMISSION_DENIED\n"
    );
    // Nothing but what the process wrote: no logs.
    assert_eq!(text(&out.stderr), "to stderr\n");
}

#[test]
fn run_x_reports_a_failure_on_stderr_with_a_nonzero_exit() {
    let app = TempApp::new(&[("_index.toml", TERMINAL_APP), ("main.lua", TERMINAL_MAIN)]);
    let out = run(spindle().args(["run", "-x", "t:fail"]).arg(&app.0).args(["--", "7"]), "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "about to fail\n");
    let err = text(&out.stderr);
    assert!(err.contains("failed with 7"), "{err}");
    // An unknown entry is an error too.
    let out = run(spindle().args(["run", "-x", "t:nothing"]).arg(&app.0), "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("t:nothing"), "{}", text(&out.stderr));
}

#[test]
fn the_cli_example_is_an_interactive_program() {
    let out = run(
        spindle().args(["run", "-x", "cli:main"]).arg(example("cli")).args(["--", "Ada"]),
        "the cat and the dog\nthe end\n:top\n:quit\n",
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("hello, Ada!"), "{stdout}");
    assert!(stdout.contains("5 words, 4 distinct so far"), "{stdout}");
    assert!(stdout.contains("7 words, 5 distinct so far"), "{stdout}");
    assert!(stdout.contains("1. the (3)\n2. and (1)\n3. cat (1)\n"), "{stdout}");
    assert!(stdout.ends_with("bye\n"), "{stdout}");
}

#[test]
fn check_accepts_the_examples_and_reports_every_problem() {
    for ex in ["hello", "upgrade", "cli"] {
        let out = run(spindle().arg("check").arg(example(ex)), "");
        assert_eq!(out.status.code(), Some(0), "{ex}: {}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("ok: "), "{}", text(&out.stdout));
    }
    let app = TempApp::new(&[
        (
            "_index.toml",
            "namespace = \"t\"\n[[entries]]\nname = \"x\"\nkind = \"process.lua\"\nsource = \"file://x.lua\"\n[[entries]]\nname = \"s\"\nkind = \"process.service\"\nprocess = \"t:y\"\n",
        ),
        ("x.lua", "return {"),
    ]);
    let out = run(spindle().arg("check").arg(&app.0), "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("_index.toml: entry `t:s`: field `process`: no entry `t:y`"), "{err}");
    // The Lua source is compiled once the entry files are right.
    std::fs::write(app.0.join("_index.toml"), "namespace = \"t\"\n[[entries]]\nname = \"x\"\nkind = \"process.lua\"\nsource = \"file://x.lua\"\n").unwrap();
    let out = run(spindle().arg("check").arg(&app.0), "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("entry `t:x`: field `source`:") && err.contains("x.lua"), "{err}");
}

/// `check` validates without running anything: a service that would start at once, whose
/// source prints and fails when it runs, changes nothing.
#[test]
fn check_runs_nothing() {
    let app = TempApp::new(&[
        (
            "_index.toml",
            "namespace = \"t\"\n[[entries]]\nname = \"x\"\nkind = \"process.lua\"\nsource = \"file://x.lua\"\nmethod = \"main\"\n[[entries]]\nname = \"s\"\nkind = \"process.service\"\nprocess = \"t:x\"\n[entries.lifecycle]\nauto_start = true\n",
        ),
        (
            "x.lua",
            "print(\"the chunk ran\")\nreturn { main = function() print(\"main ran\"); error(\"ran\") end }\n",
        ),
    ]);
    let out = run(spindle().arg("check").arg(&app.0), "");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("ok: ") && stdout.lines().count() == 1, "{stdout}");
    assert!(!text(&out.stderr).contains("ran"), "{}", text(&out.stderr));
}

/// The README's first command: the hello app runs, shows its workers, the crash and the
/// restart, and ends by itself with exit 0 once every service has ended.
#[test]
fn run_hello_shows_it_working() {
    let out = run(spindle().arg("run").arg(example("hello")), "");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "[greeter] ready as {hello:processes|",
        "[main] worker 1: 10 squared is 100 (hello, worker 1)",
        "[main] worker 3: 30 squared is 900 (hello, worker 3)",
        "[worker 2] crashing on purpose",
        "[main] worker 2 failed (",
        "[main] worker 2: 7 squared is 49 (hello, worker 2)",
        "[greeter] stopping after 4 greetings",
        "[main] done",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    let logs = text(&out.stderr);
    assert!(logs.contains("service started") && logs.contains("hello:greeter.service"), "{logs}");
}

fn live_source(version: i64) -> String {
    format!(
        r#"
local time = require("time")
local VERSION = {version}
local function main(count)
    process.set_options {{ upgradable = true }}
    local ticker = time.ticker("20ms")
    local events = process.events()
    while true do
        local r = channel.select {{ ticker:channel():case_receive(), events:case_receive() }}
        if r.channel == events then
            if r.value.kind == process.event.OUTDATED then return process.upgrade(nil, count) end
            if r.value.kind == process.event.CANCEL then return count end
        else
            count = count + 1
            print(string.format("[live v%d] tick %d", VERSION, count))
        end
    end
end
return {{ main = main }}
"#
    )
}

/// `run --watch`: an edited source reaches the running, upgradable service, which goes on
/// with its state under the new code; SIGTERM then stops the app with exit 0.
#[test]
fn run_watch_reloads_an_edited_source() {
    let app = TempApp::new(&[
        (
            "_index.toml",
            r#"
namespace = "t"
[[entries]]
name = "live"
kind = "process.lua"
source = "file://live.lua"
modules = ["time"]
[[entries]]
name = "live.service"
kind = "process.service"
process = "live"
input = [0]
lifecycle = { auto_start = true }
"#,
        ),
        ("live.lua", &live_source(1)),
    ]);
    let mut child = spindle()
        .args(["run", "--watch"])
        .arg(&app.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    read_until(&mut stdout, &mut seen, "[live v1] tick 2\n");
    std::fs::write(app.0.join("live.lua"), live_source(2)).unwrap();
    read_until(&mut stdout, &mut seen, "[live v2] tick");
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    // The count went on across the upgrade: the first v2 tick follows the last v1 tick.
    let ticks: Vec<(i64, i64)> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("[live v"))
        .filter_map(|l| l.split_once("] tick "))
        .map(|(v, n)| (v.parse().unwrap(), n.parse().unwrap()))
        .collect();
    let first_v2 = ticks.iter().position(|&(v, _)| v == 2).unwrap();
    assert_eq!(ticks[first_v2].1, ticks[first_v2 - 1].1 + 1, "{seen}");
    assert!(ticks.windows(2).all(|w| w[1].1 == w[0].1 + 1), "{seen}");
}

/// Logs follow `RUST_LOG`; `-v` asks for them whatever `RUST_LOG` says.
#[test]
fn logs_follow_rust_log_and_v() {
    let out = run(spindle().env("RUST_LOG", "off").arg("run").arg(example("hello")), "");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("[main] done"));
    assert!(!text(&out.stderr).contains("service started"), "{}", text(&out.stderr));
    let out = run(spindle().env("RUST_LOG", "off").args(["run", "-v"]).arg(example("hello")), "");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("service started"), "{}", text(&out.stderr));
}

/// `run` stops on SIGTERM and on Ctrl-C (SIGINT): services get CANCEL in reverse dependency
/// order; one that ignores it is terminated after its `stop_timeout`; exit 0.
#[test]
fn run_stops_gracefully_on_sigterm() {
    stops_gracefully_on("-TERM");
}

#[test]
fn run_stops_gracefully_on_ctrl_c() {
    stops_gracefully_on("-INT");
}

/// A second Ctrl-C while the graceful stop waits for a service that ignores CANCEL (its stop
/// timeout is a minute) ends the program at once, with exit 130 (128 + SIGINT).
#[test]
fn a_second_ctrl_c_forces_the_stop() {
    let app = TempApp::new(&[
        (
            "_index.toml",
            r#"
namespace = "t"
[[entries]]
name = "stubborn"
kind = "process.lua"
source = "file://svc.lua"
[[entries]]
name = "c"
kind = "process.service"
process = "stubborn"
lifecycle = { auto_start = true, stop_timeout = "60s" }
"#,
        ),
        (
            "svc.lua",
            r#"
return { main = function()
    print("c up")
    while true do process.events():receive() end
end }
"#,
        ),
    ]);
    let mut child = spindle()
        .arg("run")
        .arg(&app.0)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    read_until(&mut stdout, &mut String::new(), "c up");
    let interrupt = || {
        let status = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
        assert!(status.unwrap().success());
    };
    interrupt();
    read_until(&mut stderr, &mut String::new(), "stopping");
    interrupt();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
}

fn stops_gracefully_on(signal: &str) {
    let app = TempApp::new(&[
        (
            "_index.toml",
            r#"
namespace = "t"
[[entries]]
name = "svc"
kind = "process.lua"
source = "file://svc.lua"
[[entries]]
name = "a"
kind = "process.service"
process = "svc"
input = ["a"]
lifecycle = { auto_start = true }
[[entries]]
name = "b"
kind = "process.service"
process = "svc"
input = ["b"]
lifecycle = { auto_start = true, requires = ["a"] }
[[entries]]
name = "stubborn"
kind = "process.lua"
source = "file://svc.lua"
method = "stubborn"
[[entries]]
name = "c"
kind = "process.service"
process = "stubborn"
lifecycle = { auto_start = true, stop_timeout = "200ms" }
"#,
        ),
        (
            "svc.lua",
            r#"
local function main(name)
    print(name .. " up")
    local events = process.events()
    while true do
        if events:receive().kind == process.event.CANCEL then
            print(name .. " cancelled")
            return name
        end
    end
end

-- Ignores CANCEL: only terminate stops it.
local function stubborn()
    print("c up")
    while true do process.events():receive() end
end

return { main = main, stubborn = stubborn }
"#,
        ),
    ]);
    let mut child = spindle()
        .arg("run")
        .arg(&app.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Wait for both services to be up before signalling.
    let mut seen = String::new();
    for up in ["a up", "b up", "c up"] {
        read_until(&mut stdout, &mut seen, up);
    }
    let status = Command::new("kill").arg(signal).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    seen.push_str(&rest);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let b = seen.find("b cancelled").expect("b was cancelled");
    let a = seen.find("a cancelled").expect("a was cancelled");
    assert!(b < a, "b requires a, so b stops first: {seen}");
    assert!(!seen.contains("c cancelled"), "{seen}");
}

#[test]
fn bad_command_lines_exit_2_with_a_hint() {
    for args in [&["launch"][..], &["run", "--fast"], &["run", "-x"], &["check", "a", "b"]] {
        let out = run(spindle().args(args), "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("see `spindle --help`"), "{args:?}");
    }
    let out = run(spindle().arg("--help"), "");
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for word in ["run [DIR]", "run -x ID", "check [DIR]", "--watch", "RUST_LOG", "EXIT CODES"] {
        assert!(help.contains(word), "help mentions {word}");
    }
}

/// A bad app is reported before anything runs, naming file, entry and field.
#[test]
fn run_refuses_a_bad_app() {
    let app = TempApp::new(&[(
        "_index.yaml",
        "namespace: t\nentries:\n  - name: h\n    kind: process.host\n    workers: many\n",
    )]);
    let out = run(spindle().arg("run").arg(&app.0), "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("_index.yaml: entry `t:h`: field `workers`: expected an integer"),
        "{err}"
    );
}

/// Code that does not compile is reported before anything runs too (started, a service of it
/// failed at every spawn and was restarted forever).
#[test]
fn run_refuses_code_that_does_not_compile() {
    let app = TempApp::new(&[
        ("broken.lua", "return { main = function("),
        (
            "_index.toml",
            "namespace = \"t\"\n[[entries]]\nname = \"b\"\nkind = \"process.lua\"\nsource = \"file://broken.lua\"\n[[entries]]\nname = \"b.service\"\nkind = \"process.service\"\nprocess = \"b\"\nlifecycle = { auto_start = true }\n",
        ),
    ]);
    let out = run(spindle().arg("run").arg(&app.0), "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("_index.toml: entry `t:b`: field `source`"), "{err}");
}

/// Native plugins in C, Rust and Go next to a Lua process in one app (the libraries are built
/// by scripts/build-native-examples.sh, which the test command runs first).
#[test]
fn run_plugins_drives_every_native_plugin_from_lua() {
    let out = run(spindle().arg("run").arg(example("plugins")), "");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for (lang, next) in [("c", "rust"), ("rust", "go"), ("go", "c")] {
        for line in [
            format!("[tour] {lang} echoed hello, 2.5, three"),
            format!("[tour] {lang} race of two timers and a receive: timer_b won"),
            format!("[tour] {lang} waited for both timers: "),
            format!(
                "[tour] {lang} upgraded itself to {next}: same pid true, 4 requests carried over"
            ),
        ] {
            assert!(stdout.contains(&line), "missing {line:?} in:\n{stdout}");
        }
    }
    assert_eq!(stdout.matches("[tour] it stopped after 5 requests").count(), 3, "{stdout}");
    assert!(stdout.ends_with("[tour] done\n"), "{stdout}");
}

/// A service that keeps failing is restarted `max_attempts` times, then reported; with nothing
/// left to run, `run` ends with exit 1 and names it.
#[test]
fn run_reports_a_service_that_gave_up() {
    let app = TempApp::new(&[
        (
            "_index.toml",
            r#"
namespace = "t"
[[entries]]
name = "bad"
kind = "process.lua"
source = "file://bad.lua"
[[entries]]
name = "bad.service"
kind = "process.service"
process = "bad"
[entries.lifecycle]
auto_start = true
[entries.lifecycle.restart]
initial_delay = "10ms"
max_attempts = 2
"#,
        ),
        ("bad.lua", "return { main = function() print('starting'); error('broken') end }\n"),
    ]);
    let out = run(spindle().arg("run").arg(&app.0), "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "starting\nstarting\nstarting\n", "first run and two restarts");
    let err = text(&out.stderr);
    assert!(err.contains("service gave up") && err.contains("t:bad.service"), "{err}");
    assert!(err.contains("spindle: service(s) gave up: t:bad.service"), "{err}");
}
