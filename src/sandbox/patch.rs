//! The patch types (JSON, merge, strategic merge) and server-side apply, on JSON values.
//! Owns how a patch body changes an object; it must not check preconditions or store anything.

use serde_json::{Map, Value};

use super::status::ApiError;

/// How a PATCH body is to be read, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json` (built-in kinds only).
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// The media type of a Content-Type value, lowercased, without parameters (`; charset=...`).
pub fn media_type(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl PatchType {
    /// The patch type for a Content-Type header value (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match media_type(ct).as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The content types accepted for PATCH, in error messages.
    pub const ACCEPTED: [&'static str; 4] = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ];
}

/// Apply an RFC 6902 JSON patch.
pub fn json_patch(doc: &Value, body: &Value) -> Result<Value, ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(body.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("the server rejected our request due to an error in our request: {e}"),
        details: None,
    })?;
    Ok(out)
}

/// Apply an RFC 7386 merge patch.
pub fn merge_patch(doc: &Value, body: &Value) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "error decoding patch: a merge patch must be a JSON object",
        ));
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, body);
    Ok(out)
}

/// Keys that identify the items of a list of objects in a strategic merge, most specific first.
const MERGE_KEYS: [&str; 6] = ["name", "containerPort", "mountPath", "port", "type", "ip"];

/// Apply a strategic merge patch: a merge patch in which lists of objects that carry a common
/// key field (`name`, `containerPort`, `port`, `mountPath`, `type`) are merged item by item,
/// `$patch: delete` removes an item, `$setElementOrder/<field>` orders them, and
/// `$retainKeys` is ignored. Which field is the key is guessed from the items, not read from
/// the Kubernetes schema.
pub fn strategic_merge(doc: &Value, body: &Value) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "error decoding patch: a strategic merge patch must be a JSON object",
        ));
    }
    let mut out = doc.clone();
    strategic_into(&mut out, body);
    Ok(out)
}

fn list_key(items: &[Value]) -> Option<&'static str> {
    MERGE_KEYS.into_iter().find(|k| {
        !items.is_empty()
            && items
                .iter()
                .all(|i| i.get(*k).is_some() || i.get("$patch").is_some())
    })
}

fn strategic_into(doc: &mut Value, patch: &Value) {
    let Some(pmap) = patch.as_object() else {
        *doc = patch.clone();
        return;
    };
    if pmap.get("$patch").and_then(|p| p.as_str()) == Some("replace") {
        let mut p = patch.clone();
        strip_directives(&mut p);
        *doc = p;
        return;
    }
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Some(dmap) = doc.as_object_mut() else {
        return;
    };
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in pmap {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Some(order) = v.as_array() {
                orders.push((field.to_string(), order.clone()));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            dmap.remove(k);
            continue;
        }
        match (dmap.get_mut(k), v) {
            (Some(Value::Array(cur)), Value::Array(items)) => {
                if let Some(key) =
                    list_key(items).filter(|key| cur.iter().all(|c| c.get(*key).is_some()))
                {
                    merge_list(cur, items, key);
                } else {
                    let mut p = v.clone();
                    strip_directives(&mut p);
                    *cur = p.as_array().cloned().unwrap_or_default();
                }
            }
            (Some(cur @ Value::Object(_)), Value::Object(_)) => strategic_into(cur, v),
            _ => {
                let mut p = v.clone();
                strip_directives(&mut p);
                dmap.insert(k.clone(), p);
            }
        }
    }
    for (field, order) in orders {
        let Some(Value::Array(cur)) = dmap.get_mut(&field) else {
            continue;
        };
        let Some(key) = order
            .first()
            .and_then(|o| o.as_object())
            .and_then(|o| o.keys().next().cloned())
        else {
            continue;
        };
        let pos = |v: &Value| {
            order
                .iter()
                .position(|o| o.get(&key) == v.get(&key))
                .unwrap_or(usize::MAX)
        };
        cur.sort_by_key(|v| pos(v));
    }
}

fn merge_list(cur: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key);
        let at = cur.iter().position(|c| c.get(key) == id);
        let delete = item.get("$patch").and_then(|p| p.as_str()) == Some("delete");
        match (at, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_into(&mut cur[i], item),
            (None, false) => {
                let mut p = item.clone();
                strip_directives(&mut p);
                cur.push(p);
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            for x in m.values_mut() {
                strip_directives(x);
            }
        }
        Value::Array(a) => {
            for x in a {
                strip_directives(x);
            }
        }
        _ => {}
    }
}

/// Leaf paths of an applied configuration: maps are walked, anything else is a leaf.
fn leaf_paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, x) in m {
                prefix.push(k.clone());
                leaf_paths(x, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

fn remove_path(doc: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for p in parents {
        match cur.get_mut(p.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Merge an applied configuration into the live object the way server-side apply would for
/// a single field manager: maps merge field by field, lists and scalars are replaced, `null`
/// removes, and fields this manager applied last time but leaves out now are removed.
pub fn apply(live: &Value, applied: &Value, previous: Option<&Value>) -> Value {
    let mut out = live.clone();
    if let Some(prev) = previous {
        let mut before = Vec::new();
        leaf_paths(prev, &mut Vec::new(), &mut before);
        let mut now = Vec::new();
        leaf_paths(applied, &mut Vec::new(), &mut now);
        for path in before {
            let kept = now
                .iter()
                .any(|p| p.starts_with(&path) || path.starts_with(p));
            if !kept && path.first().map(String::as_str) != Some("apiVersion") {
                remove_path(&mut out, &path);
            }
        }
    }
    json_patch::merge(&mut out, applied);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_named_lists() {
        let doc = json!({"spec":{"containers":[{"name":"a","image":"x","ports":[{"containerPort":80}]},{"name":"b","image":"y"}]}});
        let patch = json!({"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}],
            "containers":[{"name":"a","image":"z"},{"name":"b","$patch":"delete"},{"name":"c","image":"w"}]}});
        let out = strategic_merge(&doc, &patch).unwrap_or_default();
        assert_eq!(
            out,
            json!({"spec":{"containers":[{"name":"a","image":"z","ports":[{"containerPort":80}]},{"name":"c","image":"w"}]}})
        );
    }

    #[test]
    fn apply_removes_what_the_manager_dropped() {
        let live =
            json!({"metadata":{"labels":{"a":"1","b":"2","other":"x"}},"spec":{"x":1,"y":2}});
        let prev = json!({"metadata":{"labels":{"a":"1","b":"2"}},"spec":{"x":1,"y":2}});
        let now = json!({"metadata":{"labels":{"a":"1"}},"spec":{"x":3}});
        let out = apply(&live, &now, Some(&prev));
        assert_eq!(
            out,
            json!({"metadata":{"labels":{"a":"1","other":"x"}},"spec":{"x":3}})
        );
    }

    #[test]
    fn json_patch_errors_are_422() {
        let doc = json!({"a":1});
        let bad = json!([{"op":"test","path":"/a","value":2}]);
        assert_eq!(json_patch(&doc, &bad).map_err(|e| e.code), Err(422));
        let garbage = json!({"op":"nope"});
        assert_eq!(json_patch(&doc, &garbage).map_err(|e| e.code), Err(400));
    }
}
