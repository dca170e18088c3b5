//! The HTTP front: URL and query parsing, content negotiation, body limits, faults, dispatch.
//! Owns the mapping from requests to verbs and of results to responses; it must not implement
//! a verb itself.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures::FutureExt;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::admin;
use super::discovery;
use super::faults::{Audited, Faults, Verb};
use super::guard::Guard;
use super::openapi;
use super::patch::PatchType;
use super::status::ApiError;
use super::store::Store;
use super::verbs::{self, Params, Target};
use super::watch;

/// The real API server's limit on request bodies (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The header naming a request in the audit log (sent as `Audit-ID`, answered as `Audit-Id`;
/// header names are case-insensitive).
pub const AUDIT_ID: &str = "audit-id";

/// What every request handler shares.
pub struct App {
    /// The objects.
    pub store: Arc<Store>,
    /// The fault settings.
    pub faults: Faults,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_every: Duration,
    /// Largest accepted request body.
    pub max_body: usize,
    /// How long a request body may take to arrive once the headers are in; zero: no limit.
    pub body_timeout: Duration,
    /// Which requests are refused before anything else (foreign Host, browser writes).
    pub guard: Guard,
    /// The node (Pod logs).
    pub node: Arc<super::node::Node>,
}

/// The axum router: every path goes through [`handle`].
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(move |req: Request| {
        let app = app.clone();
        async move { handle(app, req).await }
    })
}

fn respond(code: u16, content_type: &'static str, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json_response(code: u16, content_type: &'static str, v: &Value) -> Response {
    respond(
        code,
        content_type,
        Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    )
}

/// The `Status` answer for an error.
pub fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, "application/json", &e.to_status());
    if e.code == 429 {
        let secs = e
            .details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(|s| s.as_u64())
            .unwrap_or(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    r
}

fn unhex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode `%XX` escapes and `+` (form encoding); malformed escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (unhex(b[i + 1]), unhex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Whether we can answer in a media type the client accepts (JSON).
fn acceptable(accept: &str) -> bool {
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').any(|part| {
        let base = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        matches!(
            base.as_str(),
            "*/*" | "application/*" | "application/json" | ""
        )
    })
}

fn header(req: &http::request::Parts, name: http::header::HeaderName) -> &str {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn read_body(app: &App, parts: &http::request::Parts, body: Body) -> Result<Bytes, ApiError> {
    let declared = header(parts, CONTENT_LENGTH).parse::<usize>().ok();
    if declared.is_some_and(|n| n > app.max_body) {
        return Err(ApiError::too_large(app.max_body));
    }
    let read = axum::body::to_bytes(body, app.max_body);
    let read = if app.body_timeout.is_zero() {
        read.await
    } else {
        tokio::time::timeout(app.body_timeout, read)
            .await
            .map_err(|_| ApiError::body_timeout(app.body_timeout))?
    };
    read.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .map(|s| s.to_string().contains("length limit"))
            .unwrap_or(false)
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::too_large(app.max_body)
        } else {
            ApiError::bad_request(format!("error reading the request body: {e}"))
        }
    })
}

/// Answer one request. Panics become a 500 `Status`; nothing a client sends can take the
/// server down.
pub async fn handle(app: Arc<App>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    if let Err(e) = app.guard.check(&method, req.uri(), req.headers()) {
        tracing::warn!(%method, %path, reason = %e.message, "sandbox request refused");
        return error_response(&e);
    }
    // As the real API server: a client's `Audit-ID` names the request in the audit log and is
    // echoed as `Audit-Id`; without one the server makes one up.
    let audit_id = req
        .headers()
        .get(AUDIT_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    if let Some(id) = &audit_id {
        app.faults.record_audited(Audited {
            audit_id: id.clone(),
            method: method.to_string(),
            request_uri: req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_else(|| path.clone()),
        });
    }
    let result = AssertUnwindSafe(dispatch(app, req)).catch_unwind().await;
    let mut response = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => error_response(&e),
        Err(_) => {
            tracing::error!(%method, %path, "request handler panicked");
            error_response(&ApiError::internal("the request could not be handled"))
        }
    };
    let audit_id = audit_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(v) = HeaderValue::from_str(&audit_id) {
        response.headers_mut().insert(AUDIT_ID, v);
    }
    tracing::debug!(%method, %path, code = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, %audit_id, "sandbox request");
    response
}

async fn dispatch(app: Arc<App>, req: Request) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let accept = header(&parts, ACCEPT).to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();

    if segs.first() == Some(&"sandbox") {
        let bytes = read_body(&app, &parts, body).await?;
        let rest = segs[1..].join("/");
        let v = admin::handle(
            &app.faults,
            &app.store,
            parts.method.as_str(),
            &rest,
            &query,
            &bytes,
        )?;
        return Ok(json_response(200, "application/json", &v));
    }
    let get = parts.method == Method::GET;
    match segs.as_slice() {
        ["healthz" | "livez" | "readyz"] if get => {
            return Ok(respond(
                200,
                "text/plain; charset=utf-8",
                Bytes::from_static(b"ok"),
            ));
        }
        ["version"] if get => {
            return Ok(json_response(
                200,
                "application/json",
                &discovery::version(),
            ));
        }
        ["api"] | ["apis"] if get => {
            let reg = app.store.registry();
            if let Some(media) = discovery::aggregated(&accept) {
                let v = discovery::aggregated_list(&reg, segs[0] == "api", media);
                return Ok(json_response(200, media, &v));
            }
            if !acceptable(&accept) {
                return Err(ApiError::not_acceptable(&accept));
            }
            let v = if segs[0] == "api" {
                let host = header(&parts, http::header::HOST);
                discovery::core_versions(host)
            } else {
                discovery::groups(&reg)
            };
            return Ok(json_response(200, "application/json", &v));
        }
        ["api", v] | ["apis", _, v] if get => {
            let g = if segs[0] == "api" { "" } else { segs[1] };
            let reg = app.store.registry();
            let v = discovery::resources(&reg, g, v).ok_or_else(ApiError::no_such_path)?;
            return Ok(json_response(200, "application/json", &v));
        }
        ["openapi", "v2"] if get => {
            let (content_type, body) = openapi::v2(&accept);
            return Ok(respond(200, content_type, Bytes::from(body)));
        }
        ["openapi", "v3"] if get => {
            let v = openapi::index(&app.store.registry(), app.store.resource_version());
            return Ok(json_response(200, "application/json", &v));
        }
        ["openapi", "v3", "api", v] | ["openapi", "v3", "apis", _, v] if get => {
            let g = if segs[2] == "api" { "" } else { segs[3] };
            let v = openapi::group_version(&app.store.registry(), g, v)
                .ok_or_else(ApiError::no_such_path)?;
            return Ok(json_response(200, "application/json", &v));
        }
        ["apis", g] if get => {
            let v =
                discovery::group(&app.store.registry(), g).ok_or_else(ApiError::no_such_path)?;
            return Ok(json_response(200, "application/json", &v));
        }
        ["api" | "apis", ..] => {}
        _ => return Err(ApiError::no_such_path()),
    }
    if !acceptable(&accept) {
        return Err(ApiError::not_acceptable(&accept));
    }

    // A resource URL: /api/v1/... or /apis/{group}/{version}/...
    let (group, version, mut rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(ApiError::method_not_allowed(parts.method.as_str())),
    };
    let mut watch_prefix = false;
    if rest.first() == Some(&"watch") {
        watch_prefix = true;
        rest = &rest[1..];
    }
    let mut namespace = None;
    if rest.len() >= 3 && rest[0] == "namespaces" && !matches!(rest[2], "status" | "finalize") {
        namespace = Some(rest[1]);
        rest = &rest[2..];
    }
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(ApiError::no_such_path()),
    };
    let rtype = app
        .store
        .find(group, version, plural)
        .ok_or_else(ApiError::no_such_path)?;
    if namespace.is_some() && !rtype.namespaced {
        return Err(ApiError::no_such_path());
    }
    if rtype.id() == "/pods"
        && let (Some(ns), Some(name), Some(sub @ ("log" | "eviction" | "binding" | "exec"))) =
            (namespace, name, sub)
    {
        return pod_subresource(&app, &mut parts, body, &query, ns, name, sub).await;
    }
    let status = match sub {
        None => false,
        Some("status") if rtype.has_status(version) => true,
        Some(_) => return Err(ApiError::no_such_path()),
    };
    if name.is_some() && rtype.namespaced && namespace.is_none() {
        return Err(ApiError::no_such_path());
    }
    let target = Target {
        rtype: rtype.clone(),
        version: version.to_string(),
        namespace: namespace.unwrap_or("").to_string(),
        name: name.map(String::from),
        status,
    };
    let params: Params = query.iter().cloned().collect::<HashMap<_, _>>();
    let watch_param = matches!(params.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (&parts.method, name.is_some()) {
        (&Method::GET, _) if watch_prefix || watch_param => Verb::Watch,
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, false) if !rtype.namespaced || namespace.is_some() => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        (m, _) => return Err(ApiError::method_not_allowed(m.as_str())),
    };

    // Faults: pause, latency, injected errors (never on discovery or the admin endpoint).
    app.faults.wait_unpaused().await;
    let latency = app.faults.latency(verb);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(e) = app.faults.inject(verb, &path, || {
        ApiError::conflict(&rtype.group, &rtype.plural, name.unwrap_or(""))
    }) {
        return Err(e);
    }

    let store = &app.store;
    let ct = header(&parts, CONTENT_TYPE).to_string();
    let reply = match verb {
        Verb::Watch => {
            let stream = watch::start(store, &app.faults, target, &params, app.bookmark_every)?;
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(r);
        }
        Verb::Get => verbs::get(store, &target, &accept)?,
        Verb::List => verbs::list(store, &target, &params, &accept)?,
        Verb::Create | Verb::Update => {
            let format = verbs::body_format((!ct.is_empty()).then_some(ct.as_str()))?;
            let bytes = read_body(&app, &parts, body).await?;
            let obj = verbs::decode_for(&target.rtype.id(), &bytes, format)?;
            if verb == Verb::Create {
                verbs::create(store, &target, &params, obj)?
            } else {
                verbs::update(store, &target, &params, obj)?
            }
        }
        Verb::Patch => {
            let ptype = PatchType::from_content_type(&ct)
                .ok_or_else(|| ApiError::unsupported_media_type(&ct, &PatchType::ACCEPTED))?;
            let bytes = read_body(&app, &parts, body).await?;
            verbs::patch(store, &target, &params, ptype, &bytes)?
        }
        Verb::Delete | Verb::DeleteCollection => {
            let bytes = read_body(&app, &parts, body).await?;
            let opts = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                None
            } else {
                let format = if ct.is_empty() {
                    verbs::BodyFormat::Json
                } else {
                    verbs::body_format(Some(&ct))?
                };
                Some(verbs::decode(&bytes, format)?)
            };
            if verb == Verb::Delete {
                verbs::delete(store, &target, &params, opts)?
            } else {
                verbs::delete_collection(store, &target, &params, opts)?
            }
        }
    };
    let mut response = respond(reply.code, reply.content_type, reply.body);
    for w in &reply.warnings {
        if let Ok(v) = HeaderValue::from_str(&super::fields::warning_header(w)) {
            response.headers_mut().append(http::header::WARNING, v);
        }
    }
    Ok(response)
}

/// `pods/NAME/log` (GET), `pods/NAME/exec` (GET or POST, WebSocket), `pods/NAME/eviction`
/// and `pods/NAME/binding` (POST).
async fn pod_subresource(
    app: &App,
    parts: &mut http::request::Parts,
    body: Body,
    query: &[(String, String)],
    ns: &str,
    name: &str,
    sub: &str,
) -> Result<Response, ApiError> {
    let method = parts.method.clone();
    let pod = || {
        app.store
            .get("/pods", ns, name)
            .ok_or_else(|| ApiError::not_found("", "pods", name))
    };
    match (sub, method) {
        ("log", Method::GET) => {
            app.faults.wait_unpaused().await;
            let p = pod()?;
            match app.node.logs(&p.obj, query)? {
                super::node::LogReply::Whole(bytes) => {
                    Ok(respond(200, "text/plain", Bytes::from(bytes)))
                }
                super::node::LogReply::Follow(rx) => {
                    let stream = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|chunk| (Ok::<_, std::io::Error>(Bytes::from(chunk)), rx))
                    });
                    let mut r = Response::new(Body::from_stream(stream));
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                    Ok(r)
                }
            }
        }
        ("exec", Method::GET | Method::POST) => {
            use super::node::exec;
            use axum::extract::FromRequestParts;
            use axum::extract::ws::WebSocketUpgrade;
            let p = pod()?;
            let o = exec::Options::parse(query)?;
            let (spec, mounts) = app.node.exec_context(&p.obj, &o)?;
            let upgrade = WebSocketUpgrade::from_request_parts(parts, &())
                .await
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "pods/exec is served over WebSocket only ({} or {}): {e}",
                        exec::PROTOCOLS[0],
                        exec::PROTOCOLS[1]
                    ))
                })?;
            let upgrade = upgrade.protocols(exec::PROTOCOLS);
            let v5 = upgrade
                .selected_protocol()
                .is_some_and(|p| p.as_bytes() == exec::PROTOCOLS[0].as_bytes());
            Ok(upgrade.on_upgrade(move |socket| exec::run(socket, v5, o, spec, mounts)))
        }
        ("eviction", Method::POST) => {
            let bytes = read_body(app, parts, body).await?;
            let ct = header(parts, CONTENT_TYPE).to_string();
            let format = if ct.is_empty() {
                verbs::BodyFormat::Json
            } else {
                verbs::body_format(Some(&ct))?
            };
            let eviction = verbs::decode(&bytes, format)?;
            let kind = eviction.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind != "Eviction" {
                return Err(ApiError::bad_request(format!(
                    "the body of a pods/eviction request must be a policy/v1 Eviction, not {kind:?}"
                )));
            }
            let rtype = app
                .store
                .find("", "v1", "pods")
                .ok_or_else(ApiError::no_such_path)?;
            let target = Target {
                rtype,
                version: "v1".into(),
                namespace: ns.to_string(),
                name: Some(name.to_string()),
                status: false,
            };
            let opts = eviction.get("deleteOptions").cloned();
            verbs::delete(&app.store, &target, &HashMap::new(), opts)?;
            let ok = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Success", "code": 201,
            });
            Ok(json_response(201, "application/json", &ok))
        }
        ("binding", Method::POST) => {
            let bytes = read_body(app, parts, body).await?;
            let binding = verbs::decode(&bytes, verbs::BodyFormat::Json)?;
            let node = binding
                .pointer("/target/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if node.is_empty() {
                return Err(ApiError::bad_request(
                    "a Binding needs target.name, the node to bind the Pod to",
                ));
            }
            app.store.write("/pods", ns, name, |ctx| {
                let c = ctx
                    .current
                    .ok_or_else(|| ApiError::not_found("", "pods", name))?;
                let bound = c
                    .obj
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !bound.is_empty() {
                    return Err(ApiError::conflict_msg(
                        "",
                        "pods",
                        name,
                        &format!("pod {name} is already assigned to node \"{bound}\""),
                    ));
                }
                let mut p = (*c.obj).clone();
                p["spec"]["nodeName"] = json!(node);
                Ok(super::store::Op::Replace(p))
            })?;
            let ok = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Success", "code": 201,
            });
            Ok(json_response(201, "application/json", &ok))
        }
        (_, m) => Err(ApiError::method_not_allowed(m.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Db%2Cc+d"), "a=b,c d");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("x%41"), "xA");
    }

    #[test]
    fn accept_headers() {
        assert!(acceptable(""));
        assert!(acceptable("application/json"));
        assert!(acceptable(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(acceptable("*/*"));
        assert!(!acceptable("application/vnd.kubernetes.protobuf"));
        assert!(acceptable(
            "application/vnd.kubernetes.protobuf,application/json"
        ));
        assert!(!acceptable("text/html"));
    }
}
