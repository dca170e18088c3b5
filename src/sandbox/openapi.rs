//! OpenAPI, as kubectl reads it. `/openapi/v3` indexes one document per group version; each
//! (`/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`) has, per resource, the PUT and
//! PATCH operations with the `fieldValidation` parameter (so kubectl leaves field validation to
//! the server) and the kind's schema under `components.schemas` with its
//! `x-kubernetes-group-version-kind`, for `kubectl explain`: built-in kinds from their
//! `k8s-openapi` types (names as the real server's: `io.k8s.api.apps.v1.Deployment`), custom
//! resources from their CRD's `openAPIV3Schema` with `apiVersion`, `kind` and ObjectMeta added
//! (`dev.logbook.v1alpha1.Application`). `/openapi/v2` is a document with no definitions (as
//! protobuf or JSON): kubectl's client-side validation, which reads v2, then finds no schema
//! and leaves the checks to the server, which makes them (see [`super::fields`]). It must not
//! claim schemas it does not have.

use std::sync::OnceLock;

use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use super::resources::{Registry, ResourceType};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group-version documents.
pub fn index(reg: &Registry, rv: u64) -> Value {
    let mut paths = Map::new();
    for (g, vs) in reg.groups() {
        for v in vs {
            let p = gv_path(&g, &v);
            paths.insert(
                p.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{p}?hash={rv:016X}") }),
            );
        }
    }
    json!({ "paths": paths })
}

/// A type's schema as OpenAPI v3 (`#/components/schemas/...` references): its name, the
/// schema, and the schemas it refers to.
fn typed<T: JsonSchema>() -> (String, Value, Map<String, Value>) {
    let mut settings = schemars::generate::SchemaSettings::openapi3();
    settings.meta_schema = None;
    let root = settings.into_generator().into_root_schema_for::<T>();
    let mut root = serde_json::to_value(&root).unwrap_or_default();
    let components = root
        .as_object_mut()
        .and_then(|o| o.remove("components"))
        .and_then(|mut c| c.as_object_mut().and_then(|c| c.remove("schemas")))
        .and_then(|s| match s {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    let name = root
        .as_object_mut()
        .and_then(|o| o.remove("title"))
        .and_then(|t| t.as_str().map(String::from))
        .unwrap_or_else(|| T::schema_name().into_owned());
    (name, root, components)
}

/// The schemas of the built-in kinds, by resource id (`group/plural`), made once.
fn builtin(id: &str) -> Option<&'static (String, Value, Map<String, Value>)> {
    use k8s_openapi::api::{apps, coordination, core, events, networking};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    type Made = (String, Value, Map<String, Value>);
    static ALL: OnceLock<Vec<(&'static str, Made)>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        vec![
            ("/namespaces", typed::<core::v1::Namespace>()),
            ("/services", typed::<core::v1::Service>()),
            ("/configmaps", typed::<core::v1::ConfigMap>()),
            ("/secrets", typed::<core::v1::Secret>()),
            ("/events", typed::<core::v1::Event>()),
            ("events.k8s.io/events", typed::<events::v1::Event>()),
            ("apps/deployments", typed::<apps::v1::Deployment>()),
            (
                "networking.k8s.io/ingresses",
                typed::<networking::v1::Ingress>(),
            ),
            (
                "coordination.k8s.io/leases",
                typed::<coordination::v1::Lease>(),
            ),
            (
                "apiextensions.k8s.io/customresourcedefinitions",
                typed::<ext::CustomResourceDefinition>(),
            ),
        ]
    });
    all.iter().find(|(i, _)| *i == id).map(|(_, m)| m)
}

/// ObjectMeta's schema and the schemas it refers to.
fn object_meta() -> &'static (String, Value, Map<String, Value>) {
    static META: OnceLock<(String, Value, Map<String, Value>)> = OnceLock::new();
    META.get_or_init(typed::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>)
}

/// `dev.logbook` for `logbook.dev`: how the real server names a CRD's schemas.
fn reversed(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

/// A custom resource version's schema, as the real server publishes it: the CRD's
/// `openAPIV3Schema` with `apiVersion`, `kind` and `metadata` (ObjectMeta) declared.
fn custom(
    t: &ResourceType,
    version: &str,
    schemas: &mut Map<String, Value>,
) -> Option<(String, Value)> {
    let mut s = t.version(version)?.schema.clone()?;
    let props = s
        .as_object_mut()?
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()?;
    props.insert("apiVersion".into(), json!({
        "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
        "type": "string",
    }));
    props.insert("kind".into(), json!({
        "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        "type": "string",
    }));
    let (meta_name, meta, meta_refs) = object_meta();
    props.insert("metadata".into(), json!({
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        "allOf": [ { "$ref": format!("#/components/schemas/{meta_name}") } ],
    }));
    schemas.insert(meta_name.clone(), meta.clone());
    for (k, v) in meta_refs {
        schemas.insert(k.clone(), v.clone());
    }
    Some((format!("{}.{version}.{}", reversed(&t.group), t.kind), s))
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`, if served.
pub fn group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for t in reg
        .all()
        .filter(|t| t.group == group && t.version(version).is_some())
    {
        let gvk = json!({ "group": t.group, "version": version, "kind": t.kind });
        let base = format!("/{}", gv_path(group, version));
        let item = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", t.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    { "name": "fieldValidation", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
                    { "name": "fieldManager", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
                    { "name": "dryRun", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
                ],
                "responses": { "200": { "description": "OK" } },
            })
        };
        paths.insert(item, json!({ "patch": op("patch"), "put": op("put") }));
        let made = if t.crd.is_some() {
            custom(t, version, &mut schemas)
        } else {
            builtin(&t.id()).map(|(name, schema, refs)| {
                for (k, v) in refs {
                    schemas.insert(k.clone(), v.clone());
                }
                (name.clone(), schema.clone())
            })
        };
        if let Some((name, mut schema)) = made {
            if let Some(o) = schema.as_object_mut() {
                o.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
            }
            schemas.insert(name, schema);
        }
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": format!("v1.{}.0", super::discovery::KUBE_MINOR) },
        "paths": paths,
        "components": { "schemas": schemas },
    }))
}

/// The media type of OpenAPI v2 as protobuf (gnostic's `openapi_v2.Document`).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2`: a document with no definitions, as protobuf when the client asks for it
/// (kubectl does; an empty message is a valid empty `Document`) or else as JSON.
pub fn v2(accept: &str) -> (&'static str, Vec<u8>) {
    if accept.contains("protobuf") {
        return (V2_PROTOBUF, Vec::new());
    }
    let doc = json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": format!("v1.{}.0", super::discovery::KUBE_MINOR) },
        "paths": {},
        "definitions": {},
    });
    (
        "application/json",
        serde_json::to_vec(&doc).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::resources::from_crd;

    #[test]
    fn built_in_and_custom_schemas() {
        let mut reg = Registry::with_builtins();
        let doc = group_version(&reg, "apps", "v1").expect("apps/v1");
        let d = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(d["properties"]["spec"].is_object());
        assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"].is_object());
        assert!(
            doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
                .is_object()
        );

        let crd: Value = serde_json::from_value(json!({
            "metadata": {"name": "applications.logbook.dev"},
            "spec": {"group": "logbook.dev", "scope": "Namespaced",
                "names": {"plural": "applications", "kind": "Application"},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"image": {"type": "string"}}}}}}}]}
        }))
        .expect("literal");
        reg.insert(from_crd(&crd).expect("a valid CRD"));
        let doc = group_version(&reg, "logbook.dev", "v1alpha1").expect("served");
        let a = &doc["components"]["schemas"]["dev.logbook.v1alpha1.Application"];
        assert_eq!(
            a["properties"]["spec"]["properties"]["image"]["type"],
            "string"
        );
        assert_eq!(a["properties"]["kind"]["type"], "string");
        assert_eq!(
            a["x-kubernetes-group-version-kind"][0]["group"],
            "logbook.dev"
        );
        assert!(
            doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
                .is_object()
        );
        assert_eq!(
            v2("application/com.github.proto-openapi.spec.v2@v1.0+protobuf").1,
            b""
        );
    }
}
