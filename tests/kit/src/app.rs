//! Fluent builders for tests and benches: `Application::test("shop", "web").host(..).build()`
//! (through [`AppTest`]), any object as observed, and a world holding objects.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use logbook::model::{Application, ApplicationSpec, EnvVar, HealthCheck, KeyRef};
use logbook::record::ObjKey;
use logbook::world::{Observed, World};
use serde_json::{Value, json};

/// Builds an [`Application`]: `Application::test("shop", "web").host("shop.example.com")`.
#[derive(Clone, Debug)]
pub struct AppBuilder {
    app: Application,
}

/// `Application::test(namespace, name)`: a test Application's builder, for test code only
/// (`use logbook_testkit::AppTest;`), never a method of the shipped type.
pub trait AppTest {
    /// A valid Application `namespace/name` running `nginx:1.27` with uid `uid-NAMESPACE-NAME`.
    fn test(namespace: &str, name: &str) -> AppBuilder;
}

impl AppTest for Application {
    fn test(namespace: &str, name: &str) -> AppBuilder {
        let mut app = Application::new(
            name,
            ApplicationSpec {
                image: "nginx:1.27".into(),
                replicas: 1,
                port: 8080,
                host: None,
                path: "/".into(),
                env: vec![],
                resources: None,
                health_check: None,
            },
        );
        app.metadata = ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some(format!("uid-{namespace}-{name}")),
            generation: Some(1),
            resource_version: Some("1".into()),
            ..Default::default()
        };
        AppBuilder { app }
    }
}

impl AppBuilder {
    /// Sets the image.
    pub fn image(mut self, image: &str) -> Self {
        self.app.spec.image = image.into();
        self
    }
    /// Sets the replica count.
    pub fn replicas(mut self, n: i32) -> Self {
        self.app.spec.replicas = n;
        self
    }
    /// Sets the container port.
    pub fn port(mut self, port: i32) -> Self {
        self.app.spec.port = port;
        self
    }
    /// Sets the host (and optionally keeps the default path).
    pub fn host(mut self, host: &str) -> Self {
        self.app.spec.host = Some(host.into());
        self
    }
    /// Sets the path.
    pub fn path(mut self, path: &str) -> Self {
        self.app.spec.path = path.into();
        self
    }
    /// Adds a literal environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.app.spec.env.push(EnvVar {
            name: name.into(),
            value: Some(value.into()),
            secret_key_ref: None,
            config_map_key_ref: None,
        });
        self
    }
    /// Adds an environment variable taken from a Secret key.
    pub fn secret_env(mut self, name: &str, secret: &str, key: &str) -> Self {
        self.app.spec.env.push(EnvVar {
            name: name.into(),
            value: None,
            secret_key_ref: Some(KeyRef {
                name: secret.into(),
                key: key.into(),
            }),
            config_map_key_ref: None,
        });
        self
    }
    /// Sets an HTTP readiness check.
    pub fn health_check(mut self, path: &str) -> Self {
        self.app.spec.health_check = Some(HealthCheck { path: path.into() });
        self
    }
    /// Sets the creationTimestamp from seconds since the epoch.
    pub fn created(mut self, secs: i64) -> Self {
        self.app.metadata.creation_timestamp = k8s_openapi::jiff::Timestamp::from_second(secs)
            .ok()
            .map(Time);
        self
    }
    /// Sets the resourceVersion.
    pub fn resource_version(mut self, rv: &str) -> Self {
        self.app.metadata.resource_version = Some(rv.into());
        self
    }
    /// Sets the generation.
    pub fn generation(mut self, g: i64) -> Self {
        self.app.metadata.generation = Some(g);
        self
    }
    /// The Application.
    pub fn build(self) -> Application {
        self.app
    }
    /// The Application as observed: its key and JSON.
    pub fn observed(self) -> (ObjKey, Observed) {
        observed(&self.app)
    }
}

/// Any serializable object as observed (key, uid and resourceVersion read from it).
pub fn observed<T: serde::Serialize>(object: &T) -> (ObjKey, Observed) {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if value.get("kind").is_none()
        && let Some(map) = value.as_object_mut()
    {
        map.insert("apiVersion".into(), json!("logbook.dev/v1alpha1"));
        map.insert("kind".into(), json!("Application"));
    }
    match Observed::from_value(value) {
        Ok(pair) => pair,
        Err(e) => panic!("fixture object is malformed: {e}"),
    }
}

/// A world holding `objects`.
pub fn world_of(objects: impl IntoIterator<Item = (ObjKey, Observed)>) -> World {
    let mut world = World::new();
    for (k, o) in objects {
        if let Err(e) = world.observe(k, o) {
            panic!("fixture object rejected: {e}");
        }
    }
    world
}
