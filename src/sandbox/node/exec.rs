//! `pods/NAME/exec` over WebSocket, as kubectl 1.37 speaks it: the `v5.channel.k8s.io`
//! subprotocol (or `v4.channel.k8s.io`), binary frames whose first byte is the channel (0 stdin,
//! 1 stdout, 2 stderr, 3 the final Status as JSON, 4 resize, 255 close a stream in v5). The
//! command runs in the container's environment, directory and user, with its mount paths
//! rewritten; there is no terminal (`tty` is accepted, no pty is made, resizes are ignored).
//! Owns the exec options and the stream; it must not choose the container's context
//! ([`super::pod`] keeps it).

use std::process::Stdio;

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::status::ApiError;
use super::mounts::Mounts;
use super::process::{self, Spec};

/// The subprotocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The query of an exec request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// `container`.
    pub container: Option<String>,
    /// `command`, repeated.
    pub command: Vec<String>,
    /// `stdin`.
    pub stdin: bool,
    /// `stdout`.
    pub stdout: bool,
    /// `stderr`.
    pub stderr: bool,
    /// `tty`.
    pub tty: bool,
}

impl Options {
    /// From the request's query.
    pub fn parse(query: &[(String, String)]) -> Result<Options, ApiError> {
        let mut o = Options::default();
        let flag = |v: &str| matches!(v, "true" | "1");
        for (k, v) in query {
            match k.as_str() {
                "container" if !v.is_empty() => o.container = Some(v.clone()),
                "command" => o.command.push(v.clone()),
                "stdin" => o.stdin = flag(v),
                "stdout" => o.stdout = flag(v),
                "stderr" => o.stderr = flag(v),
                "tty" => o.tty = flag(v),
                _ => {}
            }
        }
        if o.command.is_empty() {
            return Err(ApiError::bad_request(
                "you must specify at least 1 command (the `command` query parameter, repeated)",
            ));
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        Ok(o)
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// The Status the API server sends on channel 3 when the command has ended.
pub fn exit_status(command: &[String], code: Option<i32>, error: Option<String>) -> Value {
    match (code, error) {
        (_, Some(e)) => json!({
            "metadata": {}, "status": "Failure", "reason": "InternalError", "message": e,
        }),
        (Some(0), None) => json!({ "metadata": {}, "status": "Success" }),
        (code, None) => {
            let code = code.unwrap_or(137);
            json!({
                "metadata": {}, "status": "Failure",
                "message": format!(
                    "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                    command.join(" ")
                ),
                "reason": "NonZeroExitCode",
                "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
            })
        }
    }
}

async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    channel: u8,
    to: tokio::sync::mpsc::UnboundedSender<Message>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.send(frame(channel, &buf[..n])).is_err() {
                    return;
                }
            }
        }
    }
}

/// Run `o.command` in a container's context and stream it over `socket`.
pub async fn run(socket: WebSocket, v5: bool, o: Options, spec: Spec, mounts: Mounts) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        // A normal closure (1000): client-go takes any other close as an error.
        let _ = sink
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });
    let argv: Vec<String> = o.command.iter().map(|a| mounts.rewrite(a)).collect();
    let started = argv
        .split_first()
        .ok_or_else(|| "no command".to_string())
        .and_then(|(program, args)| {
            let path = process::resolve(program, &spec.env).map_err(|e| e.to_string())?;
            let mut cmd = tokio::process::Command::new(path);
            cmd.args(args)
                .env_clear()
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&spec.cwd)
                .stdin(if o.stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(if o.stdout {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stderr(if o.stderr {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .kill_on_drop(true);
            if let Some(g) = spec.gid {
                cmd.gid(g);
            }
            if let Some(u) = spec.uid {
                cmd.uid(u);
            }
            cmd.spawn().map_err(|e| e.to_string())
        });
    let mut child = match started {
        Ok(c) => c,
        Err(e) => {
            let status = exit_status(&o.command, None, Some(e));
            let _ = tx.send(frame(3, status.to_string().as_bytes()));
            drop(tx);
            let _ = writer.await;
            return;
        }
    };
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, 1, tx.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, 2, tx.clone())));
    }
    let mut stdin = child.stdin.take();
    let reader = async {
        while let Some(Ok(m)) = stream.next().await {
            let data = match m {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_str().as_bytes().to_vec(),
                Message::Close(_) => return false,
                _ => continue,
            };
            let Some((&channel, rest)) = data.split_first() else {
                continue;
            };
            match channel {
                0 => {
                    if let Some(i) = stdin.as_mut()
                        && i.write_all(rest).await.is_err()
                    {
                        stdin = None;
                    }
                }
                255 if v5 && rest.first() == Some(&0) => stdin = None,
                _ => {}
            }
        }
        false
    };
    let code = tokio::select! {
        s = child.wait() => s.ok().and_then(|s| {
            use std::os::unix::process::ExitStatusExt;
            s.code().or(s.signal().map(|sig| 128 + sig))
        }),
        _ = reader => {
            // The client left: the command goes with it.
            let _ = child.kill().await;
            None
        }
    };
    for p in pumps {
        let _ = p.await;
    }
    let status = exit_status(&o.command, code.or(Some(137)), None);
    let _ = tx.send(frame(3, status.to_string().as_bytes()));
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_statuses() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let o = Options::parse(&q(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "exit 3"),
            ("stdout", "true"),
        ]))
        .expect("options");
        assert_eq!(o.command, vec!["sh", "-c", "exit 3"]);
        assert!(Options::parse(&q(&[("stdout", "true")])).is_err());
        assert!(Options::parse(&q(&[("command", "ls")])).is_err());
        let s = exit_status(&o.command, Some(3), None);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(&o.command, Some(0), None)["status"], "Success");
    }
}
