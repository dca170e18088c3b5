//! `logbook ui` in-process for tests and benches: the server on a free loopback port, on a
//! runtime of its own (stopped on drop), and a real HTTP client to ask it. No assertions.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::path::Path;
use std::time::Duration;

/// A UI server over one log, listening on 127.0.0.1:PORT until dropped.
pub struct UiServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    rt: tokio::runtime::Runtime,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// An answer: status, content type and body text.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics, naming the body, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl UiServer {
    /// Serves `log` (which need not exist: the UI then answers with errors).
    pub fn start(log: &Path) -> UiServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("its address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let log = log.to_path_buf();
        rt.spawn(async move {
            let _ = logbook::ui::serve(listener, log, async {
                let _ = stopped.await;
            })
            .await;
        });
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        UiServer {
            url: format!("http://{addr}"),
            addr,
            rt,
            client,
            stop: Some(stop),
        }
    }

    /// `GET path` with the usual Host.
    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, None, &[])
    }

    /// `POST path` with `body`.
    pub fn post(&self, path: &str, body: &str) -> Answer {
        self.request("POST", path, Some(body), &[])
    }

    /// A request with extra headers (a `host` header replaces the usual one), answered within
    /// 30 s.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
            .expect("a request");
        self.rt.block_on(async {
            let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
                .await
                .unwrap_or_else(|_| panic!("{method} {path}: no answer within 30 s"))
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"))
                .to_bytes();
            Answer {
                status,
                content_type,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            }
        })
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
