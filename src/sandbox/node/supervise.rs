//! The container supervisor: the logbook binary re-executed as `logbook __node-supervise`, one
//! per running container, so that no container process outlives the sandbox, even a SIGKILLed
//! one. It must not do anything else: no API access, no logs of its own beyond an exec error.
//!
//! How: the supervisor's stdin is a pipe whose other end only the sandbox holds (close-on-exec,
//! so no other child inherits it). When the sandbox dies, however it dies, the kernel closes
//! that end and the supervisor reads end-of-file: it SIGKILLs the container's whole process
//! group (the program and everything it started, `sh -c` grandchildren included) and exits.
//! The supervisor is also a child subreaper, so orphans that left the group are reparented to
//! it and killed with it. The container runs in a process group of its own; the supervisor
//! forwards ordinary signals to its main process (SIGTERM on stop, as the kubelet does) and
//! takes three real-time signals from the agent: [`KILL`] (SIGKILL the group), [`FREEZE`]
//! (SIGSTOP it) and [`THAW`] (SIGCONT). It exits with the container's exit code, or 128 + the
//! signal that ended it, as a container runtime reports it; 128 if the program could not start.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, Stdio};

use nix::libc;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::Pid;

/// The hidden subcommand's name (the first argument).
pub const SUBCOMMAND: &str = "__node-supervise";

/// Offsets from SIGRTMIN of the agent's requests.
const KILL_OFFSET: i32 = 1;
const FREEZE_OFFSET: i32 = 2;
const THAW_OFFSET: i32 = 3;

fn rt(offset: i32) -> i32 {
    libc::SIGRTMIN() + offset
}

/// The signal asking the supervisor to SIGKILL the container's process group.
pub fn kill_signal() -> i32 {
    rt(KILL_OFFSET)
}
/// The signal asking it to SIGSTOP the group.
pub fn freeze_signal() -> i32 {
    rt(FREEZE_OFFSET)
}
/// The signal asking it to SIGCONT the group.
pub fn thaw_signal() -> i32 {
    rt(THAW_OFFSET)
}

/// Marker names kept for the module doc.
pub const KILL: &str = "SIGRTMIN+1";
/// See [`KILL`].
pub const FREEZE: &str = "SIGRTMIN+2";
/// See [`KILL`].
pub const THAW: &str = "SIGRTMIN+3";

/// The arguments of the supervisor for a program run as `uid`/`gid` (when given).
pub fn arguments(
    uid: Option<u32>,
    gid: Option<u32>,
    program: &str,
    args: &[String],
) -> Vec<String> {
    let mut v = vec![SUBCOMMAND.to_string()];
    if let Some(u) = uid {
        v.push(format!("--uid={u}"));
    }
    if let Some(g) = gid {
        v.push(format!("--gid={g}"));
    }
    v.push("--".into());
    v.push(program.to_string());
    v.extend(args.iter().cloned());
    v
}

fn signal_group(pgid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(-pgid), sig);
}

fn raw_kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a plain pid and signal number has no memory effects.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Run the supervisor: `args` are those after [`SUBCOMMAND`].
pub fn main(args: Vec<OsString>) -> ExitCode {
    let mut uid = None;
    let mut gid = None;
    let mut rest = args.into_iter();
    let mut program = None;
    for a in rest.by_ref() {
        let s = a.to_string_lossy().into_owned();
        if s == "--" {
            program = rest.next();
            break;
        } else if let Some(u) = s.strip_prefix("--uid=") {
            uid = u.parse::<u32>().ok();
        } else if let Some(g) = s.strip_prefix("--gid=") {
            gid = g.parse::<u32>().ok();
        }
    }
    let Some(program) = program else {
        eprintln!(
            "logbook {SUBCOMMAND}: no program given (usage: {SUBCOMMAND} [--uid=N] [--gid=N] -- PROGRAM ARGS...)"
        );
        return ExitCode::from(128);
    };
    let program_args: Vec<OsString> = rest.collect();
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // Signals handled by the forwarding thread; blocked here so that they queue for it (the
    // child's mask is reset by std before exec).
    let mut forwarded = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        forwarded.add(s);
    }
    let mut raw_set: libc::sigset_t = *forwarded.as_ref();
    for off in [KILL_OFFSET, FREEZE_OFFSET, THAW_OFFSET] {
        // SAFETY: raw_set is a valid, initialized sigset_t.
        unsafe {
            libc::sigaddset(&mut raw_set, rt(off));
        }
    }
    // SAFETY: blocking signals in this (only) thread before any other thread starts.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &raw_set, std::ptr::null_mut());
    }
    let mut cmd = Command::new(&program);
    cmd.args(&program_args)
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(g) = gid {
        cmd.gid(g);
    }
    if let Some(u) = uid {
        cmd.uid(u);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("exec: {:?}: {e}", program.to_string_lossy());
            return ExitCode::from(128);
        }
    };
    let pid = child.id() as i32;
    // The lifeline: end-of-file on stdin means the sandbox is gone.
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        signal_group(pid, Signal::SIGKILL);
        std::process::exit(137);
    });
    std::thread::spawn(move || {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: raw_set is valid; sig is a valid out pointer.
            let r = unsafe { libc::sigwait(&raw_set, &mut sig) };
            if r != 0 {
                continue;
            }
            if sig == rt(KILL_OFFSET) {
                signal_group(pid, Signal::SIGKILL);
            } else if sig == rt(FREEZE_OFFSET) {
                signal_group(pid, Signal::SIGSTOP);
            } else if sig == rt(THAW_OFFSET) {
                signal_group(pid, Signal::SIGCONT);
            } else {
                raw_kill(pid, sig);
            }
        }
    });
    let status = child.wait();
    // The container ends with its main process: whatever it left behind goes too.
    signal_group(pid, Signal::SIGKILL);
    let code = match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            _ => 128,
        },
        Err(_) => 128,
    };
    // Reap the orphans that were reparented here.
    loop {
        // SAFETY: waitpid with a null status pointer and WNOHANG.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
    ExitCode::from(code.clamp(0, 255) as u8)
}
