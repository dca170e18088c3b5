//! Unknown fields and the `fieldValidation` parameter of create, update, patch and apply, as
//! the real API server has them: `Strict` refuses an object with a field its schema does not
//! declare (400, naming the field), `Warn` (the default) drops it and says so in a
//! `Warning: 299` header, `Ignore` drops it silently. Built-in kinds are checked against their
//! Go types as `k8s-openapi` has them (an object is decoded into its type and encoded again: a
//! field that does not come back is unknown), custom resources against their CRD schema (see
//! [`super::schema`]) and `metadata` against ObjectMeta. Owns the parameter, the detection for
//! built-in kinds and the messages; it must not store anything.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::status::ApiError;

/// What a request asked to be done with unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (the server's default).
    Warn,
    /// Refuse the request.
    Strict,
}

impl FieldValidation {
    /// The `fieldValidation` query parameter of a write (`options` names the options kind in
    /// the error: `CreateOptions`, `UpdateOptions`, `PatchOptions`); anything but `Ignore`,
    /// `Warn`, `Strict` or nothing is a 422, as on the real server.
    pub fn parse(value: Option<&str>, options: &str) -> Result<FieldValidation, ApiError> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::invalid(
                options,
                "meta.k8s.io",
                "",
                vec![(
                    "fieldValidation".into(),
                    format!(
                        "Unsupported value: \"{other}\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
                    ),
                )],
            )),
        }
    }

    /// What becomes of a write whose object had these unknown fields (paths such as
    /// `spec.foo`): the warnings to send, or the error that refuses it. `apply` says the
    /// write is a server-side apply, whose errors the real server words differently.
    pub fn judge(
        self,
        unknown: &[String],
        kind: &str,
        version: &str,
        apply: Option<(&str, &str, &str)>,
    ) -> Result<Vec<String>, ApiError> {
        if unknown.is_empty() || self == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        if self == FieldValidation::Warn {
            return Ok(unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect());
        }
        let message = match apply {
            Some((ns, name, api_version)) => {
                let fields: Vec<String> = unknown
                    .iter()
                    .map(|f| format!(".{f}: field not declared in schema"))
                    .collect();
                let at = if ns.is_empty() {
                    name.to_string()
                } else {
                    format!("{ns}/{name}")
                };
                format!(
                    "failed to create typed patch object ({at}; {api_version}, Kind={kind}): {}",
                    fields.join(", ")
                )
            }
            None => {
                let fields: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                    fields.join(", ")
                )
            }
        };
        Err(ApiError::bad_request(message))
    }
}

/// A `Warning` header's value for one warning (RFC 7234 `299 - "text"`, quotes escaped).
pub fn warning_header(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("299 - \"{escaped}\"")
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Option<Value> {
    let typed: T = serde_json::from_value(v.clone()).ok()?;
    serde_json::to_value(&typed).ok()
}

/// Remove from `input` what is not in `known` (its decoded and encoded self), adding the
/// paths removed to `out`. Nulls are left alone: the decoder takes them as "unset".
fn prune(input: &mut Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(m), Value::Object(k)) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(&key) {
                    Some(kv) => {
                        if let Some(v) = m.get_mut(&key) {
                            prune(v, kv, &child, out);
                        }
                    }
                    None if m.get(&key).is_some_and(|v| !v.is_null()) => {
                        m.remove(&key);
                        out.push(child);
                    }
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(k)) => {
            for (i, (v, kv)) in a.iter_mut().zip(k).enumerate() {
                prune(v, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn prune_as<T: DeserializeOwned + Serialize>(obj: &mut Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(known) = roundtrip::<T>(obj) {
        prune(obj, &known, path, &mut out);
    }
    out
}

/// Drop the fields of a built-in kind's object (by resource id, `group/plural`) that its type
/// does not have, and say which. An object that does not decode as its type at all (a wrong
/// type somewhere) is left as it is; a kind the sandbox has no type for has nothing unknown.
pub fn prune_builtin(id: &str, obj: &mut Value) -> Vec<String> {
    use k8s_openapi::api::{apps, coordination, core, events, networking};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    match id {
        "/namespaces" => prune_as::<core::v1::Namespace>(obj, ""),
        "/services" => prune_as::<core::v1::Service>(obj, ""),
        "/configmaps" => prune_as::<core::v1::ConfigMap>(obj, ""),
        "/secrets" => prune_as::<core::v1::Secret>(obj, ""),
        "/events" => prune_as::<core::v1::Event>(obj, ""),
        "events.k8s.io/events" => prune_as::<events::v1::Event>(obj, ""),
        "apps/deployments" => prune_as::<apps::v1::Deployment>(obj, ""),
        "networking.k8s.io/ingresses" => prune_as::<networking::v1::Ingress>(obj, ""),
        "coordination.k8s.io/leases" => prune_as::<coordination::v1::Lease>(obj, ""),
        "apiextensions.k8s.io/customresourcedefinitions" => {
            prune_as::<ext::CustomResourceDefinition>(obj, "")
        }
        _ => Vec::new(),
    }
}

/// Drop the fields of an object's `metadata` that ObjectMeta does not have, and say which.
pub fn prune_metadata(obj: &mut Value) -> Vec<String> {
    match obj.get_mut("metadata") {
        Some(m) => {
            prune_as::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(m, "metadata")
        }
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_of_built_in_kinds() {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {}, "bogus": 1},
            "spec": {"replicas": 2, "foo": true, "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": null, "extra": 1}]}}}});
        let unknown = prune_builtin("apps/deployments", &mut d);
        assert_eq!(
            unknown,
            [
                "metadata.bogus",
                "spec.foo",
                "spec.template.spec.containers[0].extra"
            ]
        );
        assert!(d["spec"].get("foo").is_none());
        assert_eq!(d["spec"]["replicas"], 2);
        assert!(d["metadata"].get("labels").is_some());
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
            "data": {"any": "key"}});
        assert!(prune_builtin("/configmaps", &mut cm).is_empty());
        let mut app = json!({"metadata": {"name": "a", "nmae": "typo"}});
        assert_eq!(prune_metadata(&mut app), ["metadata.nmae"]);
    }

    #[test]
    fn strict_warn_ignore() {
        let unknown = vec!["spec.foo".to_string()];
        let fv = |v| FieldValidation::parse(Some(v), "CreateOptions");
        assert_eq!(
            fv("Ignore").and_then(|f| f.judge(&unknown, "Application", "v1alpha1", None)),
            Ok(vec![])
        );
        assert_eq!(
            fv("").and_then(|f| f.judge(&unknown, "Application", "v1alpha1", None)),
            Ok(vec!["unknown field \"spec.foo\"".to_string()])
        );
        let e = fv("Strict")
            .and_then(|f| f.judge(&unknown, "Application", "v1alpha1", None))
            .expect_err("strict");
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .contains("strict decoding error: unknown field \"spec.foo\"")
        );
        let e = fv("Strict")
            .and_then(|f| {
                f.judge(
                    &unknown,
                    "Application",
                    "v1alpha1",
                    Some(("shop", "web", "logbook.dev/v1alpha1")),
                )
            })
            .expect_err("strict apply");
        assert!(
            e.message
                .contains(".spec.foo: field not declared in schema")
        );
        assert_eq!(fv("strict").map_err(|e| e.code), Err(422));
        assert_eq!(
            warning_header("unknown field \"spec.foo\""),
            r#"299 - "unknown field \"spec.foo\"""#
        );
    }
}
