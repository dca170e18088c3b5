//! CRD structural schemas applied to custom resources: defaulting, pruning and validation.
//! Owns what `openAPIV3Schema` says about an object; it must not store or reject anything itself.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde_json::{Map, Value, json};

type Causes = Vec<(String, String)>;

/// Default, prune and validate `obj` against a CRD version's schema (everything but
/// `apiVersion`, `kind` and `metadata`). Returns the field errors, empty if it is valid; the
/// paths of the fields it pruned (not declared in the schema: `spec.foo`, `spec.env[0].x`)
/// are added to `unknown`, in the object's key order.
pub fn admit(schema: &Value, obj: &mut Value, unknown: &mut Vec<String>) -> Causes {
    let mut causes = Vec::new();
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return causes;
    };
    let preserve = preserves(schema);
    let Some(map) = obj.as_object_mut() else {
        return causes;
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.get(&k) {
            Some(s) => {
                if let Some(v) = map.get_mut(&k) {
                    walk(s, v, &k, &mut causes, unknown);
                }
            }
            None if !preserve => {
                map.remove(&k);
                unknown.push(k);
            }
            None => {}
        }
    }
    for (k, s) in props {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") || map.contains_key(k) {
            continue;
        }
        if let Some(d) = s.get("default") {
            let mut d = d.clone();
            walk(s, &mut d, k, &mut causes, &mut Vec::new());
            map.insert(k.clone(), d);
        }
    }
    if let Some(req) = schema.get("required").and_then(|r| r.as_array()) {
        for r in req.iter().filter_map(|r| r.as_str()) {
            if !matches!(r, "apiVersion" | "kind" | "metadata") && !map.contains_key(r) {
                causes.push((r.to_string(), "Required value".to_string()));
            }
        }
    }
    causes
}

fn preserves(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(|p| p.as_bool())
        == Some(true)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn show(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn pattern_matches(pattern: &str, s: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut c = cache.lock().unwrap_or_else(PoisonError::into_inner);
    let re = c
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    re.as_ref().is_none_or(|re| re.is_match(s))
}

fn walk(s: &Value, v: &mut Value, path: &str, causes: &mut Causes, unknown: &mut Vec<String>) {
    if v.is_null() {
        if s.get("nullable").and_then(|n| n.as_bool()) != Some(true) {
            causes.push((
                path.to_string(),
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    s.get("type").and_then(|t| t.as_str()).unwrap_or("object")
                ),
            ));
        }
        return;
    }
    let int_or_string = s
        .get("x-kubernetes-int-or-string")
        .and_then(|b| b.as_bool())
        == Some(true);
    if let Some(want) = s.get("type").and_then(|t| t.as_str()) {
        let got = type_name(v);
        let ok = got == want || (want == "number" && got == "integer");
        if !ok {
            causes.push((
                path.to_string(),
                format!(
                    "Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
                ),
            ));
            return;
        }
    } else if int_or_string && !matches!(type_name(v), "integer" | "string") {
        causes.push((
            path.to_string(),
            format!("Invalid value: {}: must be an integer or a string", show(v)),
        ));
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(|e| e.as_array())
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(show).collect();
        causes.push((
            path.to_string(),
            format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                list.join(", ")
            ),
        ));
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(max) = s.get("maximum").and_then(|m| m.as_f64()) {
                let excl = s.get("exclusiveMaximum").and_then(|e| e.as_bool()) == Some(true);
                if x > max || (excl && x >= max) {
                    causes.push((
                        path.to_string(),
                        format!(
                            "Invalid value: {}: {path} in body should be less than {}{}",
                            show(&json!(n)),
                            if excl { "" } else { "or equal to " },
                            show(&s["maximum"])
                        ),
                    ));
                }
            }
            if let Some(min) = s.get("minimum").and_then(|m| m.as_f64()) {
                let excl = s.get("exclusiveMinimum").and_then(|e| e.as_bool()) == Some(true);
                if x < min || (excl && x <= min) {
                    causes.push((
                        path.to_string(),
                        format!(
                            "Invalid value: {}: {path} in body should be greater than {}{}",
                            show(&json!(n)),
                            if excl { "" } else { "or equal to " },
                            show(&s["minimum"])
                        ),
                    ));
                }
            }
        }
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(max) = s.get("maxLength").and_then(|m| m.as_u64())
                && len > max
            {
                causes.push((
                    path.to_string(),
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = s.get("minLength").and_then(|m| m.as_u64())
                && len < min
            {
                causes.push((path.to_string(), format!(
                    "Invalid value: \"{text}\": {path} in body should be at least {min} chars long")));
            }
            if let Some(p) = s.get("pattern").and_then(|p| p.as_str())
                && !pattern_matches(p, text)
            {
                causes.push((
                    path.to_string(),
                    format!("Invalid value: \"{text}\": {path} in body should match '{p}'"),
                ));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = s.get("maxItems").and_then(|m| m.as_u64())
                && n > max
            {
                causes.push((
                    path.to_string(),
                    format!("Too many: {n}: must have at most {max} items"),
                ));
            }
            if let Some(min) = s.get("minItems").and_then(|m| m.as_u64())
                && n < min
            {
                causes.push((
                    path.to_string(),
                    format!("Invalid value: {n}: {path} in body should have at least {min} items"),
                ));
            }
            if let Some(is) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(is, item, &format!("{path}[{i}]"), causes, unknown);
                }
            }
            if s.get("x-kubernetes-list-type").and_then(|t| t.as_str()) == Some("map") {
                let keys: Vec<&str> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(|k| k.as_array())
                    .map(|a| a.iter().filter_map(|k| k.as_str()).collect())
                    .unwrap_or_default();
                let mut seen = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let id: Vec<Value> = keys
                        .iter()
                        .map(|k| item.get(*k).cloned().unwrap_or(Value::Null))
                        .collect();
                    if seen.contains(&id) {
                        causes.push((
                            format!("{path}[{i}]"),
                            format!("Duplicate value: {}", show(&Value::Array(id.clone()))),
                        ));
                    }
                    seen.push(id);
                }
            }
        }
        Value::Object(map) => object(s, map, path, causes, unknown),
        _ => {}
    }
}

fn object(
    s: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    causes: &mut Causes,
    unknown: &mut Vec<String>,
) {
    let props = s.get("properties").and_then(|p| p.as_object());
    let additional = s.get("additionalProperties");
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let child = format!("{path}.{k}");
        let sub = props
            .and_then(|p| p.get(&k))
            .or_else(|| additional.filter(|a| a.is_object()));
        match sub {
            Some(sub) => {
                if let Some(v) = map.get_mut(&k) {
                    walk(sub, v, &child, causes, unknown);
                }
            }
            None if preserves(s) || additional.and_then(|a| a.as_bool()) == Some(true) => {}
            None => {
                map.remove(&k);
                unknown.push(child);
            }
        }
    }
    if let Some(props) = props {
        for (k, sub) in props {
            if !map.contains_key(k)
                && let Some(d) = sub.get("default")
            {
                let mut d = d.clone();
                walk(sub, &mut d, &format!("{path}.{k}"), causes, &mut Vec::new());
                map.insert(k.clone(), d);
            }
        }
    }
    if let Some(req) = s.get("required").and_then(|r| r.as_array()) {
        for r in req.iter().filter_map(|r| r.as_str()) {
            if !map.contains_key(r) {
                causes.push((format!("{path}.{r}"), "Required value".to_string()));
            }
        }
    }
    if let Some(max) = s.get("maxProperties").and_then(|m| m.as_u64())
        && map.len() as u64 > max
    {
        causes.push((
            path.to_string(),
            format!("Too many: {}: must have at most {max} items", map.len()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": { "type": "string", "minLength": 1 },
                        "replicas": { "type": "integer", "default": 1, "minimum": 0, "maximum": 10 },
                        "host": { "type": "string", "pattern": "^[a-z.]+$" },
                        "env": { "type": "array", "items": { "type": "object",
                            "properties": { "name": { "type": "string" } } } }
                    }
                },
                "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
            }
        })
    }

    #[test]
    fn defaults_prunes_and_validates() {
        let mut o = json!({"apiVersion":"x/v1","kind":"K","metadata":{"name":"a"},
            "spec":{"image":"i","bogus":1,"env":[{"name":"A","extra":true}]},"status":{"free":1}});
        let mut unknown = Vec::new();
        assert!(admit(&schema(), &mut o, &mut unknown).is_empty());
        assert_eq!(unknown, ["spec.bogus", "spec.env[0].extra"]);
        assert_eq!(o["spec"]["replicas"], json!(1));
        assert!(o["spec"].get("bogus").is_none());
        assert!(o["spec"]["env"][0].get("extra").is_none());
        assert_eq!(o["status"]["free"], json!(1));

        let mut bad = json!({"spec":{"replicas":"x","host":"Bad_Host"}});
        let causes = admit(&schema(), &mut bad, &mut Vec::new());
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["spec.host", "spec.replicas", "spec.image"]);
    }
}
