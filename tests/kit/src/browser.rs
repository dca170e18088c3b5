//! A real headless Chromium for the UI's browser test, driven over the DevTools protocol through
//! `--remote-debugging-pipe` (JSON messages on fds 3 and 4); killed (and reaped) on drop.
//!
//! It knows a handful of protocol calls (navigate, evaluate, key and media emulation,
//! screenshots) and waits on conditions with deadlines; it makes no assertions of its own.

use base64::Engine;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Where Chromium is, or why it is not: `LOGBOOK_CHROMIUM`, else `chromium` or
/// `chromium-browser` on PATH.
pub fn find_chromium() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("LOGBOOK_CHROMIUM") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(
        "Chromium is not installed (no chromium or chromium-browser on PATH, no \
         LOGBOOK_CHROMIUM): `make tools` installs it (Debian's chromium package)"
            .into(),
    )
}

/// A headless Chromium with one page attached.
pub struct Browser {
    child: Child,
    to_browser: std::io::PipeWriter,
    from_browser: Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium (window 1280×900) and opens a blank page.
    pub fn start() -> Result<Browser, String> {
        let chromium = find_chromium()?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (cmd_r, cmd_w) = std::io::pipe().map_err(|e| e.to_string())?;
        let (out_r, out_w) = std::io::pipe().map_err(|e| e.to_string())?;
        let (cr, ow) = (cmd_r.as_raw_fd(), out_w.as_raw_fd());
        let mut cmd = Command::new(&chromium);
        cmd.args([
            "--headless=new",
            "--remote-debugging-pipe",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--window-size=1280,900",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: dropping the Browser kills Chromium's helpers with it.
        .process_group(0);
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way of 3 and 4 first, then onto them (dup2 clears close-on-exec).
                let r = nix::libc::fcntl(cr, nix::libc::F_DUPFD, 10);
                let w = nix::libc::fcntl(ow, nix::libc::F_DUPFD, 10);
                if r < 0 || w < 0 || nix::libc::dup2(r, 3) < 0 || nix::libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {}: {e} (`make tools` installs Debian's chromium)",
                chromium.display()
            )
        })?;
        drop(cmd_r);
        drop(out_w);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut out_r = out_r;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                match out_r.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                while let Some(i) = buf.iter().position(|b| *b == 0) {
                    let msg: Vec<u8> = buf.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1])
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            to_browser: cmd_w,
            from_browser: rx,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_string();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        b.session = attached["sessionId"]
            .as_str()
            .ok_or("no session id")?
            .to_string();
        b.call("Page.enable", json!({}))?;
        b.call("Runtime.enable", json!({}))?;
        Ok(b)
    }

    /// One protocol call (on the page's session once attached), answered within 20 s.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).map_err(|e| e.to_string())?;
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .map_err(|e| format!("{method}: Chromium's pipe: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from_browser.recv_timeout(left) {
                Ok(v) if v["id"] == id => {
                    if let Some(e) = v.get("error") {
                        return Err(format!("{method}: {e}"));
                    }
                    return Ok(v["result"].clone());
                }
                Ok(_) => continue, // an event
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{method}: no answer from Chromium within 20 s"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("{method}: Chromium closed its pipe (it exited)"));
                }
            }
        }
    }

    /// Opens `url` in the page.
    pub fn navigate(&mut self, url: &str) -> Result<(), String> {
        self.call("Page.navigate", json!({"url": url}))?;
        Ok(())
    }

    /// Evaluates `expr` in the page (promises awaited), its value as JSON.
    pub fn eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expr}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Waits until `expr` is truthy in the page, at most `within`; the last value seen in the
    /// error otherwise.
    pub fn wait_for(&mut self, expr: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(&format!(
                "(() => {{ try {{ return !!({expr}); }} catch (e) {{ return false; }} }})()"
            ));
            if let Ok(Value::Bool(true)) = v {
                return Ok(());
            }
            if Instant::now() > deadline {
                let url = self.eval("location.href").unwrap_or_default();
                let text = self
                    .eval("document.body ? document.body.innerText.slice(0, 400) : ''")
                    .unwrap_or_default();
                return Err(format!(
                    "waited {within:?} for `{expr}` at {url}; the page says: {text}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Presses a key (e.g. `Enter`) on the focused element.
    pub fn press(&mut self, key: &str) -> Result<(), String> {
        let code = if key.len() == 1 { 0 } else { 13 };
        for kind in ["rawKeyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code}),
            )?;
        }
        Ok(())
    }

    /// Emulates `prefers-color-scheme: dark` (or light).
    pub fn color_scheme(&mut self, dark: bool) -> Result<(), String> {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": if dark { "dark" } else { "light" }}]}),
        )?;
        Ok(())
    }

    /// Saves a PNG of the page at `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), String> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .map_err(|e| format!("the screenshot is not base64: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, data).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
