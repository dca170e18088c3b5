//! Label and field selectors as the API server parses and applies them.
//! Owns selector syntax and matching; it must not fetch objects.

use serde_json::Value;

use super::meta;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (`app=web,tier in (a,b),!legacy`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Req>);

fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn check_key(k: &str) -> Result<String, String> {
    let k = k.trim();
    let ok = !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key \"{k}\""
        ))
    }
}

fn check_value(v: &str) -> Result<String, String> {
    let v = v.trim();
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label value: \"{v}\""
        ))
    }
}

fn set_values(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("unable to parse requirement: expected a parenthesised set, got \"{rest}\"")
        })?;
    inner
        .split(',')
        .map(check_value)
        .collect::<Result<Vec<_>, _>>()
}

impl LabelSelector {
    /// Parse the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                return Err("unable to parse requirement: found empty requirement".to_string());
            }
            if let Some(k) = p.strip_prefix('!') {
                reqs.push(Req::NotExists(check_key(k)?));
            } else if let Some((k, v)) = p.split_once("!=") {
                reqs.push(Req::NotEq(check_key(k)?, check_value(v)?));
            } else if let Some((k, v)) = p.split_once("==") {
                reqs.push(Req::Eq(check_key(k)?, check_value(v)?));
            } else if let Some((k, v)) = p.split_once('=') {
                reqs.push(Req::Eq(check_key(k)?, check_value(v)?));
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                reqs.push(Req::NotIn(check_key(k)?, set_values(rest)?));
            } else if let Some((k, rest)) = p.split_once(" in ") {
                reqs.push(Req::In(check_key(k)?, set_values(rest)?));
            } else {
                reqs.push(Req::Exists(check_key(p)?));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's labels satisfy the selector.
    pub fn matches(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = meta::labels(obj);
        let get = |k: &str| labels.iter().find(|(lk, _)| *lk == k).map(|(_, v)| *v);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `metadata.name`, `metadata.namespace` and the labels a resource
/// adds (Events: `involvedObject.name`, `reason`, ...), with `=`, `==` and `!=`. Each
/// requirement holds the JSON pointer of its value in the stored object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parse the `fieldSelector` query parameter; `extra` are the resource's own labels and
    /// where their values are (see [`super::convert::field_labels`]).
    pub fn parse(s: &str, extra: &[(&str, &str)]) -> Result<FieldSelector, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(reqs));
        }
        for part in s.split(',') {
            let p = part.trim();
            let (field, eq, value) = if let Some((f, v)) = p.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = p.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = p.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{p}'"));
            };
            let field = field.trim();
            let pointer = match field {
                "metadata.name" => "/metadata/name",
                "metadata.namespace" => "/metadata/namespace",
                _ => extra
                    .iter()
                    .find(|(label, _)| *label == field)
                    .map(|(_, pointer)| *pointer)
                    .ok_or_else(|| format!("field label not supported: {field}"))?,
            };
            reqs.push((pointer.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether an object satisfies the selector (an absent field is the empty string).
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(pointer, eq, v)| {
            let actual = obj.pointer(pointer).and_then(Value::as_str).unwrap_or("");
            (actual == v) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({ "metadata": { "name": "a", "namespace": "ns", "labels": labels } })
    }

    #[test]
    fn label_selectors_parse_and_match() {
        let o = obj(json!({ "app": "web", "tier": "front" }));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,tier=back", false),
            ("tier in (front,back)", true),
            ("tier notin (front)", false),
            ("app", true),
            ("!app", false),
            ("!legacy", true),
            ("", true),
        ] {
            let s = LabelSelector::parse(sel).unwrap_or_default();
            assert_eq!(s.matches(&o), want, "{sel}");
        }
        assert!(LabelSelector::parse("a=b=c").is_err());
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse(",").is_err());
    }

    #[test]
    fn field_selectors_only_name_and_namespace() {
        let o = obj(json!({}));
        assert!(
            FieldSelector::parse("metadata.name=a", &[])
                .map(|s| s.matches(&o))
                .unwrap_or(false)
        );
        assert!(
            FieldSelector::parse("metadata.namespace!=ns", &[])
                .map(|s| !s.matches(&o))
                .unwrap_or(false)
        );
        assert!(FieldSelector::parse("spec.x=1", &[]).is_err());
        let extra = [("reason", "/reason")];
        let e = json!({"metadata": {"name": "a"}, "reason": "Created"});
        assert!(
            FieldSelector::parse("reason=Created,metadata.name=a", &extra)
                .map(|s| s.matches(&e))
                .unwrap_or(false)
        );
        assert!(FieldSelector::parse("reason=Created", &[]).is_err());
    }
}
