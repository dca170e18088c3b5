//! Watch streams: chunked JSON `WatchEvent`s from a resourceVersion, bookmarks, 410 Gone.
//! Owns what a watcher receives and when its stream ends; it must not change objects.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::convert;
use super::faults::Faults;
use super::meta;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Change, EventType, Signal, Store, Stored};
use super::verbs::{Params, Target, selectors};

/// How a watch was asked for.
struct Options {
    labels: LabelSelector,
    fields: FieldSelector,
    bookmarks: bool,
    initial_end: bool,
}

fn flag(p: &Params, k: &str) -> bool {
    matches!(p.get(k).map(String::as_str), Some("true" | "1"))
}

struct State {
    target: Target,
    api_version: String,
    opts: Options,
    pending: VecDeque<Bytes>,
    rx: Option<broadcast::Receiver<Signal>>,
    last_rv: u64,
    sent: u64,
    limit: Option<u64>,
    deadline: Instant,
    bookmark_every: Duration,
    next_bookmark: Instant,
    done: bool,
    faults: Faults,
}

fn line(kind: &str, object: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(object.len() + 32);
    b.put_slice(b"{\"type\":\"");
    b.put_slice(kind.as_bytes());
    b.put_slice(b"\",\"object\":");
    b.put_slice(object);
    b.put_slice(b"}\n");
    b.freeze()
}

fn error_line(e: &ApiError) -> Bytes {
    let v = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    line("ERROR", &v)
}

impl State {
    fn matches(&self, obj: &Value) -> bool {
        self.opts.labels.matches(obj)
            && self.opts.fields.matches(obj)
            && self
                .target
                .name
                .as_deref()
                .is_none_or(|n| n == meta::name(obj))
    }

    fn object_bytes(&self, obj: &Value, json: &Bytes) -> Bytes {
        let rtype = &self.target.rtype;
        if !convert::needs_conversion(rtype, &self.api_version, obj) {
            return json.clone();
        }
        let o = convert::to_served(rtype, &self.api_version, obj);
        Bytes::from(serde_json::to_vec(&o).unwrap_or_default())
    }

    fn bookmark(&self, initial_end: bool) -> Bytes {
        let mut metadata = json!({ "resourceVersion": self.last_rv.to_string() });
        if initial_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let obj = json!({
            "kind": self.target.rtype.kind,
            "apiVersion": self.api_version,
            "metadata": metadata,
        });
        line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
    }

    fn initial(&mut self, items: &[Stored]) {
        for s in items {
            if self.matches(&s.obj) {
                let b = self.object_bytes(&s.obj, &s.json);
                self.pending.push_back(line("ADDED", &b));
            }
        }
    }

    /// Queue a change if this watcher should see it; returns whether an event was queued.
    fn push(&mut self, c: &Change) -> bool {
        if c.rv <= self.last_rv {
            return false;
        }
        let key = self.target.rtype.key();
        let relevant = c.key == key
            && (self.target.namespace.is_empty() || c.namespace == self.target.namespace);
        self.last_rv = c.rv;
        if !relevant {
            return false;
        }
        let now = self.matches(&c.object);
        let kind = match c.kind {
            EventType::Added if now => "ADDED",
            EventType::Deleted if now => "DELETED",
            EventType::Modified => {
                let before = c.old.as_ref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return false,
                }
            }
            _ => return false,
        };
        let b = self.object_bytes(&c.object, &c.json);
        self.pending.push_back(line(kind, &b));
        true
    }

    fn count(&mut self) {
        self.sent += 1;
        if self.limit.is_some_and(|n| self.sent >= n) {
            self.done = true;
        }
    }
}

/// Start a watch: the events a client gets, as a stream of newline-delimited JSON chunks.
pub fn start(
    store: &Arc<Store>,
    faults: &Faults,
    target: Target,
    p: &Params,
    bookmark_every: Duration,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ApiError> {
    let (labels, fields) = selectors(&target, p)?;
    let timeout = match p.get("timeoutSeconds").map(String::as_str) {
        None | Some("") => Duration::from_secs(1800),
        Some(s) => Duration::from_secs(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {s:?}")))?,
        ),
    };
    let rv = p.get("resourceVersion").cloned().unwrap_or_default();
    let send_initial = flag(p, "sendInitialEvents");
    let opts = Options {
        labels,
        fields,
        bookmarks: flag(p, "allowWatchBookmarks"),
        initial_end: send_initial,
    };
    let now = Instant::now();
    let mut st = State {
        api_version: target.rtype.api_version(&target.version),
        target,
        opts,
        pending: VecDeque::new(),
        rx: None,
        last_rv: 0,
        sent: 0,
        limit: faults.watch_limit(),
        deadline: now + timeout,
        bookmark_every,
        next_bookmark: now + bookmark_every,
        done: false,
        faults: faults.clone(),
    };
    let key = st.target.rtype.key();
    let ns = (!st.target.namespace.is_empty()).then(|| st.target.namespace.clone());
    if rv.is_empty() || rv == "0" || send_initial {
        if !rv.is_empty() && rv != "0" && rv.parse::<u64>().is_err() {
            return Err(ApiError::bad_request(format!(
                "invalid resource version: {rv:?}"
            )));
        }
        let (items, at, rx) = store.snapshot(&key, ns.as_deref());
        st.last_rv = at;
        st.initial(&items);
        if st.opts.initial_end {
            let b = st.bookmark(true);
            st.pending.push_back(b);
        }
        st.rx = Some(rx);
    } else {
        let from: u64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
        match store.watch_from(from) {
            Ok((backlog, rx)) => {
                st.last_rv = from;
                for c in backlog {
                    if st.push(&c) {
                        st.count();
                        if st.done {
                            break;
                        }
                    }
                }
                st.rx = Some(rx);
            }
            Err(e) => {
                // As the real server does: the watch starts, then says 410 and ends.
                st.pending.push_back(error_line(&e));
                st.done = true;
            }
        }
    }
    Ok(futures::stream::unfold(st, next))
}

async fn next(mut st: State) -> Option<(Result<Bytes, Infallible>, State)> {
    loop {
        if let Some(b) = st.pending.pop_front() {
            st.faults.wait_unpaused().await;
            return Some((Ok(b), st));
        }
        if st.done {
            return None;
        }
        let rx = st.rx.as_mut()?;
        let bookmarks = st.opts.bookmarks;
        tokio::select! {
            _ = tokio::time::sleep_until(st.deadline) => {
                if bookmarks {
                    let b = st.bookmark(false);
                    st.pending.push_back(b);
                }
                st.done = true;
            }
            _ = tokio::time::sleep_until(st.next_bookmark), if bookmarks => {
                let b = st.bookmark(false);
                st.pending.push_back(b);
                st.next_bookmark = Instant::now() + st.bookmark_every;
            }
            msg = rx.recv() => match msg {
                Ok(Signal::Change(c)) => {
                    if st.push(&c) {
                        st.count();
                    }
                }
                // Compaction, a lagging watcher or shutdown: the client resumes from its
                // last resourceVersion, as it does when a real server drops a watch.
                Ok(Signal::CloseAll) | Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                    st.done = true;
                }
            }
        }
    }
}
