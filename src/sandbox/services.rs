//! Service defaults and ClusterIP allocation, as the API server does them on create: type,
//! protocol, target port, and a cluster IP from the loopback range `127.96.0.0/12` (standing
//! for `10.96.0.0/12`), chosen at random and unique; a given one is kept (or refused when
//! taken), `None` is headless. It must not store objects nor route traffic (see
//! [`super::proxy`]).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rand::Rng;
use serde_json::{Value, json};

use super::status::ApiError;

/// The first address of the ClusterIP range.
pub const RANGE_START: Ipv4Addr = Ipv4Addr::new(127, 96, 0, 0);
/// The range's prefix length.
pub const RANGE_PREFIX: u32 = 12;

fn in_range(ip: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - RANGE_PREFIX);
    u32::from(ip) & mask == u32::from(RANGE_START) & mask
}

fn random_ip(used: &HashSet<String>) -> Option<String> {
    let size = 1u32 << (32 - RANGE_PREFIX);
    let base = u32::from(RANGE_START);
    let mut rng = rand::rng();
    let start = rng.random_range(1..size - 1);
    // From a random offset, the first free address (neither the network nor the broadcast).
    (0..size - 2)
        .map(|i| base + 1 + (start - 1 + i) % (size - 2))
        .map(|n| Ipv4Addr::from(n).to_string())
        .find(|ip| !used.contains(ip))
}

/// Fill in what the API server does for a new Service and allocate its cluster IP in `used`.
pub fn admit(svc: &mut Value, name: &str, used: &mut HashSet<String>) -> Result<(), ApiError> {
    let Some(spec) = svc.get_mut("spec").and_then(|s| s.as_object_mut()) else {
        return Ok(());
    };
    let kind = spec
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("ClusterIP")
        .to_string();
    spec.insert("type".into(), json!(kind));
    if kind != "ExternalName" {
        let given = spec
            .get("clusterIP")
            .and_then(|c| c.as_str())
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .or_else(|| {
                spec.get("clusterIPs")
                    .and_then(|c| c.get(0))
                    .and_then(|c| c.as_str())
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
            });
        let ip = match given {
            Some(ip) if ip == "None" => ip,
            Some(ip) => {
                let invalid = |why: String| {
                    ApiError::invalid(
                        "Service",
                        "",
                        name,
                        vec![(
                            "spec.clusterIPs".into(),
                            format!("Invalid value: []string{{\"{ip}\"}}: {why}"),
                        )],
                    )
                };
                let addr: Ipv4Addr = ip.parse().map_err(|_| {
                    invalid("must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into())
                })?;
                if !in_range(addr) {
                    return Err(invalid(format!(
                        "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {RANGE_START}/{RANGE_PREFIX}"
                    )));
                }
                if used.contains(&ip) {
                    return Err(invalid(format!(
                        "failed to allocate IP {ip}: provided IP is already allocated"
                    )));
                }
                ip
            }
            None => random_ip(used).ok_or_else(|| {
                ApiError::new(
                    500,
                    "InternalError",
                    "Internal error occurred: failed to allocate a serviceIP: range is full",
                )
            })?,
        };
        if ip != "None" {
            used.insert(ip.clone());
        }
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
        spec.insert("ipFamilies".into(), json!(["IPv4"]));
        spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
        spec.entry("internalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if let Some(ports) = spec.get_mut("ports").and_then(|p| p.as_array_mut()) {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                p.entry("protocol").or_insert(json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    p.entry("targetPort").or_insert(port);
                }
            }
        }
    }
    Ok(())
}

/// The cluster IP a Service holds, if any.
pub fn cluster_ip(svc: &Value) -> Option<&str> {
    svc.pointer("/spec/clusterIP")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty() && *c != "None")
}

/// Free the cluster IP of a deleted Service.
pub fn release(svc: &Value, used: &mut HashSet<String>) {
    if let Some(ip) = cluster_ip(svc) {
        used.remove(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_are_unique_in_range_kept_when_given_and_refused_when_taken() {
        let mut used = HashSet::new();
        let mut a = json!({ "spec": { "ports": [ { "port": 80 } ] } });
        admit(&mut a, "a", &mut used).expect("allocated");
        let ip: Ipv4Addr = a["spec"]["clusterIP"]
            .as_str()
            .unwrap_or("")
            .parse()
            .expect("an IPv4");
        assert!(in_range(ip), "{ip}");
        assert_eq!(a["spec"]["clusterIPs"], json!([ip.to_string()]));
        assert_eq!(
            a["spec"]["ports"][0],
            json!({ "port": 80, "protocol": "TCP", "targetPort": 80 })
        );
        let mut dup = json!({ "spec": { "clusterIP": ip.to_string() } });
        let e = admit(&mut dup, "dup", &mut used).expect_err("refused");
        assert_eq!(e.code, 422);
        assert!(
            e.message.contains("provided IP is already allocated"),
            "{}",
            e.message
        );
        let mut headless = json!({ "spec": { "clusterIP": "None" } });
        admit(&mut headless, "h", &mut used).expect("headless");
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        let mut outside = json!({ "spec": { "clusterIP": "10.0.0.1" } });
        assert_eq!(
            admit(&mut outside, "o", &mut used).err().map(|e| e.code),
            Some(422)
        );
        release(&a, &mut used);
        let mut again = json!({ "spec": { "clusterIP": ip.to_string() } });
        admit(&mut again, "again", &mut used).expect("free again after release");
    }
}
