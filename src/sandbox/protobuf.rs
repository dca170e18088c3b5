//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as kubectl's imperative
//! commands send them for built-in kinds (`kubectl create namespace`, `create configmap`,
//! `create secret`): the `k8s\0` magic, then a `runtime.Unknown` envelope (type meta and the
//! typed message's bytes), decoded with `k8s-pb`'s generated types and turned into the JSON
//! object the verbs take. Namespaces, ConfigMaps and Secrets (with ObjectMeta) are converted
//! field by field, completely. Deployments are converted with the Pod template fields
//! `kubectl create deployment` and common manifests use (containers with image, command, args,
//! ports, env, resources...); a Pod template that sets any other field (volumes, probes,
//! affinity...) is refused with a 415 rather than stored without it; Services likewise, with
//! the spec fields `kubectl create service` and common manifests set; Pods (`kubectl run`) with
//! the same Pod spec conversion as Deployments' templates. Another kind in protobuf
//! is a 415 that says to send JSON; a body that does not decode is a 400. Owns the envelope and
//! these conversions; it must not store or validate anything (the verbs do, as for JSON).

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta_pb;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use super::meta;
use super::status::ApiError;

/// The Kubernetes protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What every Kubernetes protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

fn bad(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "the body of the request could not be decoded as protobuf: {why}"
    ))
}

/// Decode a protobuf body for the resource `id` into the object as JSON.
pub fn decode(id: &str, body: &[u8]) -> Result<Value, ApiError> {
    let Some(rest) = body.strip_prefix(MAGIC.as_slice()) else {
        return Err(bad(
            "it does not start with the Kubernetes protobuf prefix \"k8s\\x00\"",
        ));
    };
    let unknown = Unknown::decode(rest).map_err(|e| bad(format!("runtime.Unknown: {e}")))?;
    if let Some(enc) = unknown
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(bad(format!("content encoding {enc:?} is not supported")));
    }
    let raw = unknown.raw.unwrap_or_default();
    let type_meta = unknown.type_meta.unwrap_or_default();
    let mut obj = match id {
        "/namespaces" => namespace(core::Namespace::decode(raw.as_slice()).map_err(bad)?),
        "/configmaps" => config_map(core::ConfigMap::decode(raw.as_slice()).map_err(bad)?),
        "/secrets" => secret(core::Secret::decode(raw.as_slice()).map_err(bad)?),
        "apps/deployments" => deployment(apps::Deployment::decode(raw.as_slice()).map_err(bad)?)?,
        "/services" => service(core::Service::decode(raw.as_slice()).map_err(bad)?)?,
        "/pods" => pod(core::Pod::decode(raw.as_slice()).map_err(bad)?)?,
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the logbook sandbox takes protobuf bodies only for Namespaces, ConfigMaps, Pods, \
                 Secrets, Deployments and Services; send this one as JSON or YAML (for \
                 example `kubectl create ... --dry-run=client -o yaml | kubectl apply -f -`), \
                 with \"application/json\" as its content type",
            ));
        }
    };
    if let Some(o) = obj.as_object_mut() {
        for (k, v) in [
            ("apiVersion", type_meta.api_version),
            ("kind", type_meta.kind),
        ] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                o.insert(k.into(), json!(v));
            }
        }
    }
    Ok(obj)
}

/// Insert `v` under `k` unless it is unset or empty (Go's `omitempty`: protobuf from the Go
/// client carries empty strings and zeros for fields it never set).
fn put(m: &mut Map<String, Value>, k: &str, v: Value) {
    let empty = match &v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if !empty {
        m.insert(k.into(), v);
    }
}

fn string_map(m: BTreeMap<String, String>) -> Value {
    Value::Object(m.into_iter().map(|(k, v)| (k, json!(v))).collect())
}

fn bytes_map(m: BTreeMap<String, Vec<u8>>) -> Value {
    Value::Object(
        m.into_iter()
            .map(|(k, v)| (k, json!(meta::base64(&v))))
            .collect(),
    )
}

/// The Unix second of Go's zero `time.Time`, which the Go client may send for "unset".
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// A `metav1.Time` as its JSON form (RFC 3339, seconds), or null when zero.
fn time(t: Option<meta_pb::Time>) -> Value {
    let Some(t) = t else {
        return Value::Null;
    };
    let secs = t.seconds.unwrap_or(0);
    if secs == 0 && t.nanos.unwrap_or(0) == 0 || secs == GO_ZERO_TIME {
        return Value::Null;
    }
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(d) => json!(d.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => Value::Null,
    }
}

fn object_meta(m: Option<meta_pb::ObjectMeta>) -> Value {
    let m = m.unwrap_or_default();
    let mut o = Map::new();
    put(&mut o, "name", json!(m.name));
    put(&mut o, "generateName", json!(m.generate_name));
    put(&mut o, "namespace", json!(m.namespace));
    put(&mut o, "selfLink", json!(m.self_link));
    put(&mut o, "uid", json!(m.uid));
    put(&mut o, "resourceVersion", json!(m.resource_version));
    if let Some(g) = m.generation.filter(|g| *g != 0) {
        o.insert("generation".into(), json!(g));
    }
    put(&mut o, "creationTimestamp", time(m.creation_timestamp));
    put(&mut o, "deletionTimestamp", time(m.deletion_timestamp));
    if let Some(g) = m.deletion_grace_period_seconds {
        o.insert("deletionGracePeriodSeconds".into(), json!(g));
    }
    put(&mut o, "labels", string_map(m.labels));
    put(&mut o, "annotations", string_map(m.annotations));
    let owners: Vec<Value> = m
        .owner_references
        .into_iter()
        .map(|r| {
            let mut x = Map::new();
            put(&mut x, "apiVersion", json!(r.api_version));
            put(&mut x, "kind", json!(r.kind));
            put(&mut x, "name", json!(r.name));
            put(&mut x, "uid", json!(r.uid));
            if let Some(c) = r.controller {
                x.insert("controller".into(), json!(c));
            }
            if let Some(b) = r.block_owner_deletion {
                x.insert("blockOwnerDeletion".into(), json!(b));
            }
            Value::Object(x)
        })
        .collect();
    put(&mut o, "ownerReferences", json!(owners));
    put(&mut o, "finalizers", json!(m.finalizers));
    let managed: Vec<Value> = m
        .managed_fields
        .into_iter()
        .map(|f| {
            let mut x = Map::new();
            put(&mut x, "manager", json!(f.manager));
            put(&mut x, "operation", json!(f.operation));
            put(&mut x, "apiVersion", json!(f.api_version));
            put(&mut x, "time", time(f.time));
            put(&mut x, "fieldsType", json!(f.fields_type));
            if let Some(raw) = f.fields_v1.and_then(|v| v.raw) {
                put(
                    &mut x,
                    "fieldsV1",
                    serde_json::from_slice(&raw).unwrap_or(Value::Null),
                );
            }
            put(&mut x, "subresource", json!(f.subresource));
            Value::Object(x)
        })
        .collect();
    put(&mut o, "managedFields", json!(managed));
    Value::Object(o)
}

fn namespace(n: core::Namespace) -> Value {
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(n.metadata));
    if let Some(spec) = n.spec {
        let mut s = Map::new();
        put(&mut s, "finalizers", json!(spec.finalizers));
        put(&mut o, "spec", Value::Object(s));
    }
    if let Some(status) = n.status {
        let mut s = Map::new();
        put(&mut s, "phase", json!(status.phase));
        let conditions: Vec<Value> = status
            .conditions
            .into_iter()
            .map(|c| {
                let mut x = Map::new();
                put(&mut x, "type", json!(c.r#type));
                put(&mut x, "status", json!(c.status));
                put(&mut x, "lastTransitionTime", time(c.last_transition_time));
                put(&mut x, "reason", json!(c.reason));
                put(&mut x, "message", json!(c.message));
                Value::Object(x)
            })
            .collect();
        put(&mut s, "conditions", json!(conditions));
        put(&mut o, "status", Value::Object(s));
    }
    Value::Object(o)
}

fn config_map(c: core::ConfigMap) -> Value {
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(c.metadata));
    if let Some(i) = c.immutable {
        o.insert("immutable".into(), json!(i));
    }
    put(&mut o, "data", string_map(c.data));
    put(&mut o, "binaryData", bytes_map(c.binary_data));
    Value::Object(o)
}

fn secret(s: core::Secret) -> Value {
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(s.metadata));
    if let Some(i) = s.immutable {
        o.insert("immutable".into(), json!(i));
    }
    put(&mut o, "data", bytes_map(s.data));
    put(&mut o, "stringData", string_map(s.string_data));
    put(&mut o, "type", json!(s.r#type));
    Value::Object(o)
}

/// Whether an encoded message sets nothing: every field zero, empty or itself such a message
/// (the Go client encodes unset non-pointer fields as zeros). Read with prost's wire-format
/// primitives; anything it cannot read counts as set.
fn blank(mut buf: &[u8]) -> bool {
    use prost::encoding::{WireType, decode_key, decode_varint};
    while !buf.is_empty() {
        let Ok((_, wire)) = decode_key(&mut buf) else {
            return false;
        };
        match wire {
            WireType::Varint => {
                if !matches!(decode_varint(&mut buf), Ok(0)) {
                    return false;
                }
            }
            WireType::LengthDelimited => {
                let Ok(len) = decode_varint(&mut buf) else {
                    return false;
                };
                let Ok(len) = usize::try_from(len) else {
                    return false;
                };
                if len > buf.len() {
                    return false;
                }
                let (inner, rest) = buf.split_at(len);
                if !inner.is_empty() && !blank(inner) {
                    return false;
                }
                buf = rest;
            }
            WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                let n = if wire == WireType::SixtyFourBit { 8 } else { 4 };
                if buf.len() < n || buf[..n].iter().any(|b| *b != 0) {
                    return false;
                }
                buf = &buf[n..];
            }
            _ => return false,
        }
    }
    true
}

/// Refuse a message of which fields not converted (`what` names where) are set.
fn nothing_else<M: Message>(rest: &M, what: &str) -> Result<(), ApiError> {
    if blank(&rest.encode_to_vec()) {
        return Ok(());
    }
    Err(ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the logbook sandbox does not convert every field of {what} from protobuf, and this \
             one sets such a field; send it as JSON or YAML (for example with kubectl apply -f)"
        ),
    ))
}

fn opt<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.into(), v.into());
    }
}

fn flag(m: &mut Map<String, Value>, k: &str, v: Option<bool>) {
    if v == Some(true) {
        m.insert(k.into(), json!(true));
    }
}

fn int_or_string(v: Option<k8s_pb::apimachinery::pkg::util::intstr::IntOrString>) -> Value {
    match v {
        None => Value::Null,
        Some(v) if v.r#type == Some(1) => json!(v.str_val.unwrap_or_default()),
        Some(v) => json!(v.int_val.unwrap_or(0)),
    }
}

fn label_selector(s: Option<meta_pb::LabelSelector>) -> Value {
    let Some(s) = s else {
        return Value::Null;
    };
    let mut o = Map::new();
    put(&mut o, "matchLabels", string_map(s.match_labels));
    let exprs: Vec<Value> = s
        .match_expressions
        .into_iter()
        .map(|e| {
            let mut x = Map::new();
            put(&mut x, "key", json!(e.key));
            put(&mut x, "operator", json!(e.operator));
            put(&mut x, "values", json!(e.values));
            Value::Object(x)
        })
        .collect();
    put(&mut o, "matchExpressions", json!(exprs));
    Value::Object(o)
}

fn quantities(m: BTreeMap<String, k8s_pb::apimachinery::pkg::api::resource::Quantity>) -> Value {
    Value::Object(
        m.into_iter()
            .map(|(k, q)| (k, json!(q.string.unwrap_or_default())))
            .collect(),
    )
}

fn key_selector(
    r: Option<core::LocalObjectReference>,
    key: Option<String>,
    optional: Option<bool>,
) -> Value {
    let mut x = Map::new();
    put(&mut x, "name", json!(r.and_then(|r| r.name)));
    put(&mut x, "key", json!(key));
    opt(&mut x, "optional", optional);
    Value::Object(x)
}

fn env_source(mut v: core::EnvVarSource) -> Result<Value, ApiError> {
    let mut o = Map::new();
    if let Some(c) = v.config_map_key_ref.take() {
        o.insert(
            "configMapKeyRef".into(),
            key_selector(c.local_object_reference, c.key, c.optional),
        );
    }
    if let Some(c) = v.secret_key_ref.take() {
        o.insert(
            "secretKeyRef".into(),
            key_selector(c.local_object_reference, c.key, c.optional),
        );
    }
    if let Some(f) = v.field_ref.take() {
        let mut x = Map::new();
        put(&mut x, "apiVersion", json!(f.api_version));
        put(&mut x, "fieldPath", json!(f.field_path));
        o.insert("fieldRef".into(), Value::Object(x));
    }
    nothing_else(&v, "an environment variable's valueFrom")?;
    Ok(Value::Object(o))
}

fn container(mut c: core::Container) -> Result<Value, ApiError> {
    let mut o = Map::new();
    put(&mut o, "name", json!(c.name.take()));
    put(&mut o, "image", json!(c.image.take()));
    put(&mut o, "command", json!(std::mem::take(&mut c.command)));
    put(&mut o, "args", json!(std::mem::take(&mut c.args)));
    put(&mut o, "workingDir", json!(c.working_dir.take()));
    let ports: Vec<Value> = std::mem::take(&mut c.ports)
        .into_iter()
        .map(|p| {
            let mut x = Map::new();
            put(&mut x, "name", json!(p.name));
            if let Some(h) = p.host_port.filter(|h| *h != 0) {
                x.insert("hostPort".into(), json!(h));
            }
            opt(&mut x, "containerPort", p.container_port);
            put(&mut x, "protocol", json!(p.protocol));
            put(&mut x, "hostIP", json!(p.host_ip));
            Value::Object(x)
        })
        .collect();
    put(&mut o, "ports", json!(ports));
    let mut env = Vec::new();
    for e in std::mem::take(&mut c.env) {
        let mut x = Map::new();
        put(&mut x, "name", json!(e.name));
        put(&mut x, "value", json!(e.value));
        if let Some(from) = e.value_from {
            x.insert("valueFrom".into(), env_source(from)?);
        }
        env.push(Value::Object(x));
    }
    put(&mut o, "env", json!(env));
    if let Some(mut r) = c.resources.take() {
        let mut x = Map::new();
        put(&mut x, "limits", quantities(std::mem::take(&mut r.limits)));
        put(
            &mut x,
            "requests",
            quantities(std::mem::take(&mut r.requests)),
        );
        nothing_else(&r, "a container's resources")?;
        o.insert("resources".into(), Value::Object(x));
    }
    put(
        &mut o,
        "terminationMessagePath",
        json!(c.termination_message_path.take()),
    );
    put(
        &mut o,
        "terminationMessagePolicy",
        json!(c.termination_message_policy.take()),
    );
    put(&mut o, "imagePullPolicy", json!(c.image_pull_policy.take()));
    flag(&mut o, "stdin", c.stdin.take());
    flag(&mut o, "stdinOnce", c.stdin_once.take());
    flag(&mut o, "tty", c.tty.take());
    nothing_else(&c, "a container")?;
    Ok(Value::Object(o))
}

fn pod_spec(mut p: core::PodSpec) -> Result<Value, ApiError> {
    let mut o = Map::new();
    let list = |items: Vec<core::Container>| -> Result<Value, ApiError> {
        Ok(Value::Array(
            items
                .into_iter()
                .map(container)
                .collect::<Result<Vec<_>, _>>()?,
        ))
    };
    put(
        &mut o,
        "initContainers",
        list(std::mem::take(&mut p.init_containers))?,
    );
    // Required, so present even when empty.
    o.insert(
        "containers".into(),
        list(std::mem::take(&mut p.containers))?,
    );
    put(&mut o, "restartPolicy", json!(p.restart_policy.take()));
    opt(
        &mut o,
        "terminationGracePeriodSeconds",
        p.termination_grace_period_seconds.take(),
    );
    opt(
        &mut o,
        "activeDeadlineSeconds",
        p.active_deadline_seconds.take(),
    );
    put(&mut o, "dnsPolicy", json!(p.dns_policy.take()));
    put(
        &mut o,
        "nodeSelector",
        string_map(std::mem::take(&mut p.node_selector)),
    );
    put(
        &mut o,
        "serviceAccountName",
        json!(p.service_account_name.take()),
    );
    put(&mut o, "serviceAccount", json!(p.service_account.take()));
    opt(
        &mut o,
        "automountServiceAccountToken",
        p.automount_service_account_token.take(),
    );
    put(&mut o, "nodeName", json!(p.node_name.take()));
    flag(&mut o, "hostNetwork", p.host_network.take());
    flag(&mut o, "hostPID", p.host_pid.take());
    flag(&mut o, "hostIPC", p.host_ipc.take());
    opt(
        &mut o,
        "shareProcessNamespace",
        p.share_process_namespace.take(),
    );
    let secrets: Vec<Value> = std::mem::take(&mut p.image_pull_secrets)
        .into_iter()
        .map(|r| json!({ "name": r.name.unwrap_or_default() }))
        .collect();
    put(&mut o, "imagePullSecrets", json!(secrets));
    put(&mut o, "hostname", json!(p.hostname.take()));
    put(&mut o, "subdomain", json!(p.subdomain.take()));
    put(&mut o, "schedulerName", json!(p.scheduler_name.take()));
    put(
        &mut o,
        "priorityClassName",
        json!(p.priority_class_name.take()),
    );
    opt(&mut o, "priority", p.priority.take());
    put(
        &mut o,
        "runtimeClassName",
        json!(p.runtime_class_name.take()),
    );
    opt(&mut o, "enableServiceLinks", p.enable_service_links.take());
    put(
        &mut o,
        "preemptionPolicy",
        json!(p.preemption_policy.take()),
    );
    opt(&mut o, "setHostnameAsFQDN", p.set_hostname_as_fqdn.take());
    opt(&mut o, "hostUsers", p.host_users.take());
    nothing_else(&p, "a Pod template's spec")?;
    Ok(Value::Object(o))
}

fn deployment(d: apps::Deployment) -> Result<Value, ApiError> {
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(d.metadata));
    // `status` is the server's: dropped on create, kept from the stored object on update.
    let Some(spec) = d.spec else {
        return Ok(Value::Object(o));
    };
    let mut s = Map::new();
    opt(&mut s, "replicas", spec.replicas);
    put(&mut s, "selector", label_selector(spec.selector));
    if let Some(t) = spec.template {
        let mut x = Map::new();
        let meta = object_meta(t.metadata);
        put(&mut x, "metadata", meta);
        if let Some(ps) = t.spec {
            x.insert("spec".into(), pod_spec(ps)?);
        }
        s.insert("template".into(), Value::Object(x));
    }
    if let Some(st) = spec.strategy {
        let mut x = Map::new();
        put(&mut x, "type", json!(st.r#type));
        if let Some(ru) = st.rolling_update {
            let mut r = Map::new();
            put(&mut r, "maxUnavailable", int_or_string(ru.max_unavailable));
            put(&mut r, "maxSurge", int_or_string(ru.max_surge));
            x.insert("rollingUpdate".into(), Value::Object(r));
        }
        put(&mut s, "strategy", Value::Object(x));
    }
    if let Some(m) = spec.min_ready_seconds.filter(|m| *m != 0) {
        s.insert("minReadySeconds".into(), json!(m));
    }
    opt(&mut s, "revisionHistoryLimit", spec.revision_history_limit);
    flag(&mut s, "paused", spec.paused);
    opt(
        &mut s,
        "progressDeadlineSeconds",
        spec.progress_deadline_seconds,
    );
    o.insert("spec".into(), Value::Object(s));
    Ok(Value::Object(o))
}

/// A Pod as `kubectl run` sends it: metadata and the spec fields a Pod template may carry
/// here; `status` is the server's (the node's).
fn pod(p: core::Pod) -> Result<Value, ApiError> {
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(p.metadata));
    if let Some(spec) = p.spec {
        o.insert("spec".into(), pod_spec(spec)?);
    }
    Ok(Value::Object(o))
}

fn service(sv: core::Service) -> Result<Value, ApiError> {
    let mut o = Map::new();
    o.insert("metadata".into(), object_meta(sv.metadata));
    // `status` is the server's, as for Deployments.
    let Some(mut p) = sv.spec else {
        return Ok(Value::Object(o));
    };
    let mut s = Map::new();
    let ports: Vec<Value> = std::mem::take(&mut p.ports)
        .into_iter()
        .map(|port| {
            let mut x = Map::new();
            put(&mut x, "name", json!(port.name));
            put(&mut x, "protocol", json!(port.protocol));
            put(&mut x, "appProtocol", json!(port.app_protocol));
            opt(&mut x, "port", port.port);
            put(&mut x, "targetPort", int_or_string(port.target_port));
            if let Some(n) = port.node_port.filter(|n| *n != 0) {
                x.insert("nodePort".into(), json!(n));
            }
            Value::Object(x)
        })
        .collect();
    put(&mut s, "ports", json!(ports));
    put(
        &mut s,
        "selector",
        string_map(std::mem::take(&mut p.selector)),
    );
    put(&mut s, "clusterIP", json!(p.cluster_ip.take()));
    put(
        &mut s,
        "clusterIPs",
        json!(std::mem::take(&mut p.cluster_ips)),
    );
    put(&mut s, "type", json!(p.r#type.take()));
    put(
        &mut s,
        "externalIPs",
        json!(std::mem::take(&mut p.external_ips)),
    );
    put(&mut s, "sessionAffinity", json!(p.session_affinity.take()));
    put(&mut s, "loadBalancerIP", json!(p.load_balancer_ip.take()));
    put(
        &mut s,
        "loadBalancerSourceRanges",
        json!(std::mem::take(&mut p.load_balancer_source_ranges)),
    );
    put(&mut s, "externalName", json!(p.external_name.take()));
    put(
        &mut s,
        "externalTrafficPolicy",
        json!(p.external_traffic_policy.take()),
    );
    if let Some(n) = p.health_check_node_port.take().filter(|n| *n != 0) {
        s.insert("healthCheckNodePort".into(), json!(n));
    }
    flag(
        &mut s,
        "publishNotReadyAddresses",
        p.publish_not_ready_addresses.take(),
    );
    put(
        &mut s,
        "ipFamilies",
        json!(std::mem::take(&mut p.ip_families)),
    );
    put(&mut s, "ipFamilyPolicy", json!(p.ip_family_policy.take()));
    opt(
        &mut s,
        "allocateLoadBalancerNodePorts",
        p.allocate_load_balancer_node_ports.take(),
    );
    put(
        &mut s,
        "loadBalancerClass",
        json!(p.load_balancer_class.take()),
    );
    put(
        &mut s,
        "internalTrafficPolicy",
        json!(p.internal_traffic_policy.take()),
    );
    put(
        &mut s,
        "trafficDistribution",
        json!(p.traffic_distribution.take()),
    );
    nothing_else(&p, "a Service's spec")?;
    o.insert("spec".into(), Value::Object(s));
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(u.encode_to_vec());
        out
    }

    #[test]
    fn a_config_map_and_a_secret() {
        let cm = core::ConfigMap {
            metadata: Some(meta_pb::ObjectMeta {
                name: Some("settings".into()),
                namespace: Some(String::new()),
                creation_timestamp: Some(meta_pb::Time::default()),
                labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            }),
            data: [("greeting".to_string(), "hello".to_string())].into(),
            binary_data: [("b".to_string(), vec![0xff, 0])].into(),
            immutable: None,
        };
        let v = decode(
            "/configmaps",
            &envelope("v1", "ConfigMap", cm.encode_to_vec()),
        )
        .expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "labels": {"app": "web"}},
                "data": {"greeting": "hello"}, "binaryData": {"b": "/wA="}})
        );
        let s = core::Secret {
            metadata: Some(meta_pb::ObjectMeta {
                name: Some("creds".into()),
                ..Default::default()
            }),
            data: [("password".to_string(), b"hunter2".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let v = decode("/secrets", &envelope("v1", "Secret", s.encode_to_vec())).expect("decodes");
        assert_eq!(v["data"]["password"], "aHVudGVyMg==");
        assert_eq!(v["type"], "Opaque");
    }

    #[test]
    fn malformed_and_unsupported_bodies() {
        assert_eq!(decode("/namespaces", b"{}").map_err(|e| e.code), Err(400));
        assert_eq!(
            decode("/namespaces", b"k8s\0\xff\xff\xff").map_err(|e| e.code),
            Err(400)
        );
        let garbage = envelope("v1", "Namespace", vec![0x0a, 0x05, 0x01]);
        assert_eq!(
            decode("/namespaces", &garbage).map_err(|e| e.code),
            Err(400)
        );
        let l = envelope("coordination.k8s.io/v1", "Lease", Vec::new());
        assert_eq!(
            decode("coordination.k8s.io/leases", &l).map_err(|e| e.code),
            Err(415)
        );
    }

    #[test]
    fn a_pod_as_kubectl_run_sends_it() {
        let p = core::Pod {
            metadata: Some(meta_pb::ObjectMeta {
                name: Some("hello".into()),
                labels: [("run".to_string(), "hello".to_string())].into(),
                ..Default::default()
            }),
            spec: Some(core::PodSpec {
                containers: vec![core::Container {
                    name: Some("hello".into()),
                    image: Some("busybox".into()),
                    command: vec!["sh".into()],
                    args: vec!["-c".into(), "echo hi".into()],
                    resources: Some(core::ResourceRequirements::default()),
                    ..Default::default()
                }],
                restart_policy: Some("Never".into()),
                dns_policy: Some("ClusterFirst".into()),
                ..Default::default()
            }),
            status: Some(core::PodStatus::default()),
        };
        let v = decode("/pods", &envelope("v1", "Pod", p.encode_to_vec())).expect("decodes");
        assert_eq!(v["kind"], "Pod");
        assert_eq!(v["metadata"]["labels"]["run"], "hello");
        assert_eq!(v["spec"]["restartPolicy"], "Never");
        assert_eq!(v["spec"]["containers"][0]["args"][1], "echo hi");
        assert!(v.get("status").is_none());
    }

    #[test]
    fn deployments_convert_what_they_can_and_refuse_the_rest() {
        let container = core::Container {
            name: Some("web".into()),
            image: Some("nginx".into()),
            ports: vec![core::ContainerPort {
                container_port: Some(80),
                protocol: Some(String::new()),
                ..Default::default()
            }],
            resources: Some(core::ResourceRequirements::default()),
            stdin: Some(false),
            termination_message_path: Some(String::new()),
            ..Default::default()
        };
        let mut d = apps::Deployment {
            metadata: Some(meta_pb::ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(2),
                selector: Some(meta_pb::LabelSelector {
                    match_labels: [("app".to_string(), "web".to_string())].into(),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta_pb::ObjectMeta::default()),
                    spec: Some(core::PodSpec {
                        containers: vec![container],
                        host_network: Some(false),
                        dns_policy: Some(String::new()),
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy::default()),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus::default()),
        };
        let v = decode(
            "apps/deployments",
            &envelope("apps/v1", "Deployment", d.encode_to_vec()),
        )
        .expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [{"name": "web", "image": "nginx",
                        "ports": [{"containerPort": 80}], "resources": {}}]}}}})
        );
        // A field not converted (a volume) is refused, not dropped.
        if let Some(ps) = d
            .spec
            .as_mut()
            .and_then(|s| s.template.as_mut())
            .and_then(|t| t.spec.as_mut())
        {
            ps.volumes.push(core::Volume {
                name: Some("data".into()),
                ..Default::default()
            });
        }
        let refused = decode(
            "apps/deployments",
            &envelope("apps/v1", "Deployment", d.encode_to_vec()),
        );
        assert_eq!(refused.map_err(|e| e.code), Err(415));
    }
}
