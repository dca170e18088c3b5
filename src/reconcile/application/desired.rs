//! The children an Application asks for: its Deployment and Service, built directly as JSON
//! (the planner's hot path; a unit test checks them against k8s-openapi types), and its rule in
//! the namespace's shared Ingress. Pure.

use super::{APP_API_VERSION, ApplicationReconciler, DEPLOYMENT, INGRESS, SERVICE};
use crate::model::{
    Application, SHARED_INGRESS, child_labels, image_tag, ingress_labels, selector_labels,
};
use crate::world::APPLICATION;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

impl ApplicationReconciler {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_test::AppTest;
    use crate::reconcile::PlannerConfig;
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
