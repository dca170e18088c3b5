//! The REST verbs on objects: get, list, create, update, patch, apply, delete, deletecollection.
//! Owns request semantics (preconditions, subresources, defaults); it must not parse URLs or
//! speak HTTP, and leaves watch to `watch.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use super::convert;
use super::fields::{self, FieldValidation};
use super::gc;
use super::meta;
use super::patch::{self, PatchType};
use super::resources::ResourceType;
use super::schema;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{self, ApiError};
use super::store::{Op, Store, Stored, Written};
use super::table;
use super::validation;

/// What a request is about, once its URL is understood.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub rtype: Arc<ResourceType>,
    /// The version asked for.
    pub version: String,
    /// The namespace in the URL ("" if none).
    pub namespace: String,
    /// The object name in the URL, if any.
    pub name: Option<String>,
    /// Whether the URL ends in `/status`.
    pub status: bool,
}

impl Target {
    fn group(&self) -> &str {
        &self.rtype.group
    }
    fn plural(&self) -> &str {
        &self.rtype.plural
    }
    fn api_version(&self) -> String {
        self.rtype.api_version(&self.version)
    }
    fn has_status(&self) -> bool {
        self.rtype.has_status(&self.version)
    }
    fn key(&self) -> String {
        self.rtype.key()
    }
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

/// Query parameters, decoded.
pub type Params = HashMap<String, String>;

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub code: u16,
    /// JSON body.
    pub body: Bytes,
    /// Content-Type of the body.
    pub content_type: &'static str,
    /// Warnings for the client (`Warning: 299` headers), such as unknown fields dropped.
    pub warnings: Vec<String>,
}

impl Reply {
    fn json(code: u16, body: Bytes) -> Reply {
        Reply {
            code,
            body,
            content_type: "application/json",
            warnings: Vec::new(),
        }
    }

    fn warning(mut self, warnings: Vec<String>) -> Reply {
        self.warnings = warnings;
        self
    }
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// YAML, without trying JSON first.
    YamlOnly,
    /// Kubernetes protobuf (`k8s\0` + `runtime.Unknown`); see [`super::protobuf`].
    Protobuf,
}

/// The media types a POST or PUT body may have.
pub const BODY_TYPES: [&str; 3] = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// The body format for a Content-Type of POST or PUT, or 415. No Content-Type (or an empty
/// one) is JSON, as the real API server takes it (its first supported media type); the
/// official Python client sends none on create.
pub fn body_format(ct: Option<&str>) -> Result<BodyFormat, ApiError> {
    let raw = ct.unwrap_or("");
    match patch::media_type(raw).as_str() {
        "" | "application/json" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyFormat::Yaml),
        "application/vnd.kubernetes.protobuf" => Ok(BodyFormat::Protobuf),
        _ => Err(ApiError::unsupported_media_type(raw, &BODY_TYPES)),
    }
}

/// Decode a request body of a resource (`id`: `group/plural`) into one JSON object, or 400.
pub fn decode_for(id: &str, body: &[u8], format: BodyFormat) -> Result<Value, ApiError> {
    match format {
        BodyFormat::Protobuf => super::protobuf::decode(id, body),
        _ => decode(body, format),
    }
}

/// Decode a JSON or YAML request body into one JSON object, or 400 (415 for protobuf, which
/// only [`decode_for`] knows the type of).
pub fn decode(body: &[u8], format: BodyFormat) -> Result<Value, ApiError> {
    let v: Value = match format {
        BodyFormat::Protobuf => {
            return Err(ApiError::unsupported_media_type(
                "application/vnd.kubernetes.protobuf",
                &BODY_TYPES[..2],
            ));
        }
        BodyFormat::Json => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?,
        // JSON is YAML; the JSON parser is much faster, so try it first.
        BodyFormat::Yaml if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => return decode(body, BodyFormat::YamlOnly),
            }
        }
        BodyFormat::Yaml | BodyFormat::YamlOnly => {
            let text = std::str::from_utf8(body).map_err(|e| {
                ApiError::bad_request(format!("the body of the request is not UTF-8: {e}"))
            })?;
            serde_saphyr::from_str(text).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be decoded as YAML: {e}"
                ))
            })?
        }
    };
    Ok(v)
}

fn require_object(v: Value) -> Result<Value, ApiError> {
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::bad_request(
            "the body of the request must be an object, with apiVersion, kind and metadata",
        ))
    }
}

/// The stored object as the target serves it: `apiVersion` rewritten, and converted when the
/// resource is a view of another's objects (see [`convert`]).
fn at_version(t: &Target, s: &Stored) -> Bytes {
    let want = t.api_version();
    if !convert::needs_conversion(&t.rtype, &want, &s.obj) {
        return s.json.clone();
    }
    let o = convert::to_served(&t.rtype, &want, &s.obj);
    Bytes::from(serde_json::to_vec(&o).unwrap_or_default())
}

/// A stored object as the target serves it, as a value.
fn served(t: &Target, obj: &Value) -> Value {
    convert::to_served(&t.rtype, &t.api_version(), obj)
}

/// Objects for a table, as the target serves them.
fn served_all(t: &Target, objs: Vec<Arc<Value>>) -> Vec<Arc<Value>> {
    if convert::view(&t.rtype) == convert::View::Same {
        return objs;
    }
    objs.iter().map(|o| Arc::new(served(t, o))).collect()
}

/// Whether the client asked for a `meta.k8s.io` Table (kubectl get).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// GET one object.
pub fn get(store: &Store, t: &Target, accept: &str) -> Result<Reply, ApiError> {
    let s = store
        .get(&t.key(), &t.namespace, t.name())
        .ok_or_else(|| ApiError::not_found(t.group(), t.plural(), t.name()))?;
    if wants_table(accept) {
        let v = table::table(&t.rtype, &t.version, &served_all(t, vec![s.obj]), "", "");
        return Ok(table_reply(v));
    }
    Ok(Reply::json(200, at_version(t, &s)))
}

fn table_reply(v: Value) -> Reply {
    Reply {
        code: 200,
        body: Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
        content_type: "application/json;as=Table;v=v1;g=meta.k8s.io",
        warnings: Vec::new(),
    }
}

/// Label and field selectors of a list or watch (matched against stored objects).
pub fn selectors(t: &Target, p: &Params) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let l = LabelSelector::parse(p.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let f = FieldSelector::parse(
        p.get("fieldSelector").map(String::as_str).unwrap_or(""),
        convert::field_labels(&t.rtype),
    )
    .map_err(ApiError::bad_request)?;
    Ok((l, f))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn encode_continue(rv: u64, next: &(String, String)) -> String {
    let t = ContinueToken {
        rv,
        ns: next.0.clone(),
        name: next.1.clone(),
    };
    hex::encode(serde_json::to_vec(&t).unwrap_or_default())
}

fn decode_continue(s: &str) -> Result<ContinueToken, ApiError> {
    hex::decode(s)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))
}

/// GET a collection.
pub fn list(store: &Store, t: &Target, p: &Params, accept: &str) -> Result<Reply, ApiError> {
    let (labels, fields) = selectors(t, p)?;
    let limit: usize = match p.get("limit").map(String::as_str) {
        None | Some("") => 0,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l:?}")))?
            .max(0) as usize,
    };
    let cont = match p.get("continue").map(String::as_str) {
        None | Some("") => None,
        Some(c) => Some(decode_continue(c)?),
    };
    let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
    let after = cont.as_ref().map(|c| (c.ns.clone(), c.name.clone()));
    let page = store.list(&t.key(), ns, after.as_ref(), limit, &|o| {
        labels.matches(o) && fields.matches(o)
    });
    let rv = cont.as_ref().map(|c| c.rv).unwrap_or(page.rv);
    let next = page.next.as_ref().map(|n| encode_continue(rv, n));
    if wants_table(accept) {
        let objs = served_all(t, page.items.iter().map(|s| s.obj.clone()).collect());
        let v = table::table(
            &t.rtype,
            &t.version,
            &objs,
            &rv.to_string(),
            next.as_deref().unwrap_or(""),
        );
        return Ok(table_reply(v));
    }
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if let Some(n) = &next {
        metadata["continue"] = json!(n);
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    let head = json!({
        "apiVersion": t.api_version(),
        "kind": t.rtype.list_kind,
        "metadata": metadata,
    });
    let head = serde_json::to_vec(&head).unwrap_or_default();
    let size: usize = page.items.iter().map(|s| s.json.len() + 1).sum();
    let mut buf = BytesMut::with_capacity(head.len() + size + 16);
    // `{"apiVersion":..,"kind":..,"metadata":{..}` then `,"items":[...]}`.
    buf.put_slice(&head[..head.len().saturating_sub(1)]);
    buf.put_slice(b",\"items\":[");
    for (i, s) in page.items.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(&at_version(t, s));
    }
    buf.put_slice(b"]}");
    Ok(Reply::json(200, buf.freeze()))
}

/// Check apiVersion and kind of a body against the URL (filling them in if absent).
fn check_type(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let want_av = t.api_version();
    let kind = obj
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_string();
    let av = obj
        .get("apiVersion")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_string();
    if !kind.is_empty() && kind != t.rtype.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind of the resource ({}) at this URL",
            t.rtype.kind
        )));
    }
    if !av.is_empty() && av != want_av {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    obj["kind"] = json!(t.rtype.kind);
    obj["apiVersion"] = json!(want_av);
    Ok(())
}

/// Check name and namespace of a body against the URL, and the name's format.
fn check_identity(t: &Target, obj: &mut Value, url_name: Option<&str>) -> Result<String, ApiError> {
    let body_ns = meta::namespace(obj).to_string();
    if t.rtype.namespaced {
        if !body_ns.is_empty() && body_ns != t.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta::metadata_mut(obj).insert("namespace".into(), json!(t.namespace));
    } else {
        meta::metadata_mut(obj).remove("namespace");
    }
    let mut name = meta::name(obj).to_string();
    if let Some(url_name) = url_name {
        if name.is_empty() {
            name = url_name.to_string();
        } else if name != url_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({url_name})"
            )));
        }
    }
    if name.is_empty() {
        let generate = meta::meta_str(obj, "generateName").to_string();
        if generate.is_empty() {
            return Err(ApiError::invalid(
                &t.rtype.kind,
                t.group(),
                "",
                vec![(
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
        let suffix: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .filter(|c| !matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | '0' | '1' | '3'))
            .take(5)
            .collect();
        name = format!("{generate}{suffix}");
    }
    let bad = if t.rtype.id() == "/namespaces" || t.rtype.id() == "/services" {
        meta::check_label(&name)
    } else {
        meta::check_subdomain(&name)
    };
    if let Some(why) = bad {
        return Err(ApiError::invalid(
            &t.rtype.kind,
            t.group(),
            &name,
            vec![("metadata.name".into(), why)],
        ));
    }
    meta::metadata_mut(obj).insert("name".into(), json!(name));
    Ok(name)
}

/// How a write treats unknown fields, from its `fieldValidation` parameter.
fn field_validation(p: &Params, options: &str) -> Result<FieldValidation, ApiError> {
    FieldValidation::parse(p.get("fieldValidation").map(String::as_str), options)
}

/// Defaults and derived fields the API server adds to built-in kinds, and the CRD schema's
/// defaults and checks for custom resources; unknown fields dropped and judged by `fv`
/// (`apply`: the write is a server-side apply). Returns the warnings for the client.
fn admit(
    t: &Target,
    obj: &mut Value,
    name: &str,
    fv: FieldValidation,
    apply: bool,
) -> Result<Vec<String>, ApiError> {
    let mut unknown = if t.rtype.crd.is_some() {
        fields::prune_metadata(obj)
    } else {
        fields::prune_builtin(&t.rtype.id(), obj)
    };
    let api_version = t.api_version();
    let judge = |unknown: &[String]| {
        fv.judge(
            unknown,
            &t.rtype.kind,
            &t.version,
            apply.then_some((t.namespace.as_str(), name, api_version.as_str())),
        )
    };
    let mut warnings = judge(&unknown)?;
    match t.rtype.id().as_str() {
        "/namespaces" => {
            obj["spec"] = json!({ "finalizers": ["kubernetes"] });
            if obj.pointer("/metadata/deletionTimestamp").is_none() {
                obj["status"] = json!({ "phase": "Active" });
            }
            let labels = meta::metadata_mut(obj)
                .entry("labels")
                .or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        "/secrets" => {
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                let data = obj
                    .as_object_mut()
                    .map(|o| o.entry("data").or_insert_with(|| json!({})));
                if let Some(Value::Object(d)) = data {
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or_default();
                        d.insert(k, json!(meta::base64(s.as_bytes())));
                    }
                }
            }
            if obj.get("type").is_none() {
                obj["type"] = json!("Opaque");
            }
        }
        "apps/deployments" => {
            if let Some(spec) = obj.get_mut("spec").and_then(|s| s.as_object_mut()) {
                spec.entry("replicas").or_insert(json!(1));
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
                spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                spec.entry("strategy").or_insert(json!({
                    "type": "RollingUpdate",
                    "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" }
                }));
            }
        }
        "coordination.k8s.io/leases" | "/events" | "events.k8s.io/events" => {
            let causes = match t.rtype.id().as_str() {
                "/events" => validation::core_event(obj),
                "events.k8s.io/events" => validation::events_v1_event(obj),
                _ => validation::lease(obj),
            };
            if !causes.is_empty() {
                return Err(ApiError::invalid(&t.rtype.kind, t.group(), name, causes));
            }
        }
        _ => {}
    }
    if let Some(s) = t.rtype.version(&t.version).and_then(|v| v.schema.as_ref()) {
        let before = unknown.len();
        let causes = schema::admit(s, obj, &mut unknown);
        // Decoding comes first on the real server: a strict error wins over invalid values.
        warnings.extend(judge(&unknown[before..])?);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&t.rtype.kind, t.group(), name, causes));
        }
    }
    Ok(warnings)
}

/// An admitted object of the target, as it is stored.
fn stored(t: &Target, obj: Value) -> Value {
    if convert::view(&t.rtype) == convert::View::Same {
        return obj;
    }
    convert::to_stored(&t.rtype, &obj)
}

fn created_reply(t: &Target, w: &Written) -> Reply {
    Reply::json(if w.created { 201 } else { 200 }, at_version(t, &w.stored))
}

fn reject_dry_run(p: &Params) -> Result<(), ApiError> {
    if p.get("dryRun").is_some_and(|d| !d.is_empty()) {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the logbook sandbox",
        ));
    }
    Ok(())
}

/// POST to a collection.
pub fn create(store: &Store, t: &Target, p: &Params, body: Value) -> Result<Reply, ApiError> {
    reject_dry_run(p)?;
    let fv = field_validation(p, "CreateOptions")?;
    if t.status {
        return Err(ApiError::method_not_allowed("POST"));
    }
    let mut obj = require_object(body)?;
    check_type(t, &mut obj)?;
    let name = check_identity(t, &mut obj, None)?;
    if t.has_status()
        && t.rtype.id() != "/namespaces"
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    let warnings = admit(t, &mut obj, &name, fv, false)?;
    let obj = stored(t, obj);
    let w = store.write(&t.key(), &t.namespace, &name, move |_| Ok(Op::Create(obj)))?;
    Ok(created_reply(t, &w).warning(warnings))
}

/// Keep what the target may not change: `status` through the main resource, everything but
/// `status` through `/status`.
fn restrict(t: &Target, current: &Value, mut new: Value) -> Value {
    if t.status {
        let mut out = current.clone();
        match new.as_object_mut().and_then(|o| o.remove("status")) {
            Some(s) => out["status"] = s,
            None => {
                if let Some(o) = out.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        // Preconditions in the body still apply.
        if let Some(rv) = new.pointer("/metadata/resourceVersion") {
            meta::metadata_mut(&mut out).insert("resourceVersion".into(), rv.clone());
        }
        return out;
    }
    if t.has_status() {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    new
}

/// Optimistic concurrency: a non-empty resourceVersion (or uid) in the new object must be the
/// current one.
fn check_preconditions(t: &Target, current: &Value, new: &Value) -> Result<(), ApiError> {
    let want = meta::resource_version(new);
    if !want.is_empty() && want != meta::resource_version(current) {
        return Err(ApiError::conflict(t.group(), t.plural(), t.name()));
    }
    let uid = meta::uid(new);
    if !uid.is_empty() && uid != meta::uid(current) {
        return Err(ApiError::conflict_msg(
            t.group(),
            t.plural(),
            t.name(),
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta::uid(current)
            ),
        ));
    }
    Ok(())
}

/// PUT an object (or its status).
pub fn update(store: &Store, t: &Target, p: &Params, body: Value) -> Result<Reply, ApiError> {
    reject_dry_run(p)?;
    let fv = field_validation(p, "UpdateOptions")?;
    let mut warnings = Vec::new();
    let warned = &mut warnings;
    let mut obj = require_object(body)?;
    check_type(t, &mut obj)?;
    let name = check_identity(t, &mut obj, t.name.as_deref())?;
    let t2 = t.clone();
    let n2 = name.clone();
    let w = store.write(&t.key(), &t.namespace, &name, move |ctx| {
        let current = ctx
            .current
            .ok_or_else(|| ApiError::not_found(t2.group(), t2.plural(), t2.name()))?;
        let current = served(&t2, &current.obj);
        let mut new = restrict(&t2, &current, obj);
        check_preconditions(&t2, &current, &new)?;
        *warned = admit(&t2, &mut new, &n2, fv, false)?;
        Ok(Op::Replace(stored(&t2, new)))
    })?;
    Ok(Reply::json(200, at_version(t, &w.stored)).warning(warnings))
}

/// PATCH an object (or its status) with any patch type, server-side apply included.
pub fn patch(
    store: &Store,
    t: &Target,
    p: &Params,
    ptype: PatchType,
    body: &[u8],
) -> Result<Reply, ApiError> {
    reject_dry_run(p)?;
    if ptype == PatchType::Strategic && t.rtype.crd.is_some() {
        return Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json",
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ],
        ));
    }
    let fv = field_validation(p, "PatchOptions")?;
    if ptype == PatchType::Apply {
        return apply(store, t, p, body, fv);
    }
    let patch_body = decode(body, BodyFormat::Json)?;
    let mut warnings = Vec::new();
    let warned = &mut warnings;
    let t2 = t.clone();
    let name = t.name().to_string();
    let w = store.write(&t.key(), &t.namespace, &name, move |ctx| {
        let current = ctx
            .current
            .ok_or_else(|| ApiError::not_found(t2.group(), t2.plural(), t2.name()))?;
        let current = served(&t2, &current.obj);
        let base = current.clone();
        let patched = match ptype {
            PatchType::Json => patch::json_patch(&base, &patch_body)?,
            PatchType::Merge => patch::merge_patch(&base, &patch_body)?,
            _ => patch::strategic_merge(&base, &patch_body)?,
        };
        let mut patched = require_object(patched)?;
        if meta::name(&patched) != t2.name() {
            return Err(ApiError::invalid(
                &t2.rtype.kind,
                t2.group(),
                t2.name(),
                vec![(
                    "metadata.name".into(),
                    "Invalid value: field is immutable".into(),
                )],
            ));
        }
        check_type(&t2, &mut patched)?;
        let mut new = restrict(&t2, &current, patched);
        check_preconditions(&t2, &current, &new)?;
        *warned = admit(&t2, &mut new, t2.name(), fv, false)?;
        Ok(Op::Replace(stored(&t2, new)))
    })?;
    Ok(Reply::json(200, at_version(t, &w.stored)).warning(warnings))
}

/// Server-side apply: create or merge, per field manager (see [`patch::apply`]).
fn apply(
    store: &Store,
    t: &Target,
    p: &Params,
    body: &[u8],
    fv: FieldValidation,
) -> Result<Reply, ApiError> {
    let manager = p.get("fieldManager").cloned().unwrap_or_default();
    if manager.is_empty() {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            vec![(
                "fieldManager".into(),
                "Required value: is required for apply patch".into(),
            )],
        ));
    }
    let force = match p.get("force").map(String::as_str) {
        None | Some("false") | Some("") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid value for force: {other:?}"
            )));
        }
    };
    let _ = force; // Conflicts between managers are not modelled, so force changes nothing.
    let mut applied = require_object(decode(body, BodyFormat::Yaml)?)?;
    if applied
        .get("kind")
        .and_then(|k| k.as_str())
        .is_none_or(str::is_empty)
        || applied
            .get("apiVersion")
            .and_then(|k| k.as_str())
            .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(
            "invalid object type: apiVersion and kind must be set in an applied configuration",
        ));
    }
    check_type(t, &mut applied)?;
    let name = check_identity(t, &mut applied, t.name.as_deref())?;
    let t2 = t.clone();
    let mut warnings = Vec::new();
    let warned = &mut warnings;
    let w = store.write(&t.key(), &t.namespace, &name, move |ctx| {
        let want_rv = meta::resource_version(&applied).to_string();
        let mut config = applied.clone();
        if let Some(m) = config.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("resourceVersion");
            m.remove("uid");
        }
        match ctx.current {
            None => {
                if t2.status {
                    return Err(ApiError::not_found(t2.group(), t2.plural(), t2.name()));
                }
                if !want_rv.is_empty() {
                    return Err(ApiError::conflict(t2.group(), t2.plural(), t2.name()));
                }
                let mut obj = config.clone();
                if t2.has_status()
                    && let Some(o) = obj.as_object_mut()
                {
                    o.remove("status");
                }
                *warned = admit(&t2, &mut obj, t2.name(), fv, true)?;
                ctx.applied.insert(manager, config);
                Ok(Op::Create(stored(&t2, obj)))
            }
            Some(current) => {
                if !want_rv.is_empty() && want_rv != meta::resource_version(&current.obj) {
                    return Err(ApiError::conflict(t2.group(), t2.plural(), t2.name()));
                }
                let previous = ctx.applied.get(&manager);
                let current = served(&t2, &current.obj);
                let merged = patch::apply(&current, &config, previous);
                let mut new = restrict(&t2, &current, merged);
                if let Some(m) = new.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                    m.remove("resourceVersion");
                }
                *warned = admit(&t2, &mut new, t2.name(), fv, true)?;
                ctx.applied.insert(manager, config);
                Ok(Op::Replace(stored(&t2, new)))
            }
        }
    })?;
    Ok(created_reply(t, &w).warning(warnings))
}

/// The options of a delete, from the body (`DeleteOptions`) and the query.
struct DeleteOptions {
    uid: Option<String>,
    rv: Option<String>,
    policy: String,
    /// `gracePeriodSeconds`, from the body or the query.
    grace: Option<i64>,
}

fn delete_options(p: &Params, body: Option<Value>) -> Result<DeleteOptions, ApiError> {
    let body = body.unwrap_or(json!({}));
    let s = |ptr: &str| body.pointer(ptr).and_then(|v| v.as_str()).map(String::from);
    let policy = s("/propagationPolicy")
        .or_else(|| p.get("propagationPolicy").cloned())
        .or_else(
            || match body.get("orphanDependents").and_then(|o| o.as_bool()) {
                Some(true) => Some("Orphan".to_string()),
                _ => None,
            },
        )
        .unwrap_or_else(|| "Background".to_string());
    if !matches!(policy.as_str(), "Orphan" | "Background" | "Foreground") {
        return Err(ApiError::invalid(
            "DeleteOptions",
            "meta.k8s.io",
            "",
            vec![(
                "propagationPolicy".into(),
                format!(
                    "Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
            )],
        ));
    }
    let grace = match body.get("gracePeriodSeconds") {
        Some(g) => g.as_i64(),
        None => match p.get("gracePeriodSeconds") {
            Some(g) => Some(g.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "gracePeriodSeconds: {g:?} is not an integer (seconds; 0 deletes at once)"
                ))
            })?),
            None => None,
        },
    };
    Ok(DeleteOptions {
        uid: s("/preconditions/uid"),
        rv: s("/preconditions/resourceVersion"),
        policy,
        grace,
    })
}

/// DELETE one object.
pub fn delete(
    store: &Store,
    t: &Target,
    p: &Params,
    body: Option<Value>,
) -> Result<Reply, ApiError> {
    reject_dry_run(p)?;
    if t.status {
        return Err(ApiError::method_not_allowed("DELETE"));
    }
    let opts = delete_options(p, body)?;
    let w = delete_one(store, t, t.name(), &opts)?;
    if w.deleted {
        let s = status::success(t.group(), t.plural(), t.name(), meta::uid(&w.stored.obj));
        return Ok(Reply::json(
            200,
            Bytes::from(serde_json::to_vec(&s).unwrap_or_default()),
        ));
    }
    Ok(Reply::json(200, at_version(t, &w.stored)))
}

fn delete_preconditions(
    t: &Target,
    name: &str,
    opts: &DeleteOptions,
    current: &Value,
) -> Result<(), ApiError> {
    if let Some(u) = &opts.uid
        && u != meta::uid(current)
    {
        return Err(ApiError::conflict_msg(
            t.group(),
            t.plural(),
            name,
            &format!(
                "Precondition failed: UID in precondition: {u}, UID in object meta: {}",
                meta::uid(current)
            ),
        ));
    }
    if let Some(rv) = &opts.rv
        && rv != meta::resource_version(current)
    {
        return Err(ApiError::conflict_msg(
            t.group(),
            t.plural(),
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta::resource_version(current)
            ),
        ));
    }
    Ok(())
}

fn delete_one(
    store: &Store,
    t: &Target,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Written, ApiError> {
    let current = store
        .get(&t.key(), &t.namespace, name)
        .ok_or_else(|| ApiError::not_found(t.group(), t.plural(), name))?;
    delete_preconditions(t, name, opts, &current.obj)?;
    let uid = meta::uid(&current.obj).to_string();
    // Dependents are dealt with first; a background deletion leaves them to the collector.
    match opts.policy.as_str() {
        "Orphan" => gc::orphan(store, &uid),
        "Foreground" => gc::delete_dependents(store, &uid),
        _ => {}
    }
    store.write(&t.key(), &t.namespace, name, |ctx| {
        let current = ctx
            .current
            .ok_or_else(|| ApiError::not_found(t.group(), t.plural(), name))?;
        delete_preconditions(t, name, opts, &current.obj)?;
        Ok(pod_grace(t, &current.obj, opts.grace).map_or(Op::Delete, Op::Terminate))
    })
}

/// A Pod bound to a node is deleted gracefully, as the API server does: it is marked with the
/// grace period (the request's, or the Pod's `terminationGracePeriodSeconds`, 30 s by
/// default) and the node removes it once its processes have stopped. An unbound Pod, or a
/// grace of 0 (`--grace-period=0 --force`), goes at once.
fn pod_grace(t: &Target, pod: &Value, asked: Option<i64>) -> Option<i64> {
    if t.key() != "/pods" {
        return None;
    }
    let bound = pod
        .pointer("/spec/nodeName")
        .and_then(|n| n.as_str())
        .is_some_and(|n| !n.is_empty());
    let done = matches!(
        pod.pointer("/status/phase").and_then(|p| p.as_str()),
        Some("Succeeded" | "Failed")
    );
    let grace = asked.unwrap_or_else(|| {
        pod.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(|g| g.as_i64())
            .unwrap_or(30)
    });
    (bound && grace > 0).then_some(if done { 1 } else { grace })
}

/// DELETE a collection (with selectors).
pub fn delete_collection(
    store: &Store,
    t: &Target,
    p: &Params,
    body: Option<Value>,
) -> Result<Reply, ApiError> {
    reject_dry_run(p)?;
    let opts = delete_options(p, body)?;
    let (labels, fields) = selectors(t, p)?;
    let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
    let page = store.list(&t.key(), ns, None, 0, &|o| {
        labels.matches(o) && fields.matches(o)
    });
    let mut items = Vec::new();
    for s in page.items {
        let mut tt = t.clone();
        tt.namespace = meta::namespace(&s.obj).to_string();
        let name = meta::name(&s.obj).to_string();
        tt.name = Some(name.clone());
        if let Ok(w) = delete_one(store, &tt, &name, &opts) {
            items.push(w.stored.obj);
        }
    }
    let v = json!({
        "apiVersion": t.api_version(),
        "kind": t.rtype.list_kind,
        "metadata": { "resourceVersion": store.resource_version().to_string() },
        "items": items.iter().map(|o| served(t, o)).collect::<Vec<_>>(),
    });
    Ok(Reply::json(
        200,
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
    ))
}
