//! Container probes run for real: exec (a command in the container's environment, as its
//! user), HTTP GET (status 200-399 within the timeout) and TCP (a connection within the
//! timeout), with `initialDelaySeconds`, `periodSeconds`, `timeoutSeconds`, `successThreshold`
//! and `failureThreshold`. Owns one probe's checks and thresholds; it must not change a
//! container's state itself: it reports results to [`super::pod`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::process::Spec;

/// What a probe checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Run a command: exit 0 passes.
    Exec(Vec<String>),
    /// GET a path: 200-399 passes.
    Http {
        /// Where.
        addr: SocketAddr,
        /// Path and query.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Connect: a connection passes.
    Tcp(SocketAddr),
    /// A kind the node does not run (gRPC): always passes.
    Unsupported,
}

/// One probe with its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The check.
    pub check: Check,
    /// Before the first check.
    pub initial_delay: Duration,
    /// Between checks.
    pub period: Duration,
    /// For one check.
    pub timeout: Duration,
    /// Consecutive passes to count as passing.
    pub success_threshold: u32,
    /// Consecutive failures to count as failing.
    pub failure_threshold: u32,
}

fn secs(v: &Value, k: &str, default: u64) -> Duration {
    Duration::from_secs(v.get(k).and_then(Value::as_u64).unwrap_or(default))
}

/// A container port by number or by name.
fn port(p: Option<&Value>, container: &Value) -> Option<u16> {
    match p? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok().or_else(|| {
            container
                .get("ports")
                .and_then(Value::as_array)?
                .iter()
                .find(|cp| cp.get("name").and_then(Value::as_str) == Some(s))?
                .get("containerPort")?
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
        }),
        _ => None,
    }
}

/// The probe `v` of `container`, aimed at the Pod's address `ip`.
pub fn parse(v: &Value, container: &Value, ip: IpAddr) -> Option<Probe> {
    let host = |h: Option<&Value>| {
        h.and_then(Value::as_str)
            .and_then(|s| s.parse::<IpAddr>().ok())
            .unwrap_or(ip)
    };
    let check = if let Some(e) = v.get("exec") {
        Check::Exec(
            e.get("command")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        )
    } else if let Some(h) = v.get("httpGet") {
        let p = port(h.get("port"), container)?;
        Check::Http {
            addr: SocketAddr::new(host(h.get("host")), p),
            path: h
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string(),
            headers: h
                .get("httpHeaders")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| {
                            Some((
                                x.get("name")?.as_str()?.to_string(),
                                x.get("value")?.as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    } else if let Some(t) = v.get("tcpSocket") {
        Check::Tcp(SocketAddr::new(
            host(t.get("host")),
            port(t.get("port"), container)?,
        ))
    } else {
        Check::Unsupported
    };
    Some(Probe {
        check,
        initial_delay: secs(v, "initialDelaySeconds", 0),
        period: secs(v, "periodSeconds", 10).max(Duration::from_secs(1)),
        timeout: secs(v, "timeoutSeconds", 1).max(Duration::from_secs(1)),
        success_threshold: v
            .get("successThreshold")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .max(1) as u32,
        failure_threshold: v
            .get("failureThreshold")
            .and_then(Value::as_u64)
            .unwrap_or(3)
            .max(1) as u32,
    })
}

async fn http(addr: SocketAddr, path: &str, headers: &[(String, String)]) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.37\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let line = String::from_utf8_lossy(&buf[..got]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(|c| (200..400).contains(&c))
}

async fn exec(command: &[String], spec: &Spec) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let Ok(program) = super::process::resolve(program, &spec.env) else {
        return false;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(g) = spec.gid {
        cmd.gid(g);
    }
    if let Some(u) = spec.uid {
        cmd.uid(u);
    }
    match cmd.status().await {
        Ok(s) => s.success(),
        Err(_) => false,
    }
}

impl Probe {
    /// One check, bounded by the probe's timeout; `spec` is the container's (exec probes run
    /// with its environment, directory and user).
    pub async fn check_once(&self, spec: &Spec) -> bool {
        let run = async {
            match &self.check {
                Check::Exec(c) => exec(c, spec).await,
                Check::Http {
                    addr,
                    path,
                    headers,
                } => http(*addr, path, headers).await,
                Check::Tcp(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
                Check::Unsupported => true,
            }
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .unwrap_or(false)
    }
}

/// Consecutive results against the thresholds: `Some(passing)` when the verdict changes.
#[derive(Debug, Default)]
pub struct Verdict {
    passes: u32,
    failures: u32,
    current: Option<bool>,
}

impl Verdict {
    /// Count one result; the new verdict if it changed.
    pub fn record(&mut self, probe: &Probe, ok: bool) -> Option<bool> {
        if ok {
            self.passes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.passes = 0;
        }
        let next = if self.passes >= probe.success_threshold {
            Some(true)
        } else if self.failures >= probe.failure_threshold {
            Some(false)
        } else {
            None
        };
        match next {
            Some(v) if self.current != Some(v) => {
                self.current = Some(v);
                Some(v)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn probes_parse_with_kubelet_defaults_and_named_ports() {
        let c = json!({ "ports": [{ "name": "http", "containerPort": 8080 }] });
        let ip: IpAddr = "127.10.0.3".parse().expect("ip");
        let p = parse(
            &json!({ "httpGet": { "port": "http", "path": "/ready" } }),
            &c,
            ip,
        )
        .expect("probe");
        assert_eq!(
            p.check,
            Check::Http {
                addr: "127.10.0.3:8080".parse().expect("addr"),
                path: "/ready".into(),
                headers: vec![]
            }
        );
        assert_eq!(p.period, Duration::from_secs(10));
        assert_eq!(p.failure_threshold, 3);
        assert!(parse(&json!({ "tcpSocket": { "port": "nope" } }), &c, ip).is_none());
        let mut v = Verdict::default();
        let p = Probe {
            failure_threshold: 2,
            success_threshold: 1,
            ..p
        };
        assert_eq!(v.record(&p, true), Some(true));
        assert_eq!(v.record(&p, false), None);
        assert_eq!(v.record(&p, false), Some(false));
        assert_eq!(v.record(&p, true), Some(true));
    }
}
