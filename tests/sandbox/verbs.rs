//! Every verb of the sandbox through the real `kube::Client`, for built-in kinds and the
//! Application CRD: bookkeeping, preconditions, patch types, server-side apply, status,
//! garbage collection, simulated Deployment readiness and discovery.

use logbook_testkit::sandbox as support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret, Service};
use k8s_openapi::api::events::v1::Event as EventV1;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kube::core::ObjectMeta;
use kube::discovery::Discovery;
use logbook::model::{Application, ApplicationSpec, ApplicationStatus};
use serde_json::json;
use support::{api_error, bounded, eventually, install_crd, raw, start};

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [ { "name": "web", "image": "nginx:1.27" } ] }
            }
        }
    }))
    .expect("deployment literal")
}

fn rv(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .unwrap_or("")
        .parse()
        .expect("numeric resourceVersion")
}

#[tokio::test]
async fn create_get_list_update_delete_with_bookkeeping() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let pp = PostParams::default();

        let a = cms
            .create(&pp, &cm("a", &[("app", "web")]))
            .await
            .expect("create");
        assert!(a.metadata.uid.is_some(), "uid assigned");
        assert!(
            a.metadata.creation_timestamp.is_some(),
            "creationTimestamp assigned"
        );
        assert_eq!(a.metadata.namespace.as_deref(), Some("default"));
        let b = cms
            .create(&pp, &cm("b", &[("app", "db")]))
            .await
            .expect("create b");
        assert!(
            rv(&b.metadata) > rv(&a.metadata),
            "one increasing resourceVersion"
        );

        assert_eq!(
            api_error(cms.create(&pp, &cm("a", &[])).await),
            (409, "AlreadyExists".into())
        );
        assert_eq!(api_error(cms.get("nope").await), (404, "NotFound".into()));
        let other: Api<ConfigMap> = Api::namespaced(client.clone(), "no-such-ns");
        assert_eq!(
            api_error(other.create(&pp, &cm("x", &[])).await),
            (404, "NotFound".into())
        );
        let bad_name = cm("Not_Valid", &[]);
        assert_eq!(
            api_error(cms.create(&pp, &bad_name).await),
            (422, "Invalid".into())
        );

        let got = cms.get("a").await.expect("get");
        assert_eq!(got.metadata.uid, a.metadata.uid);

        // Selectors.
        let web = cms
            .list(&ListParams::default().labels("app=web"))
            .await
            .expect("list");
        assert_eq!(web.items.len(), 1);
        let not_web = cms
            .list(&ListParams::default().labels("app!=web"))
            .await
            .expect("list");
        assert_eq!(not_web.items.len(), 1);
        let set = cms
            .list(&ListParams::default().labels("app in (web,db)"))
            .await
            .expect("list");
        assert_eq!(set.items.len(), 2);
        let by_name = cms
            .list(&ListParams::default().fields("metadata.name=b"))
            .await
            .expect("list");
        assert_eq!(by_name.items.len(), 1);
        assert_eq!(by_name.items[0].metadata.name.as_deref(), Some("b"));
        let all_ns: Api<ConfigMap> = Api::all(client.clone());
        let in_default = all_ns
            .list(&ListParams::default().fields("metadata.namespace=default"))
            .await
            .expect("list");
        assert_eq!(in_default.items.len(), 2);
        assert_eq!(
            api_error(cms.list(&ListParams::default().fields("data.k=v")).await),
            (400, "BadRequest".into())
        );

        // Paging.
        for i in 0..5 {
            cms.create(&pp, &cm(&format!("page-{i}"), &[("paged", "yes")]))
                .await
                .expect("create");
        }
        let mut names = Vec::new();
        let mut lp = ListParams::default().labels("paged=yes").limit(2);
        let mut pages = 0;
        let mut list_rv = None;
        loop {
            let page = cms.list(&lp).await.expect("page");
            pages += 1;
            let this_rv = page.metadata.resource_version.clone();
            assert!(this_rv.is_some());
            if let Some(r) = &list_rv {
                assert_eq!(
                    Some(r),
                    this_rv.as_ref(),
                    "pages carry the first page's resourceVersion"
                );
            }
            list_rv = this_rv;
            names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
            match page.metadata.continue_ {
                Some(c) if !c.is_empty() => {
                    assert!(page.metadata.remaining_item_count.is_some());
                    lp = lp.continue_token(&c);
                }
                _ => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(
            names,
            (0..5).map(|i| format!("page-{i}")).collect::<Vec<_>>()
        );
        assert_eq!(
            api_error(
                cms.list(&ListParams::default().continue_token("garbage"))
                    .await
            ),
            (400, "BadRequest".into())
        );

        // Update with a resourceVersion precondition.
        let mut stale = a.clone();
        let mut fresh = cms.get("a").await.expect("get");
        fresh.data = Some(BTreeMap::from([("k".to_string(), "v2".to_string())]));
        let updated = cms.replace("a", &pp, &fresh).await.expect("replace");
        assert!(rv(&updated.metadata) > rv(&a.metadata));
        stale.data = Some(BTreeMap::from([("k".to_string(), "stale".to_string())]));
        assert_eq!(
            api_error(cms.replace("a", &pp, &stale).await),
            (409, "Conflict".into())
        );
        // No-op update keeps the resourceVersion.
        let same = cms
            .replace("a", &pp, &updated)
            .await
            .expect("no-op replace");
        assert_eq!(
            same.metadata.resource_version,
            updated.metadata.resource_version
        );
        // Name in the body must be the one in the URL.
        assert_eq!(
            api_error(cms.replace("b", &pp, &updated).await),
            (400, "BadRequest".into())
        );
        // No create on update.
        let mut ghost = cm("ghost", &[]);
        ghost.metadata.resource_version = None;
        assert_eq!(
            api_error(cms.replace("ghost", &pp, &ghost).await),
            (404, "NotFound".into())
        );

        // Merge patch, JSON patch, strategic merge patch.
        let merged = cms
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": { "m": "1" } })),
            )
            .await
            .expect("merge patch");
        assert_eq!(
            merged
                .data
                .as_ref()
                .and_then(|d| d.get("m"))
                .map(String::as_str),
            Some("1")
        );
        let jp: json_patch::Patch = serde_json::from_value(json!([
            { "op": "replace", "path": "/data/m", "value": "2" },
            { "op": "add", "path": "/metadata/labels/extra", "value": "yes" }
        ]))
        .expect("patch literal");
        let patched = cms
            .patch("a", &PatchParams::default(), &Patch::<()>::Json(jp))
            .await
            .expect("json patch");
        assert_eq!(
            patched
                .data
                .as_ref()
                .and_then(|d| d.get("m"))
                .map(String::as_str),
            Some("2")
        );
        let failing: json_patch::Patch =
            serde_json::from_value(json!([{ "op": "test", "path": "/data/m", "value": "9" }]))
                .expect("literal");
        assert_eq!(
            api_error(
                cms.patch("a", &PatchParams::default(), &Patch::<()>::Json(failing))
                    .await
            )
            .0,
            422
        );
        let smp = cms
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Strategic(json!({ "data": { "s": "1" } })),
            )
            .await
            .expect("strategic patch");
        assert_eq!(
            smp.data
                .as_ref()
                .and_then(|d| d.get("s"))
                .map(String::as_str),
            Some("1")
        );
        // A stale resourceVersion inside a patch is a precondition.
        assert_eq!(
            api_error(
                cms.patch(
                    "a",
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({ "metadata": { "resourceVersion": "1" }, "data": { "x": "y" } })
                    )
                )
                .await
            ),
            (409, "Conflict".into())
        );
        assert_eq!(
            api_error(
                cms.patch("nope", &PatchParams::default(), &Patch::Merge(json!({})))
                    .await
            ),
            (404, "NotFound".into())
        );

        // Delete with preconditions.
        let current = cms.get("b").await.expect("get");
        let wrong_uid = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some("not-the-uid".into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            api_error(cms.delete("b", &wrong_uid).await),
            (409, "Conflict".into())
        );
        let wrong_rv = DeleteParams {
            preconditions: Some(Preconditions {
                uid: None,
                resource_version: Some("1".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            api_error(cms.delete("b", &wrong_rv).await),
            (409, "Conflict".into())
        );
        let right = DeleteParams {
            preconditions: Some(Preconditions {
                uid: current.metadata.uid.clone(),
                resource_version: current.metadata.resource_version.clone(),
            }),
            ..Default::default()
        };
        let deleted = cms.delete("b", &right).await.expect("delete");
        assert!(
            deleted.right().is_some_and(|s| s.is_success()),
            "a Status of success"
        );
        assert_eq!(api_error(cms.get("b").await), (404, "NotFound".into()));
        assert_eq!(
            api_error(cms.delete("b", &DeleteParams::default()).await),
            (404, "NotFound".into())
        );

        // Delete a collection by label.
        let gone = cms
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels("paged=yes"),
            )
            .await
            .expect("deletecollection");
        assert_eq!(gone.left().map(|l| l.items.len()), Some(5));
        assert!(
            cms.list(&ListParams::default().labels("paged=yes"))
                .await
                .expect("list")
                .items
                .is_empty()
        );

        // Finalizers hold an object until they are removed.
        let mut held = cm("held", &[]);
        held.metadata.finalizers = Some(vec!["logbook.dev/test".into()]);
        cms.create(&pp, &held).await.expect("create");
        let marked = cms
            .delete("held", &DeleteParams::default())
            .await
            .expect("delete");
        assert!(
            marked
                .left()
                .is_some_and(|o| o.metadata.deletion_timestamp.is_some()),
            "an object with a finalizer is marked, not removed"
        );
        cms.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .expect("finalizer removed");
        assert_eq!(api_error(cms.get("held").await), (404, "NotFound".into()));
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn deployments_generation_status_and_readiness() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
        let d = deploys
            .create(&PostParams::default(), &deployment("web", 3))
            .await
            .expect("create");
        assert_eq!(d.metadata.generation, Some(1));
        assert!(d.status.is_none(), "status is dropped on create");

        // Metadata changes do not bump the generation; spec changes do.
        let d = deploys
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": { "x": "y" } } })),
            )
            .await
            .expect("label patch");
        assert_eq!(d.metadata.generation, Some(1));
        let d = deploys
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
            )
            .await
            .expect("spec patch");
        assert_eq!(d.metadata.generation, Some(2));

        // The simulated controller reports readiness for the current generation.
        let ready = eventually("deployment ready", Duration::from_secs(10), || {
            let deploys = deploys.clone();
            async move {
                let d = deploys.get("web").await.ok()?;
                let s = d.status.clone()?;
                (s.ready_replicas == Some(2) && s.observed_generation == d.metadata.generation)
                    .then_some(d)
            }
        })
        .await;
        assert_eq!(
            ready.status.as_ref().and_then(|s| s.available_replicas),
            Some(2)
        );

        // The main resource ignores status; /status ignores everything else.
        let ignored = deploys
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": { "replicas": 99 } })),
            )
            .await
            .expect("patch");
        assert_eq!(ignored.status.as_ref().and_then(|s| s.replicas), Some(2));
        let st = deploys
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({ "spec": { "replicas": 7 }, "status": { "collisionCount": 1 } }),
                ),
            )
            .await
            .expect("status patch");
        assert_eq!(st.status.as_ref().and_then(|s| s.collision_count), Some(1));
        assert_eq!(st.spec.replicas, Some(2));
        assert_eq!(
            st.metadata.generation,
            Some(2),
            "status changes do not bump generation"
        );
        let mut whole = deploys.get_status("web").await.expect("get status");
        whole.status.get_or_insert_default().collision_count = Some(2);
        let replaced = deploys
            .replace_status("web", &PostParams::default(), &whole)
            .await
            .expect("replace status");
        assert_eq!(
            replaced.status.as_ref().and_then(|s| s.collision_count),
            Some(2)
        );
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn server_side_apply() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let svcs: Api<Service> = Api::default_namespaced(client.clone());
        let ssa = PatchParams::apply("logbook");
        let first = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "web", "labels": { "a": "1", "b": "2" } },
            "spec": { "selector": { "app": "web" }, "ports": [ { "port": 80, "targetPort": 8080 } ] }
        });
        let created = svcs.patch("web", &ssa, &Patch::Apply(&first)).await.expect("apply creates");
        assert!(created.spec.as_ref().and_then(|s| s.cluster_ip.clone()).is_some(), "cluster IP assigned");

        // Another manager's field survives; fields this manager drops are removed.
        svcs.patch("web", &PatchParams::apply("other"), &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": { "name": "web", "labels": { "other": "x" } }
        })))
        .await
        .expect("other manager");
        let second = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "web", "labels": { "a": "1" } },
            "spec": { "selector": { "app": "web" }, "ports": [ { "port": 80, "targetPort": 8080 } ] }
        });
        let applied = svcs.patch("web", &ssa.clone().force(), &Patch::Apply(&second)).await.expect("apply again");
        let labels = applied.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("a").map(String::as_str), Some("1"));
        assert_eq!(labels.get("other").map(String::as_str), Some("x"));
        assert!(!labels.contains_key("b"), "dropped field removed: {labels:?}");

        // Applying the same thing again changes nothing.
        let again = svcs.patch("web", &ssa, &Patch::Apply(&second)).await.expect("idempotent");
        assert_eq!(again.metadata.resource_version, applied.metadata.resource_version);

        // A resourceVersion in the applied object is a precondition.
        let mut stale = second.clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(api_error(svcs.patch("web", &ssa, &Patch::Apply(&stale)).await), (409, "Conflict".into()));
        let mut current = second.clone();
        current["metadata"]["resourceVersion"] = json!(again.metadata.resource_version.clone().unwrap_or_default());
        current["metadata"]["labels"]["c"] = json!("3");
        svcs.patch("web", &ssa, &Patch::Apply(&current)).await.expect("current resourceVersion accepted");

        // fieldManager is required (sent raw: kube itself refuses to send it without one).
        let (code, status) = raw(
            &client,
            "PATCH",
            "/api/v1/namespaces/default/services/web",
            Some("application/apply-patch+yaml"),
            serde_json::to_vec(&second).expect("json"),
        )
        .await;
        assert_eq!(code, 422, "{status}");
        assert_eq!(status["reason"], "Invalid");
        // The body must match the URL.
        let (code, _) = raw(
            &client,
            "PATCH",
            "/api/v1/namespaces/default/services/other?fieldManager=x",
            Some("application/apply-patch+yaml"),
            b"apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n".to_vec(),
        )
        .await;
        assert_eq!(code, 400);
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn other_builtin_kinds() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let pp = PostParams::default();

        let secrets: Api<Secret> = Api::default_namespaced(client.clone());
        let s: Secret = serde_json::from_value(json!({
            "metadata": { "name": "creds" }, "stringData": { "password": "hunter2" }
        }))
        .expect("literal");
        let s = secrets.create(&pp, &s).await.expect("secret");
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        let data = s.data.unwrap_or_default();
        assert_eq!(data.get("password").map(|b| b.0.as_slice()), Some(&b"hunter2"[..]));

        let events: Api<Event> = Api::default_namespaced(client.clone());
        let e: Event = serde_json::from_value(json!({
            "metadata": { "name": "e1" }, "reason": "Created", "message": "hello", "type": "Normal",
            "involvedObject": { "kind": "Application", "name": "web", "namespace": "default" }
        }))
        .expect("literal");
        events.create(&pp, &e).await.expect("core event");
        let events_v1: Api<EventV1> = Api::default_namespaced(client.clone());
        let e2: EventV1 = serde_json::from_value(json!({
            "metadata": { "name": "e2" }, "reason": "Created", "note": "hello", "type": "Normal",
            "action": "Apply", "reportingController": "logbook.dev/controller", "reportingInstance": "x",
            "eventTime": "2025-01-01T00:00:00.000000Z"
        }))
        .expect("literal");
        events_v1.create(&pp, &e2).await.expect("events.k8s.io event");
        // One storage behind both groups, as in a real API server.
        assert_eq!(events_v1.list(&Default::default()).await.expect("list").items.len(), 2);
        assert_eq!(events.list(&Default::default()).await.expect("list").items.len(), 2);

        let leases: Api<Lease> = Api::default_namespaced(client.clone());
        let l: Lease = serde_json::from_value(json!({
            "metadata": { "name": "logbook-controller" },
            "spec": { "holderIdentity": "a", "leaseDurationSeconds": 15 }
        }))
        .expect("literal");
        let l = leases.create(&pp, &l).await.expect("lease");
        let mut taken = l.clone();
        taken.spec.get_or_insert_default().holder_identity = Some("b".into());
        leases.replace("logbook-controller", &pp, &taken).await.expect("lease taken over");
        // The first holder's stale update loses.
        let mut late = l.clone();
        late.spec.get_or_insert_default().holder_identity = Some("a-again".into());
        assert_eq!(api_error(leases.replace("logbook-controller", &pp, &late).await).0, 409);

        let ingresses: Api<Ingress> = Api::default_namespaced(client.clone());
        let i: Ingress = serde_json::from_value(json!({
            "metadata": { "name": "shared" },
            "spec": { "rules": [ { "host": "web.example.com", "http": { "paths": [ {
                "path": "/", "pathType": "Prefix",
                "backend": { "service": { "name": "web", "port": { "number": 80 } } } } ] } } ] }
        }))
        .expect("literal");
        let i = ingresses.create(&pp, &i).await.expect("ingress");
        assert_eq!(i.metadata.generation, Some(1));
        let st = ingresses
            .patch_status("shared", &PatchParams::default(), &Patch::Merge(json!({
                "status": { "loadBalancer": { "ingress": [ { "ip": "10.0.0.1" } ] } }
            })))
            .await
            .expect("ingress status");
        assert_eq!(st.metadata.generation, Some(1));

        // Namespaces: create, and deleting one deletes what is in it.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        assert!(namespaces.get("default").await.is_ok() && namespaces.get("kube-system").await.is_ok());
        let ns: Namespace = serde_json::from_value(json!({ "metadata": { "name": "team-a" } })).expect("literal");
        let ns = namespaces.create(&pp, &ns).await.expect("namespace");
        assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
        let in_team: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
        in_team.create(&pp, &cm("x", &[])).await.expect("cm in team-a");
        namespaces.delete("team-a", &DeleteParams::default()).await.expect("delete ns");
        assert_eq!(api_error(in_team.get("x").await).0, 404);
        assert_eq!(api_error(namespaces.get("team-a").await).0, 404);
        sandbox.shutdown().await;
    })
    .await;
}

fn owned_by(name: &str, owner: &ConfigMap) -> Secret {
    serde_json::from_value(json!({
        "metadata": { "name": name, "ownerReferences": [ {
            "apiVersion": "v1", "kind": "ConfigMap",
            "name": owner.metadata.name, "uid": owner.metadata.uid,
        } ] },
        "data": {}
    }))
    .expect("literal")
}

#[tokio::test]
async fn garbage_collection_and_propagation() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let pp = PostParams::default();
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let secrets: Api<Secret> = Api::default_namespaced(client.clone());

        // Background: the child goes soon after its owner.
        let owner = cms.create(&pp, &cm("owner-bg", &[])).await.expect("owner");
        secrets
            .create(&pp, &owned_by("child-bg", &owner))
            .await
            .expect("child");
        cms.delete("owner-bg", &DeleteParams::background())
            .await
            .expect("delete");
        eventually("child collected", Duration::from_secs(5), || {
            let secrets = secrets.clone();
            async move {
                matches!(secrets.get("child-bg").await, Err(kube::Error::Api(s)) if s.code == 404)
                    .then_some(())
            }
        })
        .await;

        // Foreground: the child is gone when the delete returns.
        let owner = cms.create(&pp, &cm("owner-fg", &[])).await.expect("owner");
        secrets
            .create(&pp, &owned_by("child-fg", &owner))
            .await
            .expect("child");
        cms.delete("owner-fg", &DeleteParams::foreground())
            .await
            .expect("delete");
        assert_eq!(api_error(secrets.get("child-fg").await).0, 404);

        // Orphan: the child stays, without the owner reference.
        let owner = cms.create(&pp, &cm("owner-or", &[])).await.expect("owner");
        secrets
            .create(&pp, &owned_by("child-or", &owner))
            .await
            .expect("child");
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        };
        cms.delete("owner-or", &dp).await.expect("delete");
        // Give the collector the same chance it had above, then check the child is still there.
        let marker = cms
            .create(&pp, &cm("owner-marker", &[]))
            .await
            .expect("marker");
        secrets
            .create(&pp, &owned_by("child-marker", &marker))
            .await
            .expect("marker child");
        cms.delete("owner-marker", &DeleteParams::background())
            .await
            .expect("delete marker");
        eventually("marker child collected", Duration::from_secs(5), || {
            let secrets = secrets.clone();
            async move { secrets.get("child-marker").await.is_err().then_some(()) }
        })
        .await;
        let orphan = secrets.get("child-or").await.expect("orphan kept");
        assert!(
            orphan
                .metadata
                .owner_references
                .unwrap_or_default()
                .is_empty()
        );
        sandbox.shutdown().await;
    })
    .await;
}

fn app(name: &str, replicas: i32) -> Application {
    Application::new(
        name,
        serde_json::from_value::<ApplicationSpec>(
            json!({ "image": "nginx:1.27", "replicas": replicas }),
        )
        .expect("spec literal"),
    )
}

#[tokio::test]
async fn application_crd_lifecycle() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let apps: Api<Application> = Api::default_namespaced(client.clone());
        assert_eq!(
            api_error(apps.list(&Default::default()).await).0,
            404,
            "not served before the CRD"
        );
        install_crd(&client).await;

        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let crd = crds.get("applications.logbook.dev").await.expect("crd");
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD reports Established");

        let pp = PostParams::default();
        let created = apps.create(&pp, &app("web", 2)).await.expect("create app");
        assert_eq!(created.metadata.generation, Some(1));
        assert_eq!(created.spec.port, 8080);
        assert_eq!(
            api_error(apps.create(&pp, &app("web", 2)).await),
            (409, "AlreadyExists".into())
        );

        // The schema is enforced: out of range, bad pattern.
        let (code, reason) = api_error(apps.create(&pp, &app("too-many", 5000)).await);
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        let mut bad_host = app("bad-host", 1);
        bad_host.spec.host = Some("Not A Host".into());
        assert_eq!(api_error(apps.create(&pp, &bad_host).await).0, 422);

        // Status subresource: status through /status only; generation follows spec.
        let status = ApplicationStatus {
            ready_replicas: Some(2),
            url: Some("http://web".into()),
            ..Default::default()
        };
        let st = apps
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .expect("status");
        assert_eq!(st.status.as_ref().and_then(|s| s.ready_replicas), Some(2));
        assert_eq!(st.metadata.generation, Some(1));
        let mut changed = apps.get("web").await.expect("get");
        changed.spec.replicas = 3;
        changed.status = None;
        let replaced = apps.replace("web", &pp, &changed).await.expect("replace");
        assert_eq!(replaced.metadata.generation, Some(2));
        assert_eq!(
            replaced.status.as_ref().and_then(|s| s.ready_replicas),
            Some(2),
            "status kept by a main-resource update"
        );
        assert_eq!(
            api_error(apps.replace("web", &pp, &created).await),
            (409, "Conflict".into())
        );

        // Server-side apply, of the object and of its status.
        let ssa = PatchParams::apply("logbook").force();
        let applied = apps
            .patch(
                "applied",
                &ssa,
                &Patch::Apply(json!({
                    "apiVersion": "logbook.dev/v1alpha1", "kind": "Application",
                    "metadata": { "name": "applied" }, "spec": { "image": "nginx:1.27" }
                })),
            )
            .await
            .expect("apply app");
        assert_eq!(applied.spec.replicas, 1, "schema default");
        let applied = apps
            .patch_status(
                "applied",
                &ssa,
                &Patch::Apply(json!({
                    "apiVersion": "logbook.dev/v1alpha1", "kind": "Application",
                    "metadata": { "name": "applied" }, "status": { "url": "http://applied" }
                })),
            )
            .await
            .expect("apply status");
        assert_eq!(
            applied.status.and_then(|s| s.url).as_deref(),
            Some("http://applied")
        );
        // Strategic merge is not for custom resources, as on the real server.
        assert_eq!(
            api_error(
                apps.patch("web", &PatchParams::default(), &Patch::Strategic(json!({})))
                    .await
            )
            .0,
            415
        );

        assert_eq!(
            apps.list(&Default::default())
                .await
                .expect("list")
                .items
                .len(),
            2
        );
        apps.delete("web", &DeleteParams::default())
            .await
            .expect("delete app");
        assert_eq!(api_error(apps.get("web").await).0, 404);

        // Deleting the CRD stops serving its resource (and removes its objects).
        crds.delete("applications.logbook.dev", &DeleteParams::default())
            .await
            .expect("delete crd");
        assert_eq!(api_error(apps.list(&Default::default()).await).0, 404);
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn discovery_lists_builtins_and_crds() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        install_crd(&client).await;
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .expect("discovery");
        let mut found = Vec::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                found.push(format!("{}/{}/{}", ar.group, ar.version, ar.plural));
                if ar.plural == "deployments" || ar.plural == "applications" {
                    assert!(
                        caps.subresources.iter().any(|(s, _)| s.plural == "status"),
                        "{} has status",
                        ar.plural
                    );
                }
            }
        }
        for want in [
            "/v1/namespaces",
            "/v1/configmaps",
            "/v1/secrets",
            "/v1/services",
            "/v1/events",
            "apps/v1/deployments",
            "networking.k8s.io/v1/ingresses",
            "coordination.k8s.io/v1/leases",
            "events.k8s.io/v1/events",
            "apiextensions.k8s.io/v1/customresourcedefinitions",
            "logbook.dev/v1alpha1/applications",
        ] {
            assert!(
                found.iter().any(|f| f == want),
                "discovery lacks {want}: {found:?}"
            );
        }
        let version = client.apiserver_version().await.expect("version");
        assert_eq!(version.major, "1");
        sandbox.shutdown().await;
    })
    .await;
}
