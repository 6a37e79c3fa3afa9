//! Command-line parsing and the three commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use spindle_app::services::ServiceState;
use spindle_app::watch::Watcher;
use spindle_app::{App, Options, config};
use spindle_runtime::EntryId;

const HELP: &str = "\
spindle — run isolated lightweight processes (Lua, native plugins) as an app

An app is a folder of entry files (_index.toml or _index.yaml, in the folder and below) that
declare processes, hosts, services and policies. See examples/hello for one.

USAGE:
    spindle run [DIR] [--watch]               start the app in DIR (default: .)
    spindle run -x ID [DIR] [-- ARGS...]      run one process on the terminal
    spindle check [DIR]                       validate the app without running it
    spindle --help | --version

run
    Starts the app's hosts and its services with `auto_start = true` (and the services they
    require), restarts failed services by their restart policy, and runs until Ctrl-C or
    SIGTERM, then stops the services gracefully (CANCEL, `stop_timeout`, terminate) in
    reverse dependency order and exits 0; a second Ctrl-C or SIGTERM meanwhile ends it at
    once (exit 130 or 143). It also ends, by itself, once every service has ended and no
    process is left (exit 0, or 1 if a service gave up).

    --watch       reload changed entry files and sources while running; processes that set
                  `upgradable = true` get an OUTDATED event and may call process.upgrade(nil)

run -x ID
    Runs process entry ID (namespace:name) on the terminal host with stdin/stdout/stderr and
    the ARGS after `--` (as its method's string arguments and through io.args()). Prints
    nothing of its own: exits 0 when the process succeeds, else prints its error on stderr
    and exits 1.

    --host ID     the terminal.host entry to use when the app declares several

check
    Loads every entry file, checks every field and reference, compiles every Lua source and
    loads every native library. Prints each problem with its file, entry and field; exits 1
    if there is any.

LOGS
    -v, -vv, -vvv   more log output on stderr (info, debug, trace); `run` logs info by default
    RUST_LOG        a tracing filter, e.g. RUST_LOG=spindle_app=debug

EXIT CODES
    0 success · 1 the app or the process failed · 2 bad command line
";

#[derive(Debug, Default, PartialEq)]
pub struct Args {
    pub command: Command,
    pub dir: PathBuf,
    pub exec: Option<String>,
    pub host: Option<String>,
    pub watch: bool,
    pub verbose: u8,
    pub rest: Vec<String>,
}

#[derive(Debug, Default, PartialEq)]
pub enum Command {
    #[default]
    Help,
    Version,
    Run,
    Check,
}

/// Parses the command line (without the program name).
pub fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut out = Args { dir: PathBuf::from("."), ..Args::default() };
    let mut it = args.into_iter();
    let mut dir = None;
    match it.next().as_deref() {
        None | Some("-h" | "--help" | "help") => return Ok(out),
        Some("-V" | "--version" | "version") => {
            out.command = Command::Version;
            return Ok(out);
        }
        Some("run") => out.command = Command::Run,
        Some("check") => out.command = Command::Check,
        Some(other) => return Err(format!("unknown command `{other}`")),
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--" => {
                out.rest = it.by_ref().collect();
                break;
            }
            "-h" | "--help" => {
                out.command = Command::Help;
                return Ok(out);
            }
            "-x" | "--exec" => {
                out.exec = Some(it.next().ok_or("-x needs an entry id (namespace:name)")?);
            }
            "--host" => out.host = Some(it.next().ok_or("--host needs a terminal.host id")?),
            "-w" | "--watch" => out.watch = true,
            v if v.starts_with("-v") && v[1..].chars().all(|c| c == 'v') => {
                out.verbose += (v.len() - 1) as u8;
            }
            "--verbose" => out.verbose += 1,
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            path => {
                if dir.replace(PathBuf::from(path)).is_some() {
                    return Err(format!("more than one folder given (`{path}`)"));
                }
            }
        }
    }
    if let Some(d) = dir {
        out.dir = d;
    }
    if out.command == Command::Check && (out.exec.is_some() || out.watch || !out.rest.is_empty()) {
        return Err("check takes only a folder".into());
    }
    if out.exec.is_none() && (out.host.is_some() || !out.rest.is_empty()) {
        return Err("--host and `-- ARGS` go with run -x ID".into());
    }
    Ok(out)
}

pub fn main(argv: Vec<String>) -> ExitCode {
    let args = match parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("spindle: {e} (see `spindle --help`)");
            return ExitCode::from(2);
        }
    };
    match args.command {
        Command::Help => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("spindle {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check => {
            init_logs(args.verbose, "warn");
            check(&args)
        }
        Command::Run if args.exec.is_some() => {
            init_logs(args.verbose, "off");
            exec(&args)
        }
        Command::Run => {
            init_logs(args.verbose, "info");
            run(&args)
        }
    }
}

fn init_logs(verbose: u8, default: &str) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => default,
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() && verbose == 0 => EnvFilter::new(f),
        _ => EnvFilter::new(level),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn check(args: &Args) -> ExitCode {
    match spindle_app::check(&args.dir) {
        Ok(config) => {
            let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
            for e in config.entries.values() {
                *kinds.entry(e.kind.as_str()).or_default() += 1;
            }
            let summary: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            println!(
                "ok: {} entries in {} files ({})",
                config.entries.len(),
                config.index_files.len(),
                summary.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} problem(s) found", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn load(args: &Args) -> Option<config::AppConfig> {
    match config::load(&args.dir) {
        Ok(c) => Some(c),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

fn exec(args: &Args) -> ExitCode {
    let Some(config) = load(args) else { return ExitCode::FAILURE };
    let id = match args.exec.as_deref().unwrap_or_default().parse::<EntryId>() {
        Ok(id) => id,
        Err(e) => {
            eprintln!("spindle: {e}");
            return ExitCode::from(2);
        }
    };
    let host = match args.host.as_deref().map(str::parse::<EntryId>).transpose() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("spindle: {e}");
            return ExitCode::from(2);
        }
    };
    let options =
        Options { terminal_args: args.rest.clone(), terminal_host: host, ..Options::default() };
    let app = match App::new(config, options) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("spindle: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = app.exec_terminal(&id, &args.rest);
    app.shutdown();
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> ExitCode {
    let Some(config) = load(args) else { return ExitCode::FAILURE };
    // Code that does not compile stops the app before it starts (started, its services
    // failed at every spawn, restarting forever by default).
    if let Err(errors) = spindle_app::compile(&config) {
        eprintln!("{errors}");
        return ExitCode::FAILURE;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal starts the graceful stop; a second one, while it waits out the
        // services' stop timeouts, ends the program at once (exit 128 + the signal).
        let registered =
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, stop.clone())
                .and_then(|_| signal_hook::flag::register(sig, stop.clone()));
        if let Err(e) = registered {
            eprintln!("spindle: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let app = match App::new(config, Options::default()) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("spindle: {e}");
            return ExitCode::FAILURE;
        }
    };
    let services = match app.start_services() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("spindle: starting services: {e}");
            return ExitCode::FAILURE;
        }
    };
    let n = app.config().services().count();
    tracing::info!(dir = %args.dir.display(), services = n, "app started");
    let _watcher =
        args.watch.then(|| Watcher::start(app.clone(), Duration::from_millis(250), |_| {}));
    let mut ended_by_itself = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if !args.watch && app_is_done(&app, &services) {
            ended_by_itself = true;
            break;
        }
    }
    let failed: Vec<String> = app
        .config()
        .services()
        .filter(|(id, _)| services.status(id).is_some_and(|s| s.state == ServiceState::Failed))
        .map(|(id, _)| id.to_string())
        .collect();
    if ended_by_itself {
        tracing::info!("every service has ended and no process is left");
    } else {
        tracing::info!("stopping");
    }
    app.shutdown();
    if ended_by_itself && !failed.is_empty() {
        eprintln!("spindle: service(s) gave up: {}", failed.join(", "));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// No service runs or waits for a restart, and no process but the supervisor is alive.
fn app_is_done(app: &App, services: &spindle_app::services::Services) -> bool {
    let config = app.config();
    let busy = config.services().any(|(id, _)| {
        services.status(id).is_some_and(|s| {
            matches!(
                s.state,
                ServiceState::Running | ServiceState::Restarting | ServiceState::Stopping
            )
        })
    });
    let any_started =
        config.services().any(|(id, _)| services.status(id).is_some_and(|s| s.starts > 0));
    !busy && any_started && app.runtime().process_count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parses_the_commands() {
        assert_eq!(p(&[]).unwrap().command, Command::Help);
        assert_eq!(p(&["--version"]).unwrap().command, Command::Version);
        let a = p(&["run", "examples/hello", "--watch", "-vv"]).unwrap();
        assert_eq!(a.command, Command::Run);
        assert_eq!(a.dir, PathBuf::from("examples/hello"));
        assert!(a.watch);
        assert_eq!(a.verbose, 2);
        let a = p(&["run", "-x", "app:main", "dir", "--", "a", "-x", "--watch"]).unwrap();
        assert_eq!(a.exec.as_deref(), Some("app:main"));
        assert_eq!(a.dir, PathBuf::from("dir"));
        assert_eq!(a.rest, vec!["a", "-x", "--watch"]);
        assert_eq!(p(&["check"]).unwrap().dir, PathBuf::from("."));
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        assert!(p(&["launch"]).unwrap_err().contains("unknown command"));
        assert!(p(&["run", "--fast"]).unwrap_err().contains("unknown option"));
        assert!(p(&["run", "a", "b"]).unwrap_err().contains("more than one folder"));
        assert!(p(&["run", "-x"]).unwrap_err().contains("entry id"));
        assert!(p(&["check", "--watch"]).is_err());
        assert!(p(&["run", "--", "x"]).is_err());
    }
}
