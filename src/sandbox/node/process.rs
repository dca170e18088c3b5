//! Starting, signalling and reaping one container's process, and keeping its output in the
//! container log file (CRI format: `TIMESTAMP STREAM F LINE`, as the kubelet keeps it).
//! It must not decide anything about Pods (restarts, status): [`super::pod`] does.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use nix::libc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;

use super::supervise;

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The program: a path, or a name looked up on the container's `PATH`.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The whole environment (nothing is inherited from the sandbox).
    pub env: Vec<(String, String)>,
    /// The working directory (exists).
    pub cwd: PathBuf,
    /// The user and group to run as; `None`: the sandbox's.
    pub uid: Option<u32>,
    /// See `uid`.
    pub gid: Option<u32>,
    /// The container log file, appended to.
    pub log: PathBuf,
}

/// Why a container could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program is not there or cannot be executed (the container runtime's wording).
    #[error(
        "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: {program:?}: {why}: unknown"
    )]
    NotFound {
        /// The program as given.
        program: String,
        /// Why.
        why: String,
    },
    /// The process could not be spawned.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The log file could not be opened.
    #[error("cannot open the container log {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Find `program` as `execve` would after a `PATH` lookup in `env`.
pub fn resolve(program: &str, env: &[(String, String)]) -> Result<PathBuf, ProcessError> {
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        if !p.exists() {
            return Err(ProcessError::NotFound {
                program: program.into(),
                why: "stat ".to_string() + program + ": no such file or directory",
            });
        }
        if !executable(&p) {
            return Err(ProcessError::NotFound {
                program: program.into(),
                why: "permission denied".into(),
            });
        }
        return Ok(p);
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p))
        .ok_or_else(|| ProcessError::NotFound {
            program: program.into(),
            why: "executable file not found in $PATH".into(),
        })
}

/// A running container process.
pub struct Running {
    child: Child,
    /// Held only to be closed: the supervisor's lifeline.
    _lifeline: Option<ChildStdin>,
    pid: i32,
    supervised: bool,
    pumps: Vec<JoinHandle<()>>,
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a plain pid and signal number has no memory effects.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// What signals a running container, shareable (faults, probes, stop).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Handle {
    pid: i32,
    supervised: bool,
}

impl Handle {
    /// The pid of the process the agent started (the supervisor when there is one).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Ask the main process to stop (SIGTERM).
    pub fn terminate(&self) {
        signal(self.pid, libc::SIGTERM);
    }

    /// SIGKILL the container's process group.
    pub fn kill(&self) {
        if self.supervised {
            signal(self.pid, supervise::kill_signal());
        } else {
            signal(-self.pid, libc::SIGKILL);
        }
    }

    /// SIGSTOP the container's process group.
    pub fn freeze(&self) {
        if self.supervised {
            signal(self.pid, supervise::freeze_signal());
        } else {
            signal(-self.pid, libc::SIGSTOP);
        }
    }

    /// SIGCONT the container's process group.
    pub fn thaw(&self) {
        if self.supervised {
            signal(self.pid, supervise::thaw_signal());
        } else {
            signal(-self.pid, libc::SIGCONT);
        }
    }
}

impl Running {
    /// The handle that signals it.
    pub fn handle(&self) -> Handle {
        Handle {
            pid: self.pid,
            supervised: self.supervised,
        }
    }

    /// Wait for the process to end and its output to be written; its exit code (128 + signal
    /// when a signal ended it).
    pub async fn wait(&mut self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let code = match self.child.wait().await {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(c), _) => c,
                (None, Some(sig)) => 128 + sig,
                _ => 128,
            },
            Err(_) => 128,
        };
        for p in self.pumps.drain(..) {
            // A grandchild may still hold the pipes; don't wait on it forever.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), p).await;
        }
        code
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.id().is_some() {
            self.handle().kill();
        }
        for p in &self.pumps {
            p.abort();
        }
    }
}

/// Start a container process, through the supervisor binary when one is given.
pub fn spawn(spec: &Spec, supervisor: Option<&Path>) -> Result<Running, ProcessError> {
    let program = resolve(&spec.program, &spec.env)?;
    let program = program.display().to_string();
    let mut cmd = match supervisor {
        Some(exe) => {
            let mut c = Command::new(exe);
            c.args(supervise::arguments(
                spec.uid, spec.gid, &program, &spec.args,
            ));
            c.stdin(Stdio::piped());
            c
        }
        None => {
            let mut c = Command::new(&program);
            c.args(&spec.args).stdin(Stdio::null()).process_group(0);
            if let Some(g) = spec.gid {
                c.gid(g);
            }
            if let Some(u) = spec.uid {
                c.uid(u);
            }
            c
        }
    };
    cmd.env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A supervisor must live to kill its group (it gets the kill signal on drop, and
        // end-of-file on its lifeline); only an unsupervised process is killed directly.
        .kill_on_drop(supervisor.is_none());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|source| ProcessError::Log {
            path: spec.log.clone(),
            source,
        })?;
    let file = Arc::new(Mutex::new(file));
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, "stdout", file.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, "stderr", file)));
    }
    let lifeline = child.stdin.take();
    Ok(Running {
        child,
        _lifeline: lifeline,
        pid,
        supervised: supervisor.is_some(),
        pumps,
    })
}

/// One CRI log line.
pub fn cri_line(stream: &str, line: &[u8]) -> Vec<u8> {
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.9fZ");
    let mut out = format!("{ts} {stream} F ").into_bytes();
    out.extend_from_slice(line);
    out.push(b'\n');
    out
}

async fn pump<R: AsyncRead + Unpin>(
    mut from: R,
    stream: &'static str,
    to: Arc<Mutex<std::fs::File>>,
) {
    let mut buf = vec![0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut out = Vec::new();
        while let Some(at) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            out.extend(cri_line(stream, &line[..line.len() - 1]));
        }
        if !out.is_empty() {
            let mut f = to.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = f.write_all(&out);
        }
    }
    if !pending.is_empty() {
        let mut f = to.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = f.write_all(&cri_line(stream, &pending));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_on_the_containers_path() {
        let env = vec![("PATH".to_string(), "/nonexistent:/bin:/usr/bin".to_string())];
        assert!(resolve("sh", &env).is_ok());
        let e = resolve("no-such-program-here", &env).expect_err("missing");
        assert!(
            e.to_string()
                .contains("exec: \"no-such-program-here\": executable file not found in $PATH"),
            "{e}"
        );
        let e = resolve("/nonexistent/x", &env).expect_err("missing");
        assert!(e.to_string().contains("no such file or directory"), "{e}");
    }
}
