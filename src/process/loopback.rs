//! The `Host` rule of the HTTP servers logbook serves on loopback (the sandbox, `logbook ui`):
//! which names a request may give, so a web page cannot reach them by DNS rebinding. Decides only.

use std::net::IpAddr;

/// Whether a `Host` value (with or without a port) names a server listening on `listen`:
/// `localhost`, a loopback address, or `listen` itself (any IP address when `listen` is
/// unspecified: a rebinding page's Host is a name). A malformed port refuses it.
pub fn host_names_server(host: &str, listen: IpAddr) -> bool {
    let Some(name) = strip_port(host) else {
        return false;
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let ip = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => name.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    };
    let Some(ip) = ip else {
        return false;
    };
    let ip = ip.to_canonical();
    ip.is_loopback() || listen.is_unspecified() || ip == listen.to_canonical()
}

/// `name:port` → `name` (`[v6]:port` → `[v6]`); `None` when the port is not 1 to 5 digits.
fn strip_port(host: &str) -> Option<&str> {
    let at = if host.starts_with('[') {
        host.find(']')? + 1
    } else {
        host.find(':').unwrap_or(host.len())
    };
    let (name, port) = host.split_at(at);
    match port.strip_prefix(':') {
        None if port.is_empty() => Some(name),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(name)
        }
        _ => None,
    }
}
