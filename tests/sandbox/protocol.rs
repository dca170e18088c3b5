//! Protocol fidelity (issue 14), driven by the real clients: one Event served through both
//! `v1` and `events.k8s.io/v1`, request bodies without a Content-Type taken as JSON (the
//! official Python client), `fieldValidation` on unknown fields.

use logbook_testkit::sandbox as support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use logbook::model::Application;
use serde_json::json;
use support::{bounded, install_crd, start};

use crate::kubectl::{Kubectl, repo_file};

fn event_about(app: &Application, name: &str, reason: &str, note: &str) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(
            "2026-01-02T03:04:05Z"
                .parse::<k8s_openapi::jiff::Timestamp>()
                .expect("time"),
        )),
        regarding: Some(ObjectReference {
            api_version: Some("logbook.dev/v1alpha1".into()),
            kind: Some("Application".into()),
            namespace: Some("default".into()),
            name: app.metadata.name.clone(),
            uid: app.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        reason: Some(reason.into()),
        action: Some("Apply".into()),
        note: Some(note.into()),
        type_: Some("Normal".into()),
        reporting_controller: Some("logbook.dev/controller".into()),
        reporting_instance: Some("logbook-0".into()),
        ..Event::default()
    }
}

/// An Event written through `events.k8s.io/v1` (as logbook's controller writes them) is the
/// same object through `v1`: `kubectl get events` lists it, `kubectl describe` shows it on the
/// Application, field selectors of both groups find it, a change through one group is seen
/// through the other and by a watch on it.
#[tokio::test]
async fn one_event_through_both_groups() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        install_crd(&client).await;
        let k = Kubectl::for_sandbox(&sandbox);
        k.ok(&["apply", "-f", &repo_file("examples/sandbox-app.yaml")])
            .await;
        let apps: Api<Application> = Api::namespaced(client.clone(), "default");
        let app = apps.get("web").await.expect("the Application");

        let v1: Api<Event> = Api::namespaced(client.clone(), "default");
        let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
        // A watch through core v1, started before the Event exists.
        let rv = core
            .list(&ListParams::default())
            .await
            .expect("list core Events")
            .metadata
            .resource_version
            .unwrap_or_default();
        let mut watch = Box::pin(
            core.watch(&WatchParams::default().timeout(20), &rv)
                .await
                .expect("watch core Events"),
        );

        let created = v1
            .create(
                &PostParams::default(),
                &event_about(&app, "web.1", "Created", "created Deployment web"),
            )
            .await
            .expect("create an events.k8s.io Event");
        assert_eq!(created.note.as_deref(), Some("created Deployment web"));

        use futures::StreamExt;
        let seen = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("the core watch sees the Event within 10 s")
            .expect("a watch event")
            .expect("a good watch event");
        let WatchEvent::Added(e) = seen else {
            panic!("expected ADDED, got {seen:?}");
        };
        assert_eq!(e.message.as_deref(), Some("created Deployment web"));
        assert_eq!(e.involved_object.name.as_deref(), Some("web"));

        // Through core v1, the mapped fields.
        let c = core.get("web.1").await.expect("the same Event through v1");
        assert_eq!(c.message.as_deref(), Some("created Deployment web"));
        assert_eq!(c.involved_object.kind.as_deref(), Some("Application"));
        assert_eq!(c.involved_object.uid, app.metadata.uid);
        assert_eq!(
            c.reporting_component.as_deref(),
            Some("logbook.dev/controller")
        );
        assert_eq!(c.reporting_instance.as_deref(), Some("logbook-0"));
        assert_eq!(c.action.as_deref(), Some("Apply"));
        assert_eq!(c.reason.as_deref(), Some("Created"));
        assert_eq!(c.type_.as_deref(), Some("Normal"));
        assert!(c.event_time.is_some());
        assert_eq!(c.metadata.uid, created.metadata.uid);
        assert_eq!(c.metadata.resource_version, created.metadata.resource_version);

        // Field selectors: core labels on v1, events.k8s.io labels on events.k8s.io.
        let uid = app.metadata.uid.clone().unwrap_or_default();
        let found = core
            .list(&ListParams::default().fields(&format!(
                "involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Application,involvedObject.uid={uid}"
            )))
            .await
            .expect("core field selector");
        assert_eq!(found.items.len(), 1);
        let none = core
            .list(&ListParams::default().fields("involvedObject.name=other"))
            .await
            .expect("core field selector");
        assert!(none.items.is_empty());
        let found = v1
            .list(&ListParams::default().fields("regarding.name=web,reportingController=logbook.dev/controller"))
            .await
            .expect("events.k8s.io field selector");
        assert_eq!(found.items.len(), 1);
        let refused = v1
            .list(&ListParams::default().fields("involvedObject.name=web"))
            .await;
        let (code, _) = support::api_error(refused);
        assert_eq!(code, 400, "events.k8s.io has no involvedObject field label");

        // A change through core v1 is seen through events.k8s.io.
        core.patch(
            "web.1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "message": "created Deployment web (2 replicas)", "count": 3 })),
        )
        .await
        .expect("patch through v1");
        let e = v1.get("web.1").await.expect("through events.k8s.io");
        assert_eq!(e.note.as_deref(), Some("created Deployment web (2 replicas)"));
        assert_eq!(e.deprecated_count, Some(3));
        assert_eq!(e.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("web"));
        let raw = serde_json::to_value(&e).expect("json");
        assert!(raw.get("message").is_none() && raw.get("involvedObject").is_none(), "{raw}");

        // kubectl, as a user would look.
        v1.create(
            &PostParams::default(),
            &event_about(&app, "web.2", "Updated", "updated Service web"),
        )
        .await
        .expect("second Event");
        let events = k.ok(&["get", "events"]).await;
        assert!(
            events.contains("Created") && events.contains("updated Service web"),
            "{events}"
        );
        let described = k.ok(&["describe", "app", "web"]).await;
        let tail = described
            .split("Events:")
            .nth(1)
            .unwrap_or_else(|| panic!("no Events section:\n{described}"));
        assert!(
            !tail.contains("<none>")
                && tail.contains("Created")
                && tail.contains("updated Service web"),
            "{described}"
        );
        let through_v1 = k.ok(&["get", "events.events.k8s.io", "-o", "json"]).await;
        let list: serde_json::Value = serde_json::from_str(&through_v1).expect("kubectl JSON");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
        assert_eq!(list["items"][1]["note"], "updated Service web");

        // Deleting through one group deletes it from both.
        core.delete("web.2", &Default::default())
            .await
            .expect("delete through v1");
        let (code, _) = support::api_error(v1.get("web.2").await);
        assert_eq!(code, 404, "gone through events.k8s.io too");
        drop(watch);
        sandbox.shutdown().await;
    })
    .await;
}

/// The `kubernetes` package's version `make tools` installs.
const PYTHON_CLIENT: &str = "kubernetes==37.0.2";

/// Whether python3 can import the official client. Without it the test fails, saying how to
/// install it, unless `LOGBOOK_SKIP_PYTHON_CLIENT=1` says it cannot be installed here; then it
/// is skipped, loudly.
async fn python_client_available() -> bool {
    let probe = tokio::process::Command::new("python3")
        .args(["-c", "import kubernetes"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let ok = matches!(
        tokio::time::timeout(Duration::from_secs(30), probe).await,
        Ok(Ok(out)) if out.status.success()
    );
    if ok {
        return true;
    }
    if std::env::var("LOGBOOK_SKIP_PYTHON_CLIENT").as_deref() == Ok("1") {
        eprintln!(
            "\n*** SKIPPED: the official Python client is not installed and \
             LOGBOOK_SKIP_PYTHON_CLIENT=1 says it cannot be; nothing about it was tested ***\n"
        );
        return false;
    }
    panic!(
        "python3 cannot import the official Kubernetes client; `make tools` installs it \
         (python3 -m pip install {PYTHON_CLIENT}), or set LOGBOOK_SKIP_PYTHON_CLIENT=1 where it \
         truly cannot be installed"
    );
}

/// The official Python client creates and replaces objects without a Content-Type; the real
/// API server takes such a body as JSON, and so must the sandbox.
#[tokio::test]
async fn the_python_client_creates_without_a_content_type() {
    bounded(async {
        if !python_client_available().await {
            return;
        }
        let sandbox = start().await;
        install_crd(&sandbox.client()).await;
        let k = Kubectl::for_sandbox(&sandbox);
        let script = repo_file("tests/sandbox/clients/python_client.py");
        let run = tokio::process::Command::new("python3")
            .arg(&script)
            .arg(&k.kubeconfig)
            .arg("py")
            .env("HOME", k.home.path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(40), run)
            .await
            .expect("the Python client finishes within 40 s")
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the Python client failed:\n{stdout}\n{stderr}");
        let seen: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("the script's output is not JSON ({e}):\n{stdout}"));
        assert_eq!(
            seen,
            json!({
                "namespace": "Active",
                "configmap": { "greeting": "hi" },
                "replicas": 1,
                "application": { "image": "ghcr.io/acme/storefront:1", "port": 8080, "replicas": 1, "path": "/" },
            })
        );
        // And the objects are there for any client.
        let apps: Api<Application> = Api::namespaced(sandbox.client(), "py");
        assert!(apps.get("storefront").await.is_ok());
        sandbox.shutdown().await;
    })
    .await;
}

/// Unknown fields: kubectl sends `fieldValidation=Strict` on apply and create, and the server
/// refuses the object naming the field; `--validate=warn` gets a warning and the field
/// dropped; `--validate=false` drops it silently. Custom resources are judged by their CRD
/// schema, built-in kinds by their type, metadata by ObjectMeta.
#[tokio::test]
async fn unknown_fields_are_refused_warned_or_dropped() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        install_crd(&client).await;
        let k = Kubectl::for_sandbox(&sandbox);
        let write = |name: &str, text: &str| {
            let path = k.home.path().join(name);
            std::fs::write(&path, text).expect("write a manifest");
            path.display().to_string()
        };
        let app = write(
            "app.yaml",
            "apiVersion: logbook.dev/v1alpha1\nkind: Application\nmetadata:\n  name: storefront\n  namespace: default\nspec:\n  image: ghcr.io/acme/storefront:1\n  foo: bar\n",
        );
        for args in [
            vec!["apply", "-f", &app],
            vec!["create", "-f", &app],
            vec!["apply", "--server-side", "-f", &app],
        ] {
            let out = k.run(&args).await;
            assert!(!out.ok, "kubectl {args:?} accepted an unknown field:\n{}", out.stdout);
            assert!(
                out.stderr.contains("unknown field \"spec.foo\"")
                    || out.stderr.contains(".spec.foo: field not declared in schema"),
                "kubectl {args:?}: the error names the field:\n{}",
                out.stderr
            );
        }
        let apps: Api<Application> = Api::namespaced(client.clone(), "default");
        assert_eq!(support::api_error(apps.get("storefront").await).0, 404);

        let out = k.run(&["apply", "--validate=warn", "-f", &app]).await;
        assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("Warning: unknown field \"spec.foo\""),
            "{}",
            out.stderr
        );
        let raw = k
            .ok(&["get", "app", "storefront", "-o", "json"])
            .await;
        let stored: serde_json::Value = serde_json::from_str(&raw).expect("kubectl JSON");
        assert!(stored["spec"].get("foo").is_none(), "{stored}");
        assert_eq!(stored["spec"]["image"], "ghcr.io/acme/storefront:1");

        let out = k.run(&["apply", "--validate=false", "-f", &app]).await;
        assert!(out.ok && !out.stderr.contains("Warning"), "{}\n{}", out.stdout, out.stderr);

        // Metadata is ObjectMeta, for every kind.
        let typo = write(
            "typo.yaml",
            "apiVersion: logbook.dev/v1alpha1\nkind: Application\nmetadata:\n  name: other\n  namespace: default\n  lables:\n    a: b\nspec:\n  image: x\n",
        );
        let out = k.run(&["apply", "-f", &typo]).await;
        assert!(
            !out.ok && out.stderr.contains("metadata.lables"),
            "{}\n{}",
            out.stdout,
            out.stderr
        );

        // Built-in kinds: a Deployment and a ConfigMap.
        let deploy = write(
            "deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx\n        imagePolicy: Always\n",
        );
        let out = k.run(&["apply", "-f", &deploy]).await;
        assert!(
            !out.ok
                && out
                    .stderr
                    .contains("unknown field \"spec.template.spec.containers[0].imagePolicy\""),
            "{}\n{}",
            out.stdout,
            out.stderr
        );
        let cm = write(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  a: b\nspec:\n  x: 1\n",
        );
        let out = k.run(&["create", "-f", &cm]).await;
        assert!(
            !out.ok && out.stderr.contains("unknown field \"spec\""),
            "{}\n{}",
            out.stdout,
            out.stderr
        );
        // Known fields pass strict validation.
        k.ok(&["apply", "-f", &repo_file("examples/sandbox-app.yaml")])
            .await;

        // kube sends no fieldValidation: the server's default, Warn, drops the field.
        let dynamic = support::dynamic(&client, "default", "logbook.dev", "v1alpha1", "Application", "applications");
        let obj: kube::core::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "logbook.dev/v1alpha1", "kind": "Application",
            "metadata": { "name": "from-kube" },
            "spec": { "image": "x", "foo": 1 }
        }))
        .expect("literal");
        let made = dynamic
            .create(&PostParams::default(), &obj)
            .await
            .expect("created with a warning");
        assert!(made.data["spec"].get("foo").is_none(), "{:?}", made.data);

        // An unsupported directive is a 422, as on the real server.
        let (code, status) = support::raw(
            &client,
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Sometimes",
            Some("application/json"),
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"z"}}"#.to_vec(),
        )
        .await;
        assert_eq!(code, 422, "{status}");
        assert!(status["message"].as_str().unwrap_or_default().contains("fieldValidation"), "{status}");
        sandbox.shutdown().await;
    })
    .await;
}

/// `kubectl apply -f` of a `kind: List` validates on the client against OpenAPI v2 (which
/// has no definitions here, so the server's strict validation does the checking), and
/// `kubectl explain` reads the kinds' schemas from OpenAPI v3.
#[tokio::test]
async fn kubectl_applies_lists_and_explains() {
    bounded(async {
        let sandbox = start().await;
        install_crd(&sandbox.client()).await;
        let k = Kubectl::for_sandbox(&sandbox);
        let list = |extra: &str| {
            json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    { "apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": { "name": "settings", "namespace": "default" },
                      "data": { "greeting": "hello" } },
                    { "apiVersion": "logbook.dev/v1alpha1", "kind": "Application",
                      "metadata": { "name": "storefront", "namespace": "default" },
                      "spec": { "image": format!("ghcr.io/acme/storefront:1{extra}") } },
                ],
            })
        };
        let path = k.home.path().join("list.json");
        std::fs::write(&path, list("").to_string()).expect("write list.json");
        let file = path.display().to_string();
        let out = k.ok(&["apply", "-f", &file]).await;
        assert!(
            out.contains("configmap/settings created")
                && out.contains("application.logbook.dev/storefront created"),
            "{out}"
        );
        // An unknown field in an item is still refused, by the server, naming it.
        let mut bad = list("");
        bad["items"][1]["spec"]["foo"] = json!(1);
        std::fs::write(&path, bad.to_string()).expect("write list.json");
        let out = k.run(&["apply", "-f", &file]).await;
        assert!(
            !out.ok && out.stderr.contains("unknown field \"spec.foo\""),
            "{}\n{}",
            out.stdout,
            out.stderr
        );

        let explained = k.ok(&["explain", "app.spec"]).await;
        for want in [
            "KIND:       Application",
            "FIELD: spec",
            "image",
            "replicas",
            "port",
            "host",
        ] {
            assert!(explained.contains(want), "no {want:?} in:\n{explained}");
        }
        let explained = k.ok(&["explain", "app.spec.replicas"]).await;
        assert!(explained.contains("integer"), "{explained}");
        let explained = k.ok(&["explain", "app.metadata.labels"]).await;
        assert!(explained.contains("map[string]string"), "{explained}");
        let explained = k.ok(&["explain", "deployment.spec.strategy"]).await;
        assert!(explained.contains("rollingUpdate"), "{explained}");
        let out = k.run(&["explain", "app.spec.nothing"]).await;
        assert!(
            !out.ok && out.stderr.contains("nothing"),
            "{}\n{}",
            out.stdout,
            out.stderr
        );
        sandbox.shutdown().await;
    })
    .await;
}

/// kubectl's imperative commands send built-in kinds as protobuf: Namespaces, ConfigMaps,
/// Secrets, Deployments and Services are decoded and answered in JSON; another kind gets a 415
/// that says to send JSON.
#[tokio::test]
async fn kubectl_imperative_commands_send_protobuf() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let k = Kubectl::for_sandbox(&sandbox);
        let out = k.ok(&["create", "namespace", "shop"]).await;
        assert!(out.contains("namespace/shop created"), "{out}");
        let out = k
            .ok(&[
                "create",
                "configmap",
                "settings",
                "-n",
                "shop",
                "--from-literal=greeting=hello",
                "--from-literal=lang=en",
            ])
            .await;
        assert!(out.contains("configmap/settings created"), "{out}");
        let out = k
            .ok(&[
                "create",
                "secret",
                "generic",
                "creds",
                "-n",
                "shop",
                "--from-literal=password=hunter2",
            ])
            .await;
        assert!(out.contains("secret/creds created"), "{out}");

        // What was stored is what was sent, read back through kube (JSON).
        use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
        let ns = Api::<Namespace>::all(client.clone())
            .get("shop")
            .await
            .expect("the Namespace");
        assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
        let cm = Api::<ConfigMap>::namespaced(client.clone(), "shop")
            .get("settings")
            .await
            .expect("the ConfigMap");
        let data = cm.data.unwrap_or_default();
        assert_eq!(data.get("greeting").map(String::as_str), Some("hello"));
        assert_eq!(data.get("lang").map(String::as_str), Some("en"));
        let secret = Api::<Secret>::namespaced(client.clone(), "shop")
            .get("creds")
            .await
            .expect("the Secret");
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let data = secret.data.unwrap_or_default();
        assert_eq!(
            data.get("password").map(|b| b.0.as_slice()),
            Some(&b"hunter2"[..])
        );
        assert!(
            ns.metadata.creation_timestamp.is_some() && cm.metadata.uid.is_some(),
            "the server's bookkeeping is added as for JSON"
        );

        // Unknown fields are still judged: none here, so no warning.
        let out = k.run(&["create", "configmap", "other", "-n", "shop"]).await;
        assert!(
            out.ok && !out.stderr.contains("Warning"),
            "{}\n{}",
            out.stdout,
            out.stderr
        );

        // A Deployment, as `kubectl create deployment` builds it.
        let out = k
            .ok(&[
                "create",
                "deployment",
                "web",
                "-n",
                "shop",
                "--image=nginx:1.27",
                "--port=8080",
                "--replicas=2",
            ])
            .await;
        assert!(out.contains("deployment.apps/web created"), "{out}");
        use k8s_openapi::api::apps::v1::Deployment;
        let d = Api::<Deployment>::namespaced(client.clone(), "shop")
            .get("web")
            .await
            .expect("the Deployment");
        let spec = d.spec;
        assert_eq!(spec.replicas, Some(2));
        let labels = spec.selector.match_labels.unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        let pod = spec.template.spec.expect("a pod spec");
        assert_eq!(pod.containers[0].image.as_deref(), Some("nginx:1.27"));
        assert_eq!(
            pod.containers[0]
                .ports
                .as_ref()
                .map(|p| p[0].container_port),
            Some(8080)
        );
        let out = k.ok(&["get", "deployment", "web", "-n", "shop"]).await;
        assert!(out.contains("web"), "{out}");

        // A Service, as `kubectl create service` builds it.
        let out = k
            .ok(&[
                "create",
                "service",
                "clusterip",
                "web",
                "-n",
                "shop",
                "--tcp=80:8080",
            ])
            .await;
        assert!(out.contains("service/web created"), "{out}");
        use k8s_openapi::api::core::v1::Service;
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let svc = Api::<Service>::namespaced(client.clone(), "shop")
            .get("web")
            .await
            .expect("the Service");
        let spec = svc.spec.expect("a spec");
        let port = &spec.ports.expect("ports")[0];
        assert_eq!(
            (port.port, port.target_port.clone()),
            (80, Some(IntOrString::Int(8080)))
        );
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert!(
            spec.cluster_ip.is_some_and(|ip| !ip.is_empty()),
            "the server allocates one"
        );

        // A kind whose protobuf the sandbox does not convert: a clear 415, nothing created.
        let out = k
            .run(&[
                "create",
                "ingress",
                "web",
                "-n",
                "shop",
                "--rule=web.example.com/=web:80",
            ])
            .await;
        assert!(
            !out.ok && out.stderr.contains("send this one as JSON or YAML"),
            "{}\n{}",
            out.stdout,
            out.stderr
        );
        sandbox.shutdown().await;
    })
    .await;
}
