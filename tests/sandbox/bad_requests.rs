//! Bad requests get what the real API server answers (400, 404, 405, 413, 415, 422, each with
//! a `Status`), and no batch of malformed or oversized requests can crash or wedge the sandbox.

use logbook_testkit::sandbox as support;

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use serde_json::Value;
use support::{bounded, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send raw bytes, read the answer to the end; returns the status code (0 if none) and body.
pub(crate) async fn send(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        // The server may answer (and close) before the whole body is written.
        let _ = s.write_all(request).await;
        let _ = s.shutdown().await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        Some(out)
    };
    // A wedged connection never ends; 30 s leaves room for a busy machine (the sandbox's own
    // header timeout is 10 s, and a full run once took longer than 10 s for one of these).
    let out = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("the server answered or closed in time")
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn request(method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        r.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Expect `code` with a `Status` body of that code and `reason`.
async fn expect_status(addr: SocketAddr, req: Vec<u8>, code: u16, reason: &str) {
    let (got, body) = send(addr, &req).await;
    assert_eq!(got, code, "{body}");
    let status: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    assert_eq!(status["kind"], "Status", "{body}");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], code);
    assert_eq!(status["reason"], reason, "{body}");
    assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()));
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn chunked(method: &str, path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(64 * 1024) {
        r.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        r.extend_from_slice(chunk);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

fn big_configmap(bytes: usize) -> Vec<u8> {
    let filler = "x".repeat(bytes);
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{filler}"}}}}"#).into_bytes()
}

#[tokio::test]
async fn bad_requests_get_the_real_servers_answers() {
    bounded(async {
        let sandbox = start().await;
        let addr = sandbox.addr();
        let json = Some("application/json");
        let cm = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#;

        // Malformed bodies.
        expect_status(addr, request("POST", CMS, json, b"{\"apiVersion\": "), 400, "BadRequest").await;
        expect_status(addr, request("POST", CMS, Some("application/yaml"), b"a: [1, 2\nb: {"), 400, "BadRequest").await;
        expect_status(addr, request("POST", CMS, json, b"[1, 2, 3]"), 400, "BadRequest").await;
        expect_status(addr, request("POST", CMS, json, &[0xff, 0xfe, 0x00]), 400, "BadRequest").await;
        // Content types.
        expect_status(addr, request("POST", CMS, Some("text/plain"), cm), 415, "UnsupportedMediaType").await;
        // No Content-Type is JSON, as on the real server: bad JSON is a 400, not a 415.
        expect_status(addr, request("POST", CMS, None, b"{\"apiVersion\": "), 400, "BadRequest").await;
        // Protobuf that is not protobuf (no `k8s\0` prefix, a broken envelope) is a 400.
        expect_status(addr, request("POST", CMS, Some("application/vnd.kubernetes.protobuf"), cm), 400, "BadRequest").await;
        expect_status(addr, request("POST", CMS, Some("application/vnd.kubernetes.protobuf"), b"k8s\0\x0a\xff"), 400, "BadRequest").await;
        // Unknown resources and paths.
        expect_status(addr, request("GET", "/apis/nope.example.com/v1/things", None, b""), 404, "NotFound").await;
        expect_status(addr, request("GET", "/api/v1/namespaces/default/widgets", None, b""), 404, "NotFound").await;
        expect_status(addr, request("GET", "/api/v1/namespaces/default/configmaps/a/bogus", None, b""), 404, "NotFound").await;
        expect_status(addr, request("GET", "/api/v1/namespaces/default/namespaces/x", None, b""), 404, "NotFound").await;
        expect_status(addr, request("GET", "/not/an/api/path", None, b""), 404, "NotFound").await;
        // Verbs a URL does not take.
        expect_status(addr, request("PUT", CMS, json, cm), 405, "MethodNotAllowed").await;
        expect_status(addr, request("POST", &format!("{CMS}/a"), json, cm), 405, "MethodNotAllowed").await;

        // A body that disagrees with the URL.
        let (code, _) = send(addr, &request("POST", CMS, json, cm)).await;
        assert_eq!(code, 201);
        let b = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}"#;
        expect_status(addr, request("PUT", &format!("{CMS}/a"), json, b), 400, "BadRequest").await;
        let other_ns = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"kube-system"}}"#;
        expect_status(addr, request("POST", CMS, json, other_ns), 400, "BadRequest").await;
        let wrong_kind = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"d"}}"#;
        expect_status(addr, request("POST", CMS, json, wrong_kind), 400, "BadRequest").await;
        let bad_name = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad Name"}}"#;
        expect_status(addr, request("POST", CMS, json, bad_name), 422, "Invalid").await;
        let no_name = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#;
        expect_status(addr, request("POST", CMS, json, no_name), 422, "Invalid").await;

        // Patches.
        expect_status(addr, request("PATCH", &format!("{CMS}/a"), json, b"{}"), 415, "UnsupportedMediaType").await;
        expect_status(addr, request("PATCH", &format!("{CMS}/a"), Some("application/merge-patch+json"), b"{oops"), 400, "BadRequest").await;
        expect_status(addr, request("PATCH", &format!("{CMS}/a"), Some("application/json-patch+json"), b"{\"op\":1}"), 400, "BadRequest").await;
        expect_status(addr, request("PATCH", &format!("{CMS}/a?fieldManager=t"), Some("application/apply-patch+yaml"), b"kind: [\n"), 400, "BadRequest").await;
        expect_status(addr, request("PATCH", &format!("{CMS}/a?fieldManager=t"), Some("application/apply-patch+yaml"), b"metadata:\n  name: a\n"), 400, "BadRequest").await;

        // Query parameters.
        expect_status(addr, request("GET", &format!("{CMS}?labelSelector=a%20in%20b"), None, b""), 400, "BadRequest").await;
        expect_status(addr, request("GET", &format!("{CMS}?fieldSelector=spec.x%3D1"), None, b""), 400, "BadRequest").await;
        expect_status(addr, request("GET", &format!("{CMS}?limit=many"), None, b""), 400, "BadRequest").await;
        expect_status(addr, request("GET", &format!("{CMS}?limit=1&continue=%zz"), None, b""), 400, "BadRequest").await;
        expect_status(addr, request("GET", &format!("{CMS}?watch=true&resourceVersion=abc"), None, b""), 400, "BadRequest").await;
        expect_status(addr, request("DELETE", &format!("{CMS}/a?propagationPolicy=Sideways"), None, b""), 422, "Invalid").await;

        // Accept only what cannot be served.
        let mut proto_only = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAccept: application/vnd.kubernetes.protobuf\r\n\r\n".to_vec();
        expect_status(addr, std::mem::take(&mut proto_only), 406, "NotAcceptable").await;

        // Bodies over 3 MiB: declared, and streamed without a length.
        expect_status(addr, request("POST", CMS, json, &big_configmap(4 << 20)), 413, "RequestEntityTooLarge").await;
        expect_status(addr, chunked("POST", CMS, "application/json", &big_configmap(4 << 20)), 413, "RequestEntityTooLarge").await;
        // Just under the limit is fine.
        let (code, body) = send(addr, &request("POST", CMS, json, &big_configmap(3 << 20).split_at((3 << 20) - 100).0.iter().copied().chain(br#""}}"#.iter().copied()).collect::<Vec<u8>>())).await;
        assert_eq!(code, 201, "{}", &body[..body.len().min(300)]);
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn no_request_crashes_or_wedges_the_server() {
    bounded(async {
        let sandbox = start().await;
        let addr = sandbox.addr();
        let json = Some("application/json");
        let deep_json = "[".repeat(200_000).into_bytes();
        let deep_obj = format!("{}{}", "{\"a\":".repeat(50_000), "1").into_bytes();
        let deep_yaml = format!("{}x", "- ".repeat(50_000)).into_bytes();
        let anchors = b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f]\n".to_vec();
        let mut batch: Vec<Vec<u8>> = vec![
            b"\x00\x01\x02 garbage that is not HTTP\r\n\r\n".to_vec(),
            b"GET / HTTP/1.1\r\nHost".to_vec(),
            b"GET /api/v1/namespaces HTTP/9.9\r\n\r\n".to_vec(),
            format!("GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "y".repeat(200_000)).into_bytes(),
            b"GET /api/v1/namespaces/%ff%fe/configmaps/%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}".to_vec(),
            b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"short\"".to_vec(),
            request("POST", CMS, json, &deep_json),
            request("POST", CMS, json, &deep_obj),
            request("POST", CMS, Some("application/yaml"), &deep_yaml),
            request("POST", CMS, Some("application/yaml"), &anchors),
            request("PATCH", &format!("{CMS}/x?fieldManager=a"), Some("application/apply-patch+yaml"), &deep_yaml),
            request("PATCH", &format!("{CMS}/x?fieldManager=a"), Some("application/apply-patch+yaml"), &anchors),
            request("GET", &format!("{CMS}?labelSelector={}", "(".repeat(10_000)), None, b""),
            request("GET", &format!("/apis/{}", "a/".repeat(5_000)), None, b""),
            chunked("PUT", &format!("{CMS}/x"), "application/json", &vec![b'{'; 5 << 20]),
        ];
        for i in 0..20 {
            batch.push(request("POST", CMS, json, format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"junk-{i}\"").as_bytes()));
        }
        let sends = batch.iter().map(|r| send(addr, r));
        let answers = futures::future::join_all(sends).await;
        for (code, _) in &answers {
            assert!(*code == 0 || (400..600).contains(code), "bad requests get errors, got {code}");
            assert_ne!(*code, 500, "no bad request is an internal error");
        }

        // Normal requests still work, through the real client.
        let cms: Api<ConfigMap> = Api::default_namespaced(sandbox.client());
        let cm = ConfigMap { metadata: ObjectMeta { name: Some("ok".into()), ..Default::default() }, ..Default::default() };
        cms.create(&PostParams::default(), &cm).await.expect("create after the barrage");
        cms.get("ok").await.expect("get after the barrage");
        assert_eq!(cms.list(&Default::default()).await.expect("list").items.len(), 1);
        sandbox.shutdown().await;
    })
    .await;
}
