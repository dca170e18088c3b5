//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as kubectl's imperative
//! commands send them for built-in kinds (`kubectl create namespace`, `create configmap`,
//! `create secret`): the `k8s\0` magic, then a `runtime.Unknown` envelope (type meta and the
//! typed message's bytes), decoded with `k8s-pb`'s generated types and turned into the JSON
//! object the verbs take. Kinds are converted field by field, completely: Namespaces,
//! ConfigMaps and Secrets, with ObjectMeta. Another kind in protobuf is a 415 that says to send
//! JSON; a body that does not decode is a 400. Owns the envelope and these conversions; it must
//! not store or validate anything (the verbs do, as for JSON).

use std::collections::BTreeMap;

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

/// The kinds whose protobuf bodies are understood, by resource id (`group/plural`).
pub const KINDS: [&str; 3] = ["/namespaces", "/configmaps", "/secrets"];

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
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the logbook sandbox takes protobuf bodies only for Namespaces, ConfigMaps \
                 and Secrets; send this one as JSON or YAML (for example `kubectl create ... \
                 --dry-run=client -o yaml | kubectl apply -f -`), with \"application/json\" \
                 as its content type",
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
        let d = envelope("apps/v1", "Deployment", Vec::new());
        assert_eq!(decode("apps/deployments", &d).map_err(|e| e.code), Err(415));
    }
}
