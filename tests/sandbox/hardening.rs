//! The sandbox is not an easy target on a developer's machine: its watch history is bounded in
//! bytes, connections that send nothing or send their headers or body slowly are cut (watches
//! are not), and requests a web page could send (a foreign Host, a write with an Origin) are
//! refused with a 403 Status.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::core::ObjectMeta;
use logbook::sandbox::SandboxConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use logbook_testkit::sandbox::{bounded, start_with as start};

fn config() -> SandboxConfig {
    SandboxConfig {
        ready_delay: Duration::from_millis(50),
        gc_delay: Duration::from_millis(5),
        ..SandboxConfig::default()
    }
}

/// Send one raw request (the server closes after it), read the answer to the end: the status
/// code (0 if none) and the body.
async fn send(addr: SocketAddr, request: String) -> (u16, String) {
    super::bad_requests::send(addr, request.as_bytes()).await
}

fn request(method: &str, path: &str, host: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n"
    )
}

/// A 403 `Status` whose message contains `why`.
fn assert_forbidden(code: u16, body: &str, why: &str) {
    assert_eq!(code, 403, "{body}");
    let status: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    assert_eq!(status["kind"], "Status", "{body}");
    assert_eq!(status["reason"], "Forbidden", "{body}");
    assert_eq!(status["code"], 403, "{body}");
    let message = status["message"].as_str().unwrap_or("");
    assert!(message.contains(why), "{message:?} says {why:?}");
}

fn configmap(name: &str, bytes: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("big".to_string(), "x".repeat(bytes))].into()),
        ..Default::default()
    }
}

/// Wait until the server closes `s` (EOF or reset), reading and discarding what comes; how
/// long it took.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let wait = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout(limit, wait).await.is_err() {
        panic!("the server did not close the connection within {limit:?}");
    }
    started.elapsed()
}

#[tokio::test]
async fn watch_history_is_bounded_by_bytes() {
    bounded(async {
        let bound = 512 << 10;
        let sandbox = start(SandboxConfig {
            history_bytes: bound,
            ..config()
        })
        .await;
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        let first = cms
            .create(&PostParams::default(), &configmap("cm-0", 100 << 10))
            .await
            .expect("create cm-0");
        let first_rv = first.metadata.resource_version.unwrap_or_default();
        for i in 1..30 {
            cms.create(
                &PostParams::default(),
                &configmap(&format!("cm-{i}"), 100 << 10),
            )
            .await
            .expect("create");
            let h = sandbox.history();
            assert!(h.bytes <= bound, "{h:?}");
        }
        let h = sandbox.history();
        assert_eq!(h.max_bytes, bound);
        assert!(h.events >= 1 && h.events < 10, "{h:?}");

        // The admin endpoint says the same.
        let (code, body) = send(
            sandbox.addr(),
            request("GET", "/sandbox/history", "127.0.0.1", ""),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(v["maxBytes"], bound, "{body}");
        assert_eq!(v["bytes"], h.bytes, "{body}");
        assert_eq!(v["events"], h.events, "{body}");
        assert_eq!(
            v["oldestResourceVersion"], h.oldest_resource_version,
            "{body}"
        );

        // A watch from the first version finds it evicted: 410 Expired, as the real server says.
        let mut events = cms
            .watch(&WatchParams::default(), &first_rv)
            .await
            .expect("the watch starts")
            .boxed();
        match events.try_next().await {
            Ok(Some(WatchEvent::Error(e))) => {
                assert_eq!(e.code, 410, "{e:?}");
                assert_eq!(e.reason, "Expired", "{e:?}");
            }
            other => panic!("expected 410 Expired, got {other:?}"),
        }
        // One from what is kept works.
        let mut events = cms
            .watch(
                &WatchParams::default(),
                &h.oldest_resource_version.to_string(),
            )
            .await
            .expect("the watch starts")
            .boxed();
        cms.create(&PostParams::default(), &configmap("last", 10))
            .await
            .expect("create last");
        loop {
            match events.try_next().await {
                Ok(Some(WatchEvent::Added(cm))) if cm.metadata.name.as_deref() == Some("last") => {
                    break;
                }
                Ok(Some(WatchEvent::Added(_))) => {}
                other => panic!("expected ADDED events, got {other:?}"),
            }
        }
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_cut() {
    bounded(async {
        let header = Duration::from_millis(300);
        let sandbox = start(SandboxConfig {
            header_timeout: header,
            idle_timeout: Duration::from_secs(30),
            ..config()
        })
        .await;
        let mut s = TcpStream::connect(sandbox.addr()).await.expect("connect");
        let took = closed_within(&mut s, Duration::from_secs(10)).await;
        assert!(
            took >= header - Duration::from_millis(20),
            "cut after {took:?}"
        );
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn headers_sent_slowly_are_cut() {
    bounded(async {
        let header = Duration::from_millis(500);
        let sandbox = start(SandboxConfig {
            header_timeout: header,
            idle_timeout: Duration::from_secs(30),
            ..config()
        })
        .await;
        let s = TcpStream::connect(sandbox.addr()).await.expect("connect");
        let (mut rd, mut wr) = s.into_split();
        // A byte every 50 ms, never finishing the headers (slowloris).
        let trickle = tokio::spawn(async move {
            let _ = wr
                .write_all(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await;
            loop {
                if wr.write_all(b"a").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await;
        let took = started.elapsed();
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the server closes without answering, got {read:?}"
        );
        assert!(
            took >= header - Duration::from_millis(20),
            "cut after {took:?}"
        );
        assert!(took < Duration::from_secs(10), "cut after {took:?}");
        trickle.abort();

        // The server still serves everyone else.
        let (code, body) = send(sandbox.addr(), request("GET", "/version", "127.0.0.1", "")).await;
        assert_eq!(code, 200, "{body}");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_body_sent_slowly_gets_408() {
    bounded(async {
        let body = Duration::from_millis(300);
        let sandbox = start(SandboxConfig {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            body_timeout: body,
            ..config()
        })
        .await;
        let mut s = TcpStream::connect(sandbox.addr()).await.expect("connect");
        // The headers promise 100 bytes; 10 come, then nothing.
        s.write_all(
            b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"apiVersi",
        )
        .await
        .expect("send");
        let started = Instant::now();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("\"reason\":\"Timeout\""), "{text}");
        assert!(took >= body - Duration::from_millis(20), "answered after {took:?}");
        assert!(took < Duration::from_secs(10), "answered after {took:?}");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_cut() {
    bounded(async {
        let idle = Duration::from_millis(300);
        let sandbox = start(SandboxConfig {
            header_timeout: Duration::from_secs(30),
            idle_timeout: idle,
            ..config()
        })
        .await;
        let mut s = TcpStream::connect(sandbox.addr()).await.expect("connect");
        s.write_all(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("send");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // The answer comes, and the connection stays open for the next request...
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            while !String::from_utf8_lossy(&got).contains("gitVersion") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            true
        })
        .await;
        assert_eq!(answered, Ok(true), "{}", String::from_utf8_lossy(&got));
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
        // ...until it has been idle for the idle timeout (well before the header timeout).
        let took = closed_within(&mut s, Duration::from_secs(10)).await;
        assert!(
            took >= idle - Duration::from_millis(50),
            "cut after {took:?}"
        );
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn watches_outlive_the_timeouts() {
    bounded(async {
        let short = Duration::from_millis(200);
        let sandbox = start(SandboxConfig {
            header_timeout: short,
            idle_timeout: short,
            ..config()
        })
        .await;
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        let rv = sandbox.resource_version();
        // A raw watch without bookmarks: nothing comes until an object changes.
        let mut s = TcpStream::connect(sandbox.addr()).await.expect("connect");
        let watch = format!(
            "GET /api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        );
        s.write_all(watch.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let headers = tokio::time::timeout(Duration::from_secs(10), async {
            while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            true
        })
        .await;
        assert_eq!(headers, Ok(true), "{}", String::from_utf8_lossy(&got));
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));

        // Silent for five times the timeouts: the watch must still be open...
        let silent = tokio::time::timeout(5 * short, s.read(&mut buf)).await;
        assert!(silent.is_err(), "the watch ended or spoke: {silent:?}");
        // ...and deliver what happens next.
        cms.create(&PostParams::default(), &configmap("later", 10))
            .await
            .expect("create");
        let delivered = tokio::time::timeout(Duration::from_secs(10), async {
            while !String::from_utf8_lossy(&got).contains("\"ADDED\"") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            true
        })
        .await;
        assert_eq!(delivered, Ok(true), "{}", String::from_utf8_lossy(&got));
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_kube_client_rides_over_idle_cuts() {
    bounded(async {
        let idle = Duration::from_millis(100);
        let sandbox = start(SandboxConfig {
            idle_timeout: idle,
            ..config()
        })
        .await;
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        for i in 0..3 {
            cms.create(&PostParams::default(), &configmap(&format!("cm-{i}"), 10))
                .await
                .expect("create");
            // Long enough for the server to cut the pooled connection.
            tokio::time::sleep(4 * idle).await;
        }
        assert_eq!(
            cms.list(&Default::default())
                .await
                .expect("list")
                .items
                .len(),
            3
        );
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn admin_writes_from_web_pages_are_refused() {
    bounded(async {
        let sandbox = start(config()).await;
        let addr = sandbox.addr();
        let host = addr.to_string();
        let origin = "Origin: http://evil.example\r\n";

        let (code, body) = send(addr, request("POST", "/sandbox/pause", &host, origin)).await;
        assert_forbidden(code, &body, "Origin");
        let (code, body) = send(addr, request("PUT", "/sandbox/faults", &host, origin)).await;
        assert_forbidden(code, &body, "Origin");
        // Not paused: the refused request did nothing.
        assert!(
            !sandbox.faults().config().paused,
            "refused writes have no effect"
        );
        // The same from a web page of this very sandbox is still a browser's.
        let own = format!("Origin: http://{host}\r\n");
        let (code, body) = send(addr, request("POST", "/sandbox/compact", &host, &own)).await;
        assert_forbidden(code, &body, "Origin");
        // Writes to the Kubernetes API too.
        let (code, body) = send(
            addr,
            request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                &host,
                origin,
            ),
        )
        .await;
        assert_forbidden(code, &body, "Origin");

        // Reads with an Origin, and writes without one (the Rust handle, curl), go through.
        let (code, body) = send(addr, request("GET", "/sandbox/faults", &host, origin)).await;
        assert_eq!(code, 200, "{body}");
        let (code, body) = send(addr, request("POST", "/sandbox/pause", &host, "")).await;
        assert_eq!(code, 200, "{body}");
        assert!(sandbox.faults().config().paused);
        let (code, body) = send(addr, request("POST", "/sandbox/resume", &host, "")).await;
        assert_eq!(code, 200, "{body}");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn foreign_hosts_are_refused() {
    bounded(async {
        let sandbox = start(config()).await;
        let addr = sandbox.addr();
        let port = addr.port();
        for host in [
            format!("evil.example:{port}"),
            "evil.example".to_string(),
            format!("localhost.evil.example:{port}"),
            format!("127.0.0.1.nip.io:{port}"),
            format!("10.1.2.3:{port}"),
        ] {
            for path in ["/sandbox/faults", "/api/v1/namespaces", "/version"] {
                let (code, body) = send(addr, request("GET", path, &host, "")).await;
                assert_forbidden(code, &body, "loopback");
            }
            let (code, body) = send(addr, request("POST", "/sandbox/pause", &host, "")).await;
            assert_forbidden(code, &body, "loopback");
        }
        assert!(
            !sandbox.faults().config().paused,
            "refused writes have no effect"
        );
        for host in [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            "localhost".to_string(),
            format!("127.8.9.10:{port}"),
            format!("[::1]:{port}"),
        ] {
            let (code, body) = send(addr, request("GET", "/api/v1/namespaces", &host, "")).await;
            assert_eq!(code, 200, "{host}: {body}");
        }
        // The kube client sends the address it was given, and is served.
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        cms.create(&PostParams::default(), &configmap("ok", 10))
            .await
            .expect("create through kube");
        sandbox.shutdown().await;
    })
    .await;
}
