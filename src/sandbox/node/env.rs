//! A container's environment as the kubelet builds it: the Kubernetes service variables,
//! `envFrom`, `env` (values with `$(VAR)` expansion, Secret and ConfigMap keys, `fieldRef`), and
//! `$(VAR)` expansion of `command`/`args`. Reads Secrets, ConfigMaps and Services from the store;
//! it must not write anything.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::meta;
use super::super::store::Store;

/// Why a container's configuration cannot be built (the kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Expand `$(VAR)` references as the kubelet does: `$$` is a literal `$`, an unknown variable
/// is left as written, an unclosed `$(` too.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' || i + 1 >= chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match chars[i + 1] {
            '$' => {
                out.push('$');
                i += 2;
            }
            '(' => match chars[i + 2..].iter().position(|c| *c == ')') {
                Some(len) => {
                    let name: String = chars[i + 2..i + 2 + len].iter().collect();
                    match lookup(&name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(&name);
                            out.push(')');
                        }
                    }
                    i += 3 + len;
                }
                None => {
                    out.extend(&chars[i..]);
                    i = chars.len();
                }
            },
            c => {
                out.push('$');
                out.push(c);
                i += 2;
            }
        }
    }
    out
}

/// What `fieldRef` may name.
pub struct PodFields<'a> {
    /// The Pod.
    pub pod: &'a Value,
    /// Its address.
    pub pod_ip: &'a str,
    /// The node's address.
    pub host_ip: &'a str,
}

fn field(f: &PodFields<'_>, path: &str) -> Result<String, ConfigError> {
    let p = f.pod;
    Ok(match path {
        "metadata.name" => meta::name(p).to_string(),
        "metadata.namespace" => meta::namespace(p).to_string(),
        "metadata.uid" => meta::uid(p).to_string(),
        "spec.nodeName" => p
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        "spec.serviceAccountName" => p
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string(),
        "status.podIP" | "status.podIPs" => f.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => f.host_ip.to_string(),
        other => {
            let label = other
                .strip_prefix("metadata.labels['")
                .map(|r| ("labels", r))
                .or_else(|| {
                    other
                        .strip_prefix("metadata.annotations['")
                        .map(|r| ("annotations", r))
                });
            match label.and_then(|(m, r)| r.strip_suffix("']").map(|k| (m, k))) {
                Some((m, k)) => p
                    .pointer(&format!("/metadata/{m}"))
                    .and_then(|l| l.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                None => {
                    return Err(ConfigError(format!(
                        "unsupported fieldRef fieldPath {other:?}"
                    )));
                }
            }
        }
    })
}

/// The keys of a Secret (decoded) or ConfigMap, or why they cannot be read.
fn source_data(
    store: &Store,
    ns: &str,
    secret: bool,
    name: &str,
) -> Option<BTreeMap<String, String>> {
    let key = if secret { "/secrets" } else { "/configmaps" };
    let obj = store.get(key, ns, name)?;
    let mut out = BTreeMap::new();
    if let Some(d) = obj.obj.get("data").and_then(Value::as_object) {
        for (k, v) in d {
            let s = v.as_str().unwrap_or_default();
            let s = if secret {
                super::unbase64(s)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            } else {
                s.to_string()
            };
            out.insert(k.clone(), s);
        }
    }
    if !secret && let Some(d) = obj.obj.get("binaryData").and_then(Value::as_object) {
        for (k, v) in d {
            let b = super::unbase64(v.as_str().unwrap_or_default()).unwrap_or_default();
            out.insert(k.clone(), String::from_utf8_lossy(&b).into_owned());
        }
    }
    Some(out)
}

fn key_ref(
    store: &Store,
    ns: &str,
    secret: bool,
    r: &Value,
) -> Result<Option<String>, ConfigError> {
    let kind = if secret { "secret" } else { "configmap" };
    let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
    let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
    let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
    match source_data(store, ns, secret, name) {
        None if optional => Ok(None),
        None => Err(ConfigError(format!("{kind} \"{name}\" not found"))),
        Some(d) => match d.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(ConfigError(format!(
                "couldn't find key {key} in {} {ns}/{name}",
                if secret { "Secret" } else { "ConfigMap" }
            ))),
        },
    }
}

/// The service environment variables: `KUBERNETES_SERVICE_HOST/PORT` for the sandbox itself
/// and, unless the Pod turns service links off, `<NAME>_SERVICE_HOST/PORT` (and the Docker
/// link style `<NAME>_PORT...`) for each Service of its namespace with a cluster IP.
pub fn service_env(store: &Store, pod: &Value, api: std::net::SocketAddr) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let ns = meta::namespace(pod);
    let links = pod
        .pointer("/spec/enableServiceLinks")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if links {
        let mut services: Vec<_> = store.all("/services", Some(ns));
        services.sort_by(|a, b| meta::name(&a.obj).cmp(meta::name(&b.obj)));
        for s in services {
            let ip = s
                .obj
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if ip.is_empty() || ip == "None" {
                continue;
            }
            let name = meta::name(&s.obj).to_uppercase().replace('-', "_");
            let ports = s
                .obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
            for (i, p) in ports.iter().enumerate() {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                let proto = p
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
                    .to_string();
                if i == 0 {
                    out.push((format!("{name}_SERVICE_PORT"), port.to_string()));
                    out.push((
                        format!("{name}_PORT"),
                        format!("{}://{ip}:{port}", proto.to_lowercase()),
                    ));
                }
                if let Some(pn) = p.get("name").and_then(Value::as_str) {
                    let pn = pn.to_uppercase().replace('-', "_");
                    out.push((format!("{name}_SERVICE_PORT_{pn}"), port.to_string()));
                }
                let base = format!("{name}_PORT_{port}_{proto}");
                out.push((
                    base.clone(),
                    format!("{}://{ip}:{port}", proto.to_lowercase()),
                ));
                out.push((format!("{base}_PROTO"), proto.to_lowercase()));
                out.push((format!("{base}_PORT"), port.to_string()));
                out.push((format!("{base}_ADDR"), ip.to_string()));
            }
        }
    }
    let (host, port) = (api.ip().to_string(), api.port().to_string());
    out.push(("KUBERNETES_SERVICE_HOST".into(), host.clone()));
    out.push(("KUBERNETES_SERVICE_PORT".into(), port.clone()));
    out.push(("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone()));
    out.push(("KUBERNETES_PORT".into(), format!("tcp://{host}:{port}")));
    out
}

/// A container's variables from `envFrom` then `env`, after `base` (the service variables),
/// in the kubelet's order: later definitions win, `env` values expand earlier ones.
pub fn container_env(
    store: &Store,
    fields: &PodFields<'_>,
    container: &Value,
    base: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = meta::namespace(fields.pod);
    let mut vars: Vec<(String, String)> = base;
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(x, _)| *x != k);
        vars.push((k, v));
    };
    for from in container
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = from.get("prefix").and_then(Value::as_str).unwrap_or("");
        let (secret, r) = match (from.get("secretRef"), from.get("configMapRef")) {
            (Some(r), _) => (true, r),
            (None, Some(r)) => (false, r),
            _ => continue,
        };
        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
        let optional = r.get("optional").and_then(Value::as_bool).unwrap_or(false);
        match source_data(store, ns, secret, name) {
            Some(d) => {
                for (k, v) in d {
                    set(&mut vars, format!("{prefix}{k}"), v);
                }
            }
            None if optional => {}
            None => {
                let kind = if secret { "secret" } else { "configmap" };
                return Err(ConfigError(format!("{kind} \"{name}\" not found")));
            }
        }
    }
    for e in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            let known = vars.clone();
            Some(expand(v, &|n| {
                known
                    .iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
            }))
        } else if let Some(from) = e.get("valueFrom") {
            if let Some(r) = from.get("secretKeyRef") {
                key_ref(store, ns, true, r)?
            } else if let Some(r) = from.get("configMapKeyRef") {
                key_ref(store, ns, false, r)?
            } else if let Some(f) = from.get("fieldRef") {
                let path = f.get("fieldPath").and_then(Value::as_str).unwrap_or("");
                Some(field(fields, path)?)
            } else if from.get("resourceFieldRef").is_some() {
                Some("0".to_string())
            } else {
                None
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            set(&mut vars, name.to_string(), v);
        }
    }
    Ok(vars)
}

/// `command` and `args` after `$(VAR)` expansion with the container's variables.
pub fn expand_all(items: &[String], vars: &[(String, String)]) -> Vec<String> {
    let lookup = |n: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    items.iter().map(|s| expand(s, &lookup)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(n: &str) -> Option<String> {
        match n {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_the_kubelet() {
        assert_eq!(expand("$(A)-x", &lookup), "alpha-x");
        assert_eq!(expand("$(MISSING)", &lookup), "$(MISSING)");
        assert_eq!(expand("$$(A)", &lookup), "$(A)");
        assert_eq!(expand("$$", &lookup), "$");
        assert_eq!(expand("a$(EMPTY)b", &lookup), "ab");
        assert_eq!(expand("$(A", &lookup), "$(A");
        assert_eq!(expand("$HOME", &lookup), "$HOME");
        assert_eq!(expand("cost: 5$", &lookup), "cost: 5$");
        assert_eq!(expand("ünï$(A)çødé", &lookup), "ünïalphaçødé");
    }

    #[test]
    fn env_values_see_earlier_ones_and_refs_resolve() {
        let store = Store::new(100, 1 << 20, 100);
        let pod = serde_json::json!({
            "metadata": { "name": "p", "namespace": "default", "uid": "u1" }
        });
        let c = serde_json::json!({ "env": [
            { "name": "X", "value": "x" },
            { "name": "Y", "value": "$(X)-y-$(Z)" },
            { "name": "Z", "value": "z" },
            { "name": "NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
            { "name": "IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
            { "name": "OPT", "valueFrom": { "secretKeyRef": { "name": "none", "key": "k", "optional": true } } },
        ]});
        let f = PodFields {
            pod: &pod,
            pod_ip: "127.10.0.1",
            host_ip: "127.0.0.1",
        };
        let vars = container_env(&store, &f, &c, vec![]).expect("env");
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Y"), Some("x-y-$(Z)"));
        assert_eq!(get("NAME"), Some("p"));
        assert_eq!(get("IP"), Some("127.10.0.1"));
        assert_eq!(get("OPT"), None);
        let missing = serde_json::json!({ "env": [
            { "name": "S", "valueFrom": { "secretKeyRef": { "name": "db", "key": "password" } } },
        ]});
        let e = container_env(&store, &f, &missing, vec![]).expect_err("missing secret");
        assert_eq!(e.0, "secret \"db\" not found");
        let args = expand_all(&["echo $(NAME) $$(NAME)".to_string()], &vars);
        assert_eq!(args, vec!["echo p $(NAME)"]);
    }
}
