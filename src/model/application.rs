//! The `Application` resource (`logbook.dev/v1alpha1`): image, replicas, port, host.
//!
//! The CRD in `schema/application.crd.yaml` is generated from these types (`logbook crd`), and
//! everything a schema can check (ranges, patterns, required fields) is checked there, so the API
//! server rejects bad specs itself; what it cannot check is in [`crate::reconcile::validate`].

use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A DNS subdomain, lowercase, as an Ingress rule's host must be (no wildcard).
pub const HOST_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// An HTTP path for an Ingress rule or a probe: starts with `/`, no whitespace.
pub const PATH_PATTERN: &str = r"^/[^\s]*$";
/// An environment variable name, as Kubernetes accepts it.
pub const ENV_NAME_PATTERN: &str = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$";
/// A resource quantity (`500m`, `1.5`, `256Mi`, `1e3`), as Kubernetes parses it.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

fn default_replicas() -> i32 {
    1
}
fn default_port() -> i32 {
    8080
}
fn default_path() -> String {
    "/".to_string()
}

/// What a developer asks for: run this image, this many times, on this port, behind this host.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "logbook.dev",
    version = "v1alpha1",
    kind = "Application",
    plural = "applications",
    shortname = "app",
    shortname = "apps",
    namespaced,
    doc = "An application logbook runs: a Deployment, a Service and a rule in the namespace's shared Ingress.",
    status = "ApplicationStatus",
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The container image to run, e.g. `ghcr.io/acme/web:1.4.2`.
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,
    /// How many pods to run.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// The port the container listens on; the Service exposes it on the same number.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// The DNS name to route to this application through the namespace's shared Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = HOST_PATTERN))]
    pub host: Option<String>,
    /// The HTTP path prefix routed to this application when `host` is set.
    #[serde(default = "default_path")]
    #[schemars(length(max = 1024), regex(pattern = PATH_PATTERN))]
    pub path: String,
    /// Environment variables: literal values, or references to a Secret or ConfigMap key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,
    /// Resource requests and limits of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// An HTTP readiness check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

/// One environment variable: exactly one of `value`, `secretKeyRef` or `configMapKeyRef`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// The variable's name.
    #[schemars(length(min = 1, max = 256), regex(pattern = ENV_NAME_PATTERN))]
    pub name: String,
    /// A literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Take the value from a key of a Secret in the same namespace (never copied anywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    /// Take the value from a key of a ConfigMap in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

/// A key in a Secret or ConfigMap of the Application's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct KeyRef {
    /// The Secret's or ConfigMap's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within it.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Requests and limits for `cpu` and `memory`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct Resources {
    /// What the scheduler reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceList>,
    /// The most the container may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceList>,
}

/// Quantities of cpu and memory, in Kubernetes notation (`250m`, `512Mi`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct ResourceList {
    /// CPU, e.g. `250m` or `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub cpu: Option<String>,
    /// Memory, e.g. `256Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub memory: Option<String>,
}

/// An HTTP GET readiness check against the application's port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// The path to GET, e.g. `/healthz`; any 2xx or 3xx answer means ready.
    #[schemars(length(max = 1024), regex(pattern = PATH_PATTERN))]
    pub path: String,
}

/// What logbook reports back about an Application.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Invalid`, each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where the application answers, when it has a host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How many pods are ready, as the Deployment reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The action that last wrote this status, stamped by the executor: the fencing token
    /// that keeps an older plan's status from overwriting a newer one. The planner never sets
    /// it and never compares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,
}

/// Which action last wrote an Application's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastAction {
    /// The action's id (also the `Audit-ID` of the write).
    pub action_id: String,
    /// The sequence of the plan that produced it, in the controller's log.
    pub plan_seq: u64,
}

/// A status condition, in the shape of `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Progressing` or `Invalid`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word saying why.
    pub reason: String,
    /// A sentence for humans.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339, seconds), taken from the log, never from a clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The condition types logbook writes.
pub mod condition {
    /// All replicas of the current generation are ready.
    pub const READY: &str = "Ready";
    /// A rollout is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// The spec cannot be turned into children; the message says why.
    pub const INVALID: &str = "Invalid";
}

/// The CRD of [`Application`] as YAML, exactly as checked in at `schema/application.crd.yaml`.
pub fn crd_yaml() -> String {
    let crd = Application::crd();
    let value = serde_json::to_value(&crd).unwrap_or_default();
    let body = serde_saphyr::to_string(&value).unwrap_or_default();
    format!("# Generated by `logbook crd` from src/model/application.rs; do not edit.\n{body}")
}

impl Application {
    /// `namespace/name` of this Application (namespace empty when unset).
    pub fn key(&self) -> crate::record::ObjKey {
        crate::record::ObjKey::new(
            "Application",
            self.metadata.namespace.as_deref().unwrap_or_default(),
            self.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}
