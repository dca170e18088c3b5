//! Which requests are refused before anything else, because a web page in the developer's
//! browser may have sent them: a `Host` that does not name this machine's loopback (DNS
//! rebinding: the page's own name, re-pointed at 127.0.0.1) and any write carrying an `Origin`
//! header (cross-site request forgery: browsers send `Origin`; kube, kubectl and curl do not).
//! Owns that decision; it must not serve anything.

use std::net::{IpAddr, SocketAddr};

use http::header::{HOST, ORIGIN};
use http::{HeaderMap, Method, Uri};

use super::status::ApiError;

/// The Host rule of one sandbox: loopback names and addresses, and the address it listens on
/// (any IP address if it listens on all of them: a rebinding page's Host is always a name).
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    listen: IpAddr,
}

impl Guard {
    /// The rule for a sandbox listening on `listen`.
    pub fn new(listen: SocketAddr) -> Guard {
        Guard {
            listen: listen.ip(),
        }
    }

    /// Whether a `Host` value (with or without a port) names this sandbox.
    pub fn host_allowed(&self, host: &str) -> bool {
        crate::process::loopback::host_names_server(host, self.listen)
    }

    /// `Ok` if the request may go on; otherwise the 403 that says why.
    pub fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        // An absolute-form request target names the host instead of (and before) `Host`.
        let hosts = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .into_iter()
            .chain(
                headers
                    .get_all(HOST)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            );
        for host in hosts {
            let host = host.trim();
            if !self.host_allowed(host) {
                return Err(ApiError::forbidden(format!(
                    "requests for host {host:?} are refused: the sandbox answers only to loopback \
                     names and addresses (localhost, 127.0.0.1, [::1]), so that a web page cannot \
                     reach it by DNS rebinding; use http://127.0.0.1:PORT"
                )));
            }
        }
        if *method != Method::GET
            && *method != Method::HEAD
            && let Some(origin) = headers.get(ORIGIN)
        {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            return Err(ApiError::forbidden(format!(
                "{method} {} with an Origin header ({origin:?}) is refused: browsers send Origin, \
                 and the sandbox takes no writes from web pages (cross-site request forgery); \
                 kube, kubectl and curl send none",
                uri.path()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> Guard {
        Guard::new(SocketAddr::from(([127, 0, 0, 1], 6443)))
    }

    #[test]
    fn loopback_hosts_are_allowed() {
        let g = loopback();
        for h in [
            "localhost",
            "LOCALHOST:6443",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:6443",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:6443",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(g.host_allowed(h), "{h}");
        }
    }

    #[test]
    fn other_hosts_are_refused() {
        let g = loopback();
        for h in [
            "",
            "evil.example",
            "evil.example:6443",
            "localhost.evil.example",
            "evil.localhost.example",
            "127.0.0.1.nip.io",
            "10.0.0.1",
            "0.0.0.0",
            "[::2]:6443",
            "::1",
            "localhost:",
            "localhost:port",
            "localhost:123456",
            "[::1]x",
            "127.1",
        ] {
            assert!(!g.host_allowed(h), "{h}");
        }
    }

    #[test]
    fn the_listen_address_is_allowed() {
        let g = Guard::new(SocketAddr::from(([192, 168, 1, 5], 6443)));
        assert!(g.host_allowed("192.168.1.5:6443"));
        assert!(!g.host_allowed("192.168.1.6:6443"));
        assert!(!g.host_allowed("mybox.lan:6443"));
        let any = Guard::new(SocketAddr::from(([0, 0, 0, 0], 6443)));
        assert!(any.host_allowed("192.168.1.6:6443"));
        assert!(!any.host_allowed("evil.example:6443"));
    }

    #[test]
    fn browser_writes_are_refused() {
        let g = loopback();
        let uri: Uri = "/sandbox/pause".parse().unwrap_or_default();
        let mut h = HeaderMap::new();
        h.insert(HOST, http::HeaderValue::from_static("127.0.0.1:6443"));
        assert!(g.check(&Method::POST, &uri, &h).is_ok());
        h.insert(
            ORIGIN,
            http::HeaderValue::from_static("http://evil.example"),
        );
        let e = g.check(&Method::POST, &uri, &h).err();
        assert_eq!(e.map(|e| e.code), Some(403));
        assert!(g.check(&Method::GET, &uri, &h).is_ok());
        h.insert(HOST, http::HeaderValue::from_static("evil.example"));
        assert_eq!(
            g.check(&Method::GET, &uri, &h).err().map(|e| e.code),
            Some(403)
        );
        let absolute: Uri = "http://evil.example/sandbox/faults"
            .parse()
            .unwrap_or_default();
        h.insert(HOST, http::HeaderValue::from_static("localhost"));
        h.remove(ORIGIN);
        assert_eq!(
            g.check(&Method::GET, &absolute, &h).err().map(|e| e.code),
            Some(403)
        );
    }
}
