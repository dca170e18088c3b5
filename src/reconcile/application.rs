//! The Application reconciler: each Application becomes a Deployment and a Service named after
//! it, a rule in its namespace's shared Ingress, and a status; invalid specs get no children.
//!
//! Desired Deployments and Services are built directly as JSON (the hot path; a unit test
//! checks them against the same objects built from k8s-openapi types), the Ingress from types,
//! and compared with what is known (observed, or on its way as a pending action) through
//! [`covers`]. Pure: no I/O, no clock.

use super::diff::covers;
use super::validate::{Invalid, host_holder, validate};
use super::{PlannerConfig, Reconciler};
use crate::model::{
    Application, ApplicationStatus, Condition, SHARED_INGRESS, child_labels, condition, image_tag,
    ingress_labels, selector_labels,
};
use crate::record::{Action, ObjKey, Verb};
use crate::world::{APPLICATION, Observed, World};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const DEPLOYMENT: &str = "Deployment";
const SERVICE: &str = "Service";
const INGRESS: &str = "Ingress";
const APP_API_VERSION: &str = "logbook.dev/v1alpha1";

/// Plans Deployments, Services, shared Ingresses and statuses for Applications.
#[derive(Clone, Debug, Default)]
pub struct ApplicationReconciler {
    config: PlannerConfig,
}

impl ApplicationReconciler {
    /// A reconciler with `config`.
    pub fn new(config: PlannerConfig) -> Self {
        ApplicationReconciler { config }
    }

    /// The Deployment `app` asks for, built directly as JSON (the planner's hot path); a unit
    /// test checks it against a builder from k8s-openapi types, built from k8s-openapi types.
    pub fn desired_deployment(&self, ns: &str, name: &str, app: &Application) -> Value {
        let spec = &app.spec;
        let labels = json_labels(child_labels(name, "server", image_tag(&spec.image)));
        let mut container = serde_json::Map::new();
        container.insert(
            "name".into(),
            Value::String(self.config.container_name.clone()),
        );
        container.insert("image".into(), Value::String(spec.image.clone()));
        container.insert(
            "ports".into(),
            json!([{"name": "http", "containerPort": spec.port}]),
        );
        if !spec.env.is_empty() {
            let env: Vec<Value> = spec
                .env
                .iter()
                .map(|e| {
                    let mut v = serde_json::Map::new();
                    v.insert("name".into(), Value::String(e.name.clone()));
                    if let Some(value) = &e.value {
                        v.insert("value".into(), Value::String(value.clone()));
                    }
                    match (&e.secret_key_ref, &e.config_map_key_ref) {
                        (Some(r), _) => {
                            v.insert(
                                "valueFrom".into(),
                                json!({"secretKeyRef": {"name": r.name, "key": r.key}}),
                            );
                        }
                        (None, Some(r)) => {
                            v.insert(
                                "valueFrom".into(),
                                json!({"configMapKeyRef": {"name": r.name, "key": r.key}}),
                            );
                        }
                        (None, None) => {}
                    }
                    Value::Object(v)
                })
                .collect();
            container.insert("env".into(), Value::Array(env));
        }
        let limits = spec.resources.as_ref().and_then(|r| r.limits.as_ref());
        let requests = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .or(self.config.default_requests.as_ref());
        {
            let list = |l: Option<&crate::model::ResourceList>| {
                let l = l?;
                let mut m = serde_json::Map::new();
                if let Some(cpu) = &l.cpu {
                    m.insert("cpu".into(), Value::String(cpu.clone()));
                }
                if let Some(mem) = &l.memory {
                    m.insert("memory".into(), Value::String(mem.clone()));
                }
                (!m.is_empty()).then_some(Value::Object(m))
            };
            let mut res = serde_json::Map::new();
            if let Some(l) = list(limits) {
                res.insert("limits".into(), l);
            }
            if let Some(l) = list(requests) {
                res.insert("requests".into(), l);
            }
            if !res.is_empty() {
                container.insert("resources".into(), Value::Object(res));
            }
        }
        if let Some(h) = &spec.health_check {
            let probe = json!({"httpGet": {"path": h.path, "port": "http"}});
            if self.config.liveness_probes {
                container.insert("livenessProbe".into(), probe.clone());
            }
            container.insert("readinessProbe".into(), probe);
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": DEPLOYMENT,
            "metadata": self.child_meta_json(ns, name, app, labels.clone()),
            "spec": {
                "replicas": spec.replicas,
                "selector": {"matchLabels": json_labels(selector_labels(name))},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [Value::Object(container)]},
                },
            },
        })
    }

    /// The Service `app` asks for, built directly as JSON; checked against
    /// a builder from k8s-openapi types by a unit test.
    pub fn desired_service(&self, ns: &str, name: &str, app: &Application) -> Value {
        let labels = json_labels(child_labels(name, "server", image_tag(&app.spec.image)));
        json!({
            "apiVersion": "v1",
            "kind": SERVICE,
            "metadata": self.child_meta_json(ns, name, app, labels),
            "spec": {
                "selector": json_labels(selector_labels(name)),
                "ports": [{"name": "http", "port": app.spec.port, "targetPort": "http"}],
            },
        })
    }

    fn child_meta_json(&self, ns: &str, name: &str, app: &Application, labels: Value) -> Value {
        let mut meta = serde_json::Map::new();
        meta.insert("name".into(), Value::String(name.to_string()));
        meta.insert("namespace".into(), Value::String(ns.to_string()));
        meta.insert("labels".into(), labels);
        if let Some(uid) = app.metadata.uid.as_ref().filter(|u| !u.is_empty()) {
            meta.insert(
                "ownerReferences".into(),
                json!([{
                    "apiVersion": APP_API_VERSION,
                    "kind": APPLICATION,
                    "name": name,
                    "uid": uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }]),
            );
        }
        Value::Object(meta)
    }

    /// The shared Ingress of `ns` with `rules` (sorted by host), or `None` when there are none.
    pub fn desired_ingress(&self, ns: &str, rules: Vec<IngressRule>) -> Option<Value> {
        if rules.is_empty() {
            return None;
        }
        let ingress = Ingress {
            metadata: ObjectMeta {
                name: Some(SHARED_INGRESS.to_string()),
                namespace: Some(ns.to_string()),
                labels: Some(ingress_labels()),
                ..Default::default()
            },
            spec: Some(IngressSpec {
                ingress_class_name: self.config.ingress_class.clone(),
                rules: Some(rules),
                ..Default::default()
            }),
            status: None,
        };
        Some(with_type(ingress, "networking.k8s.io/v1", INGRESS))
    }

    /// The rule of the shared Ingress that routes `host` to the Application `name`'s Service.
    pub fn ingress_rule(&self, name: &str, host: &str, app: &Application) -> IngressRule {
        IngressRule {
            host: Some(host.to_string()),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some(app.spec.path.clone()),
                    path_type: self.config.path_type.clone(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: name.to_string(),
                            port: Some(ServiceBackendPort {
                                number: Some(app.spec.port),
                                ..Default::default()
                            }),
                        }),
                        ..Default::default()
                    },
                }],
            }),
        }
    }

    /// The status `app` should have, given what is known of its Deployment.
    fn desired_status(
        &self,
        world: &World,
        app: &Application,
        invalid: Option<&Invalid>,
        deployment: Option<&Observed>,
        deployment_current: bool,
    ) -> ApplicationStatus {
        let generation = app.metadata.generation;
        let old = app
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let cond = |type_: &str, status: bool, reason: &str, message: String| {
            let status = if status { "True" } else { "False" };
            let since = old
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .or_else(|| world.now().map(str::to_string));
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                last_transition_time: since,
                observed_generation: generation,
            }
        };
        let ready_replicas =
            deployment.map(|d| int_at(&d.object, "/status/readyReplicas").unwrap_or(0) as i32);
        let conditions = match invalid {
            Some(inv) => vec![
                cond(condition::INVALID, true, inv.reason(), inv.message()),
                cond(
                    condition::PROGRESSING,
                    false,
                    "Invalid",
                    "nothing is rolled out while the spec is invalid".into(),
                ),
                cond(condition::READY, false, "Invalid", inv.message()),
            ],
            None => {
                let want = app.spec.replicas;
                let valid = cond(
                    condition::INVALID,
                    false,
                    "Valid",
                    "the spec is valid".into(),
                );
                match deployment {
                    None => vec![
                        valid,
                        cond(
                            condition::PROGRESSING,
                            true,
                            "Creating",
                            "the Deployment is being created".into(),
                        ),
                        cond(
                            condition::READY,
                            false,
                            "Pending",
                            "the Deployment does not exist yet".into(),
                        ),
                    ],
                    Some(d) => {
                        let ready = ready_replicas.unwrap_or(0);
                        let observed = int_at(&d.object, "/status/observedGeneration").unwrap_or(0);
                        let dgen = int_at(&d.object, "/metadata/generation").unwrap_or(0);
                        let rolled = deployment_current && observed >= dgen && ready >= want;
                        if rolled {
                            vec![
                                valid,
                                cond(
                                    condition::PROGRESSING,
                                    false,
                                    "Complete",
                                    format!("{want} of {want} replicas ready"),
                                ),
                                cond(
                                    condition::READY,
                                    true,
                                    "Available",
                                    format!("{ready} of {want} replicas ready"),
                                ),
                            ]
                        } else {
                            let msg = format!("{ready} of {want} replicas ready");
                            vec![
                                valid,
                                cond(condition::PROGRESSING, true, "RollingOut", msg.clone()),
                                cond(condition::READY, false, "RollingOut", msg),
                            ]
                        }
                    }
                }
            }
        };
        let url = match (invalid, &app.spec.host) {
            (None, Some(host)) => Some(format!("http://{host}{}", app.spec.path)),
            _ => None,
        };
        ApplicationStatus {
            observed_generation: generation,
            conditions,
            url,
            ready_replicas,
            last_action: None,
        }
    }

    /// Plans one Application: its Deployment, Service, stray children and status.
    fn plan_app(&self, world: &World, key: &ObjKey, out: &mut Vec<Action>) {
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let app_ref = format!("{ns}/{name}");
        let Some(app) = world.app(key) else {
            // The Application is gone: its children go too.
            for child in world.children_of(ns, name) {
                if child.kind == INGRESS {
                    continue;
                }
                self.delete(
                    world,
                    child,
                    Some(app_ref.clone()),
                    "orphaned: its Application is gone",
                    out,
                );
            }
            return;
        };
        if app.metadata.deletion_timestamp.is_some() {
            return;
        }
        let app_obs = world.object(key);
        let invalid = validate(world, ns, name, app).err();
        let dep_key = ObjKey::new(DEPLOYMENT, ns, name);
        let mut deployment_current = false;
        if invalid.is_none() {
            let dep = self.desired_deployment(ns, name, app);
            let basis = basis_of(key, app_obs);
            deployment_current = self.converge(
                world,
                basis.clone(),
                &dep_key,
                "apps/v1",
                dep,
                Some(app_ref.clone()),
                out,
            );
            let svc = self.desired_service(ns, name, app);
            self.converge(
                world,
                basis,
                &ObjKey::new(SERVICE, ns, name),
                "v1",
                svc,
                Some(app_ref.clone()),
                out,
            );
            for child in world.children_of(ns, name) {
                if child.kind != INGRESS
                    && !(child.name == name && (child.kind == DEPLOYMENT || child.kind == SERVICE))
                {
                    self.delete(
                        world,
                        child,
                        Some(app_ref.clone()),
                        "stray: not a child its Application asks for",
                        out,
                    );
                }
            }
        }
        let dep_obs = world.object(&dep_key).filter(|d| d.is_managed());
        let status = self.desired_status(world, app, invalid.as_ref(), dep_obs, deployment_current);
        let pending_status = match world.pending(key) {
            Some(p) if p.verb == Verb::Status => p
                .object
                .as_ref()
                .and_then(|o| o.get("status"))
                .and_then(|s| serde_json::from_value::<ApplicationStatus>(s.clone()).ok()),
            _ => None,
        };
        let current = pending_status.as_ref().or(app.status.as_ref());
        if !current.is_some_and(|c| same_but_times(c, &status)) {
            let object = serde_json::json!({
                "apiVersion": APP_API_VERSION,
                "kind": APPLICATION,
                "metadata": {"name": name, "namespace": ns},
                "status": status,
            });
            let reason = status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::READY)
                .map(|c| format!("status: Ready={} ({})", c.status, c.reason))
                .unwrap_or_else(|| "status".to_string());
            let mut basis = basis_of(key, app_obs);
            if let Some(d) = dep_obs {
                basis.insert(dep_key.to_string(), d.resource_version.clone());
            }
            out.push(Action::new(
                Verb::Status,
                key.clone(),
                APP_API_VERSION,
                Some(app_ref),
                Some(object),
                None,
                reason,
                basis,
            ));
        }
    }

    /// Plans a namespace's shared Ingress: one rule per valid Application holding its host.
    fn plan_ingress(&self, world: &World, ns: &str, out: &mut Vec<Action>) {
        let mut rules = Vec::new();
        let mut basis = BTreeMap::new();
        for name in world.app_names_in(ns) {
            let key = ObjKey::new(APPLICATION, ns, name);
            let Some(app) = world.app(&key) else { continue };
            let Some(host) = app.spec.host.as_deref() else {
                continue;
            };
            if app.metadata.deletion_timestamp.is_some() || validate(world, ns, name, app).is_err()
            {
                continue;
            }
            if host_holder(world, host).is_some_and(|h| h.namespace == ns && &h.name == name) {
                rules.push(self.ingress_rule(name, host, app));
                basis.extend(basis_of(&key, world.object(&key)));
            }
        }
        rules.sort_by(|a, b| a.host.cmp(&b.host));
        let key = ObjKey::new(INGRESS, ns, SHARED_INGRESS);
        match self.desired_ingress(ns, rules) {
            Some(ing) => {
                self.converge(world, basis, &key, "networking.k8s.io/v1", ing, None, out);
            }
            None => {
                if world.object(&key).is_some_and(Observed::is_managed) {
                    self.delete(
                        world,
                        &key,
                        None,
                        "no Application in the namespace has a host",
                        out,
                    );
                }
            }
        }
    }

    /// Creates or applies `desired` at `key` unless what is known (pending or observed) already
    /// covers it. Returns true when nothing needed doing. Never touches unmanaged objects.
    #[allow(clippy::too_many_arguments)]
    fn converge(
        &self,
        world: &World,
        mut basis: BTreeMap<String, String>,
        key: &ObjKey,
        api_version: &str,
        desired: Value,
        app: Option<String>,
        out: &mut Vec<Action>,
    ) -> bool {
        let observed = world.object(key);
        if observed.is_some_and(|o| !o.is_managed()) {
            // Someone else's object with our name: never touched.
            return false;
        }
        if let Some(o) = observed {
            basis.insert(key.to_string(), o.resource_version.clone());
        }
        let (verb, reason) = match world.pending(key) {
            Some(p) if matches!(p.verb, Verb::Create | Verb::Apply) => {
                match p.object.as_ref().map(|o| covers(o, &desired)) {
                    Some(Ok(())) => {
                        return observed.is_some_and(|o| covers(&o.object, &desired).is_ok());
                    }
                    Some(Err(path)) => {
                        basis.insert("pending".to_string(), p.id.clone());
                        (
                            if observed.is_some() {
                                Verb::Apply
                            } else {
                                Verb::Create
                            },
                            format!("changed at {path} since the last action"),
                        )
                    }
                    None => (Verb::Apply, "pending action has no object".to_string()),
                }
            }
            Some(p) if p.verb == Verb::Delete => {
                basis.insert("pending".to_string(), p.id.clone());
                (Verb::Create, "missing (being deleted)".to_string())
            }
            _ => match observed {
                None => (Verb::Create, "missing".to_string()),
                Some(o) => match covers(&o.object, &desired) {
                    Ok(()) => return true,
                    Err(path) => (Verb::Apply, format!("drift at {path}")),
                },
            },
        };
        out.push(Action::new(
            verb,
            key.clone(),
            api_version,
            app,
            Some(desired),
            None,
            reason,
            basis,
        ));
        false
    }

    fn delete(
        &self,
        world: &World,
        key: &ObjKey,
        app: Option<String>,
        reason: &str,
        out: &mut Vec<Action>,
    ) {
        let Some(o) = world.object(key) else { return };
        if !o.is_managed() || world.pending(key).is_some_and(|p| p.verb == Verb::Delete) {
            return;
        }
        let uid = (!o.uid.is_empty()).then(|| o.uid.clone());
        let basis = basis_of(key, Some(o));
        out.push(Action::new(
            Verb::Delete,
            key.clone(),
            &o.api_version,
            app,
            None,
            uid,
            reason.to_string(),
            basis,
        ));
    }
}

impl Reconciler for ApplicationReconciler {
    fn name(&self) -> &'static str {
        "application"
    }

    fn reads(&self) -> &'static [&'static str] {
        &[APPLICATION, DEPLOYMENT, SERVICE, INGRESS]
    }

    fn manages(&self) -> &'static [&'static str] {
        &[DEPLOYMENT, SERVICE, INGRESS, "Application/status"]
    }

    fn scopes_for(&self, world: &World, key: &ObjKey) -> BTreeSet<ObjKey> {
        let mut scopes = BTreeSet::new();
        let ns = key.namespace.as_str();
        match key.kind.as_str() {
            APPLICATION => {
                scopes.insert(key.clone());
                scopes.insert(ObjKey::new(INGRESS, ns, SHARED_INGRESS));
                if let Some(host) = world.app(key).and_then(|a| a.spec.host.as_deref()) {
                    for claim in world.host_claims(host) {
                        scopes.insert(ObjKey::new(APPLICATION, &claim.namespace, &claim.name));
                        scopes.insert(ObjKey::new(INGRESS, &claim.namespace, SHARED_INGRESS));
                    }
                }
            }
            INGRESS if key.name == SHARED_INGRESS => {
                scopes.insert(ObjKey::new(INGRESS, ns, SHARED_INGRESS));
            }
            _ => {
                if let Some(app) = world
                    .object(key)
                    .filter(|o| o.is_managed())
                    .and_then(|o| o.label(crate::model::INSTANCE_LABEL))
                {
                    scopes.insert(ObjKey::new(APPLICATION, ns, app));
                } else if key.kind == DEPLOYMENT || key.kind == SERVICE {
                    // a child that vanished: its Application (same name) may need it back
                    scopes.insert(ObjKey::new(APPLICATION, ns, &key.name));
                }
            }
        }
        scopes
    }

    fn all_scopes(&self, world: &World) -> BTreeSet<ObjKey> {
        let mut scopes: BTreeSet<ObjKey> = world.apps().map(|(k, _)| k.clone()).collect();
        scopes.extend(
            world
                .child_owners()
                .map(|(ns, app)| ObjKey::new(APPLICATION, ns, app)),
        );
        scopes.extend(
            world
                .namespaces()
                .into_iter()
                .map(|ns| ObjKey::new(INGRESS, &ns, SHARED_INGRESS)),
        );
        scopes
    }

    fn plan_scope(&self, world: &World, scope: &ObjKey, out: &mut Vec<Action>) {
        match scope.kind.as_str() {
            APPLICATION => self.plan_app(world, scope, out),
            INGRESS if scope.name == SHARED_INGRESS => {
                self.plan_ingress(world, &scope.namespace, out)
            }
            _ => {}
        }
    }
}

/// Serializes a typed object and sets its `apiVersion` and `kind`.
fn with_type<T: Serialize>(object: T, api_version: &str, kind: &str) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(api_version.into()));
        map.insert("kind".into(), Value::String(kind.into()));
        map.remove("status");
    }
    v
}

fn json_labels(labels: BTreeMap<String, String>) -> Value {
    Value::Object(
        labels
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn int_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

fn basis_of(key: &ObjKey, observed: Option<&Observed>) -> BTreeMap<String, String> {
    let mut basis = BTreeMap::new();
    if let Some(o) = observed {
        basis.insert(key.to_string(), o.resource_version.clone());
    }
    basis
}

/// Equal in everything but the conditions' lastTransitionTime. (Destructured, so a field
/// added to the status cannot be forgotten here.)
fn same_but_times(a: &ApplicationStatus, b: &ApplicationStatus) -> bool {
    let ApplicationStatus {
        observed_generation,
        conditions,
        url,
        ready_replicas,
        last_action: _,
    } = a;
    *observed_generation == b.observed_generation
        && *url == b.url
        && *ready_replicas == b.ready_replicas
        && conditions.len() == b.conditions.len()
        && conditions.iter().zip(&b.conditions).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, Container, ContainerPort, EnvVar as K8sEnvVar, EnvVarSource,
        HTTPGetAction, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SecretKeySelector,
        Service, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    /// The Deployment `app` asks for, from k8s-openapi types: the reference the JSON builder
    /// is tested against.
    fn desired_deployment_typed(
        r: &ApplicationReconciler,
        ns: &str,
        name: &str,
        app: &Application,
    ) -> Value {
        let spec = &app.spec;
        let labels = child_labels(name, "server", image_tag(&spec.image));
        let env: Vec<K8sEnvVar> = spec
            .env
            .iter()
            .map(|e| K8sEnvVar {
                name: e.name.clone(),
                value: e.value.clone(),
                value_from: match (&e.secret_key_ref, &e.config_map_key_ref) {
                    (Some(s), _) => Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: s.name.clone(),
                            key: s.key.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    (None, Some(c)) => Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: c.name.clone(),
                            key: c.key.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    (None, None) => None,
                },
            })
            .collect();
        let resources = {
            let list = |l: Option<&crate::model::ResourceList>| {
                let l = l?;
                let mut m = BTreeMap::new();
                if let Some(cpu) = &l.cpu {
                    m.insert("cpu".to_string(), Quantity(cpu.clone()));
                }
                if let Some(mem) = &l.memory {
                    m.insert("memory".to_string(), Quantity(mem.clone()));
                }
                (!m.is_empty()).then_some(m)
            };
            let req = ResourceRequirements {
                requests: list(
                    spec.resources
                        .as_ref()
                        .and_then(|r| r.requests.as_ref())
                        .or(r.config.default_requests.as_ref()),
                ),
                limits: list(spec.resources.as_ref().and_then(|r| r.limits.as_ref())),
                ..Default::default()
            };
            (req.requests.is_some() || req.limits.is_some()).then_some(req)
        };
        let probe = spec.health_check.as_ref().map(|h| Probe {
            http_get: Some(HTTPGetAction {
                path: Some(h.path.clone()),
                port: IntOrString::String("http".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let container = Container {
            name: r.config.container_name.clone(),
            image: Some(spec.image.clone()),
            ports: Some(vec![ContainerPort {
                name: Some("http".to_string()),
                container_port: spec.port,
                ..Default::default()
            }]),
            env: (!env.is_empty()).then_some(env),
            resources,
            liveness_probe: probe.clone().filter(|_| r.config.liveness_probes),
            readiness_probe: probe,
            ..Default::default()
        };
        let deployment = Deployment {
            metadata: child_meta(ns, name, app, labels.clone()),
            spec: DeploymentSpec {
                replicas: Some(spec.replicas),
                selector: LabelSelector {
                    match_labels: Some(selector_labels(name)),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
            status: None,
        };
        with_type(deployment, "apps/v1", DEPLOYMENT)
    }

    /// The Service `app` asks for, from k8s-openapi types (the reference of the JSON builder).
    fn desired_service_typed(ns: &str, name: &str, app: &Application) -> Value {
        let service = Service {
            metadata: child_meta(
                ns,
                name,
                app,
                child_labels(name, "server", image_tag(&app.spec.image)),
            ),
            spec: Some(ServiceSpec {
                selector: Some(selector_labels(name)),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_string()),
                    port: app.spec.port,
                    target_port: Some(IntOrString::String("http".to_string())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        };
        with_type(service, "v1", SERVICE)
    }

    fn child_meta(
        ns: &str,
        name: &str,
        app: &Application,
        labels: BTreeMap<String, String>,
    ) -> ObjectMeta {
        let owner = app
            .metadata
            .uid
            .as_ref()
            .filter(|u| !u.is_empty())
            .map(|uid| {
                vec![OwnerReference {
                    api_version: APP_API_VERSION.to_string(),
                    kind: APPLICATION.to_string(),
                    name: name.to_string(),
                    uid: uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            });
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            labels: Some(labels),
            owner_references: owner,
            ..Default::default()
        }
    }

    #[test]
    fn json_builders_match_the_typed_objects() {
        let r = ApplicationReconciler::new(PlannerConfig::default());
        let mut full = Application::test("ns", "web")
            .image("ghcr.io/acme/web:2.1")
            .replicas(3)
            .port(9000)
            .env("A", "1")
            .secret_env("B", "s", "k")
            .health_check("/healthz")
            .build();
        full.spec.env.push(crate::model::EnvVar {
            name: "C".into(),
            value: None,
            secret_key_ref: None,
            config_map_key_ref: Some(crate::model::KeyRef {
                name: "cm".into(),
                key: "c".into(),
            }),
        });
        full.spec.resources = Some(crate::model::Resources {
            requests: Some(crate::model::ResourceList {
                cpu: Some("250m".into()),
                memory: None,
            }),
            limits: Some(crate::model::ResourceList {
                cpu: Some("1".into()),
                memory: Some("1Gi".into()),
            }),
        });
        let mut bare = Application::test("ns", "bare").build();
        bare.metadata.uid = None;
        let probed = Application::test("ns", "probed")
            .health_check("/ready")
            .build();
        let switched = ApplicationReconciler::new(PlannerConfig {
            default_requests: Some(crate::model::ResourceList {
                cpu: Some("100m".into()),
                memory: Some("128Mi".into()),
            }),
            liveness_probes: true,
            ..PlannerConfig::default()
        });
        for r in [&r, &switched] {
            for app in [&full, &bare, &probed] {
                let name = app.metadata.name.clone().unwrap_or_default();
                assert_eq!(
                    r.desired_deployment("ns", &name, app),
                    desired_deployment_typed(r, "ns", &name, app)
                );
                assert_eq!(
                    r.desired_service("ns", &name, app),
                    desired_service_typed("ns", &name, app)
                );
            }
        }
        // The default applies only where the Application asks for no requests, and the switch
        // only where it has a health check.
        let container = |r: &ApplicationReconciler, app: &Application| {
            let name = app.metadata.name.clone().unwrap_or_default();
            r.desired_deployment("ns", &name, app)["spec"]["template"]["spec"]["containers"][0]
                .clone()
        };
        assert_eq!(
            container(&switched, &full)["resources"]["requests"]["cpu"],
            "250m"
        );
        assert_eq!(
            container(&switched, &bare)["resources"]["requests"]["memory"],
            "128Mi"
        );
        assert!(container(&r, &bare).get("resources").is_none());
        assert!(container(&switched, &bare).get("livenessProbe").is_none());
        assert_eq!(
            container(&switched, &probed)["livenessProbe"]["httpGet"]["path"],
            "/ready"
        );
        assert!(container(&r, &probed).get("livenessProbe").is_none());
        // Settings at their default leave the digest of older logs unchanged.
        assert_eq!(
            serde_json::to_string(&PlannerConfig::default()).unwrap_or_default(),
            r#"{"ingressClass":null,"pathType":"Prefix","containerName":"app"}"#
        );
    }
}
