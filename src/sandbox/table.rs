//! `meta.k8s.io/v1` Table answers for `kubectl get`, from printer columns and simple JSONPath
//! (Pods: the API server's printer, in `node::printer`).
//! Owns column rendering; it must not decide which objects are listed.

use std::sync::Arc;

use serde_json::{Value, json};

use super::meta;
use super::resources::{PrinterColumn, ResourceType};

/// A Table of `objects` with the resource's printer columns (after `Name`).
pub fn table(
    rtype: &ResourceType,
    version: &str,
    objects: &[Arc<Value>],
    rv: &str,
    cont: &str,
) -> Value {
    let columns: Vec<PrinterColumn> = rtype
        .version(version)
        .map(|v| v.columns.clone())
        .unwrap_or_default();
    let mut defs = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    })];
    for c in &columns {
        defs.push(json!({
            "name": c.name, "type": c.type_, "format": c.format,
            "description": c.description, "priority": c.priority,
        }));
    }
    let pods = rtype.id() == "/pods";
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![json!(meta::name(o))];
            if pods {
                cells.extend(super::node::printer::cells(o));
            } else {
                for c in &columns {
                    cells.push(cell(c, o));
                }
            }
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                },
            })
        })
        .collect();
    let mut metadata = json!({});
    if !rv.is_empty() {
        metadata["resourceVersion"] = json!(rv);
    }
    if !cont.is_empty() {
        metadata["continue"] = json!(cont);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn cell(c: &PrinterColumn, obj: &Value) -> Value {
    let found = jsonpath(obj, &c.json_path);
    let Some(first) = found.first() else {
        return Value::Null;
    };
    match c.type_.as_str() {
        "date" => match first
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        {
            Some(t) => json!(human_age(chrono::Utc::now().signed_duration_since(t))),
            None => Value::Null,
        },
        "integer" | "number" | "boolean" => (*first).clone(),
        _ => {
            let parts: Vec<String> = found
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            json!(parts.join(","))
        }
    }
}

/// Ages as kubectl prints them: `45s`, `3m12s`, `5h`, `2d`.
pub(crate) fn human_age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10800 => format!("{}m", s / 60),
        10800..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Ok(i) = inner.parse() {
                steps.push(Step::Index(i));
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let (field, value) = f.split_once("==")?;
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                steps.push(Step::Filter(field.trim().to_string(), value.to_string()));
            } else {
                let name = inner.trim_matches(|c| c == '"' || c == '\'');
                steps.push(Step::Field(name.to_string()));
            }
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Field(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    Some(steps)
}

/// Evaluate the JSONPath subset printer columns use: `.a.b`, `[0]`, `[*]`,
/// `[?(@.type=="Ready")]`. Unknown syntax finds nothing.
pub fn jsonpath<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse_path(path) else {
        return Vec::new();
    };
    let mut cur = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(i) => next.extend(v.get(*i)),
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(f, want) => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter().filter(|x| {
                            x.get(f.as_str()).is_some_and(|y| match y {
                                Value::String(s) => s == want,
                                other => serde_json::to_string(other).is_ok_and(|s| s == *want),
                            })
                        }));
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"spec":{"image":"x","rules":[{"host":"a"},{"host":"b"}]},
            "status":{"conditions":[{"type":"Other","reason":"no"},{"type":"Ready","reason":"Running"}]}});
        assert_eq!(jsonpath(&o, ".spec.image"), vec![&json!("x")]);
        assert_eq!(jsonpath(&o, ".spec.rules[*].host").len(), 2);
        assert_eq!(jsonpath(&o, ".spec.rules[1].host"), vec![&json!("b")]);
        assert_eq!(
            jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].reason"),
            vec![&json!("Running")]
        );
        assert!(jsonpath(&o, ".nope.x").is_empty());
        assert!(jsonpath(&o, ".a[").is_empty());
    }
}
