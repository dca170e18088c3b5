//! Which UI requests are refused before anything else: a `Host` that does not name this server
//! (a web page re-pointing its own name at it: DNS rebinding) and a POST from another origin.
//! Owns that decision; it must not serve anything.

use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Method, Uri};
use std::net::{IpAddr, SocketAddr};

/// The Host rule of one UI server: loopback names and addresses, and the address it listens on
/// (any IP address when it listens on all of them: a rebinding page's Host is a name).
#[derive(Debug, Clone, Copy)]
pub struct HostGuard {
    listen: IpAddr,
}

impl HostGuard {
    /// The rule for a server listening on `listen`.
    pub fn new(listen: SocketAddr) -> HostGuard {
        HostGuard {
            listen: listen.ip(),
        }
    }

    /// Whether a `Host` value (with or without a port) names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        crate::process::loopback::host_names_server(host, self.listen)
    }

    /// `Ok` if the request may go on; otherwise why not, in a sentence.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap, method: &Method) -> Result<(), String> {
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
        let mut first = None;
        for host in hosts {
            let host = host.trim().to_string();
            if !self.host_allowed(&host) {
                return Err(format!(
                    "requests for host {host:?} are refused: logbook ui answers only to loopback \
                     names and addresses (localhost, 127.0.0.1, [::1]) and the address it \
                     listens on, so that a web page cannot reach it by DNS rebinding; open it as \
                     http://127.0.0.1:PORT (or the address it printed at start)"
                ));
            }
            first.get_or_insert(host);
        }
        if *method != Method::GET
            && *method != Method::HEAD
            && let Some(origin) = headers.get(ORIGIN)
        {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            let same = first
                .as_deref()
                .is_some_and(|h| origin.strip_prefix("http://").is_some_and(|o| o == h));
            if !same {
                return Err(format!(
                    "{method} from origin {origin:?} is refused: logbook ui takes posts only \
                     from its own pages"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_pass_and_others_do_not() {
        let g = HostGuard::new("127.0.0.1:8080".parse().expect("an address"));
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "127.0.0.2",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:8080",
            "",
            "::1",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let any = HostGuard::new("0.0.0.0:8080".parse().expect("an address"));
        assert!(any.host_allowed("10.0.0.1:8080"));
        assert!(!any.host_allowed("evil.example:8080"));
    }
}
