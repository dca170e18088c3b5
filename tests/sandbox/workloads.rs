//! The workload controllers through kubectl and `kube::Client`: Deployments own ReplicaSets own
//! Pods, roll out within maxSurge/maxUnavailable or recreate, scale, replace lost Pods and go
//! with their owners; Jobs run Pods to completion or to their backoff limit. Pod status comes
//! from the stand-in kubelet.

use logbook_testkit::sandbox as support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use logbook::sandbox::{Sandbox, SandboxConfig, Workloads};
use serde_json::json;
use support::{bounded, eventually, start_with};

use crate::kubectl::Kubectl;
use crate::standin_kubelet::{self as kubelet, Kubelet};

const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn pods_config() -> SandboxConfig {
    SandboxConfig {
        workloads: Workloads::Pods,
        ..support::fast_config()
    }
}

pub(crate) async fn start_pods() -> Sandbox {
    start_with(pods_config()).await
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [ { "name": "web", "image": image } ] }
            }
        }
    }))
    .expect("deployment literal")
}

fn active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    p.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn owner_uid(meta: &kube::core::ObjectMeta) -> Option<String> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

async fn active_pods(pods: &Api<Pod>) -> Vec<Pod> {
    let list = pods.list(&ListParams::default()).await.expect("list pods");
    list.items.into_iter().filter(active).collect()
}

/// Whether the Deployment's status says its rollout of the current generation is complete.
fn complete(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let Some(s) = d.status.as_ref() else {
        return false;
    };
    s.observed_generation == d.metadata.generation
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
}

fn condition(d: &Deployment, ty: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(ty))
        .map(|c| {
            let status = c.status.clone().unwrap_or_default();
            (status, c.reason.clone().unwrap_or_default())
        })
}

#[tokio::test]
async fn a_deployment_owns_a_replicaset_owning_pods_rolls_out_and_goes_with_them() {
    bounded(async {
        let sandbox = start_pods().await;
        let client = sandbox.client();
        let k = Kubectl::for_sandbox(&sandbox);
        let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
        let sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
        let pods: Api<Pod> = Api::default_namespaced(client.clone());

        // kubectl sends this one as protobuf.
        k.ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3"]).await;
        let d = deploys.get("web").await.expect("deployment");
        let d_uid = d.metadata.uid.clone().expect("uid");
        let (rs, listed) = eventually("one ReplicaSet with 3 Pods", WAIT, || {
            let (sets, pods) = (sets.clone(), pods.clone());
            async move {
                let rs = sets.list(&ListParams::default()).await.ok()?.items;
                let ps = active_pods(&pods).await;
                (rs.len() == 1 && ps.len() == 3).then(|| (rs[0].clone(), ps))
            }
        })
        .await;
        let rs_name = rs.metadata.name.clone().expect("name");
        let hash = rs.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash")).cloned();
        let hash = hash.expect("pod-template-hash label");
        assert_eq!(rs_name, format!("web-{hash}"));
        assert_eq!(owner_uid(&rs.metadata), Some(d_uid.clone()));
        let annotations = rs.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));
        let selector = rs.spec.selector.clone();
        assert_eq!(
            selector.match_labels.unwrap_or_default().get("pod-template-hash"),
            Some(&hash)
        );
        let rs_uid = rs.metadata.uid.clone().expect("uid");
        for p in &listed {
            let name = p.metadata.name.clone().unwrap_or_default();
            let suffix = name.strip_prefix(&format!("{rs_name}-")).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(suffix.len(), 5, "{name}");
            assert_eq!(owner_uid(&p.metadata), Some(rs_uid.clone()), "{name}");
            assert_eq!(p.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash")), Some(&hash));
        }

        // Nothing is ready without a kubelet: the rollout is not done.
        let out = k.run(&["rollout", "status", "deploy/web", "--timeout=1s"]).await;
        assert!(!out.ok, "rollout status without ready Pods: {}", out.stdout);
        let d = deploys.get("web").await.expect("deployment");
        assert_eq!(condition(&d, "Available"), Some(("False".into(), "MinimumReplicasUnavailable".into())));

        let standin = Kubelet::start(pods.clone());
        let out = k.ok(&["rollout", "status", "deploy/web", "--timeout=20s"]).await;
        assert!(out.contains("successfully rolled out"), "{out}");
        drop(standin);
        let d = deploys.get("web").await.expect("deployment");
        assert!(complete(&d), "{:?}", d.status);
        assert_eq!(condition(&d, "Available"), Some(("True".into(), "MinimumReplicasAvailable".into())));
        assert_eq!(condition(&d, "Progressing"), Some(("True".into(), "NewReplicaSetAvailable".into())));
        let rs = sets.get(&rs_name).await.expect("rs");
        let s = rs.status.expect("rs status");
        assert_eq!(
            (s.replicas, s.ready_replicas, s.available_replicas, s.fully_labeled_replicas, s.observed_generation),
            (3, Some(3), Some(3), Some(3), Some(1))
        );

        // A new image rolls out a new ReplicaSet within maxSurge 1 and maxUnavailable 1; the
        // stand-in kubelet readies one Pod at a time and the bounds are checked at each step.
        deploys
            .patch("web", &PatchParams::default(), &Patch::Merge(json!({ "spec": {
                "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 1 } },
                "template": { "spec": { "containers": [ { "name": "nginx", "image": "nginx:1.28" } ] } }
            } })))
            .await
            .expect("new image");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut steps = 0;
        loop {
            let ps = active_pods(&pods).await;
            assert!(ps.len() <= 4, "more than replicas + maxSurge Pods: {}", ps.len());
            let ready_n = ps.iter().filter(|p| ready(p)).count();
            assert!(ready_n >= 2, "fewer than replicas - maxUnavailable ready: {ready_n}");
            let d = deploys.get("web").await.expect("deployment");
            if complete(&d) && ps.len() == 3 {
                break;
            }
            if let Some(p) = ps.iter().find(|p| !ready(p)) {
                let name = p.metadata.name.clone().unwrap_or_default();
                kubelet::set_running(&pods, &name, &kubelet::next_ip(), true).await;
                steps += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(tokio::time::Instant::now() < deadline, "rollout did not finish: {:?}", d.status);
        }
        assert!(steps >= 3, "every new Pod was readied by the stand-in ({steps})");
        let all = sets.list(&ListParams::default()).await.expect("rs list").items;
        assert_eq!(all.len(), 2, "old and new ReplicaSet");
        let new = all.iter().find(|r| r.metadata.name.as_deref() != Some(&rs_name)).expect("new rs");
        let new_rev = new.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision"));
        assert_eq!(new_rev.map(String::as_str), Some("2"));
        let old = all.iter().find(|r| r.metadata.name.as_deref() == Some(&rs_name)).expect("old rs");
        assert_eq!(old.spec.replicas, Some(0));
        let d = deploys.get("web").await.expect("deployment");
        let d_rev = d.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision"));
        assert_eq!(d_rev.map(String::as_str), Some("2"));
        k.ok(&["rollout", "status", "deploy/web", "--timeout=10s"]).await;

        // Deleting the Deployment takes its ReplicaSets and their Pods.
        k.ok(&["delete", "deployment", "web"]).await;
        eventually("ReplicaSets and Pods gone", WAIT, || {
            let (sets, pods) = (sets.clone(), pods.clone());
            async move {
                let rs = sets.list(&ListParams::default()).await.ok()?.items;
                let ps = pods.list(&ListParams::default()).await.ok()?.items;
                (rs.is_empty() && ps.is_empty()).then_some(())
            }
        })
        .await;
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn lost_and_failed_pods_are_replaced_and_scaling_follows_the_spec() {
    bounded(async {
        let sandbox = start_pods().await;
        let client = sandbox.client();
        let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        deploys
            .create(&PostParams::default(), &deployment("api", 2, "busybox"))
            .await
            .expect("create");
        let count = |n: usize| {
            let pods = pods.clone();
            move || {
                let pods = pods.clone();
                async move { Some(active_pods(&pods).await).filter(|ps| ps.len() == n) }
            }
        };
        let first = eventually("2 Pods", WAIT, count(2)).await;
        let gone = first[0].metadata.name.clone().expect("name");
        pods.delete(&gone, &Default::default())
            .await
            .expect("delete pod");
        let again = eventually("a replacement for the deleted Pod", WAIT, || {
            let (pods, gone) = (pods.clone(), gone.clone());
            async move {
                let ps = active_pods(&pods).await;
                (ps.len() == 2 && ps.iter().all(|p| p.metadata.name.as_deref() != Some(&gone)))
                    .then_some(ps)
            }
        })
        .await;
        let failed = again[0].metadata.name.clone().expect("name");
        kubelet::set_finished(&pods, &failed, "Failed").await;
        eventually("a replacement for the failed Pod", WAIT, count(2)).await;

        for n in [4, 1] {
            deploys
                .patch(
                    "api",
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "spec": { "replicas": n } })),
                )
                .await
                .expect("scale");
            eventually(&format!("{n} Pods"), WAIT, count(n as usize)).await;
        }
        let _standin = Kubelet::start(pods.clone());
        eventually("scaled Deployment complete", WAIT, || {
            let deploys = deploys.clone();
            async move { deploys.get("api").await.ok().filter(complete) }
        })
        .await;
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn recreate_stops_every_old_pod_before_the_new_ones_start() {
    bounded(async {
        let sandbox = start_pods().await;
        let client = sandbox.client();
        let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        let mut d = deployment("db", 2, "postgres:15");
        d.spec.strategy = serde_json::from_value(json!({ "type": "Recreate" })).ok();
        deploys
            .create(&PostParams::default(), &d)
            .await
            .expect("create");
        let standin = Kubelet::start(pods.clone());
        eventually("Deployment complete", WAIT, || {
            let deploys = deploys.clone();
            async move { deploys.get("db").await.ok().filter(complete) }
        })
        .await;
        deploys
            .patch(
                "db",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "template": { "spec": {
                "containers": [ { "name": "web", "image": "postgres:16" } ] } } } })),
            )
            .await
            .expect("new image");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ps = active_pods(&pods).await;
            let images: std::collections::BTreeSet<String> = ps
                .iter()
                .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
                .collect();
            assert!(images.len() <= 1, "old and new Pods at once: {images:?}");
            let d = deploys.get("db").await.expect("deployment");
            if complete(&d) && images.contains("postgres:16") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "recreate did not finish: {:?}",
                d.status
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(standin);
        sandbox.shutdown().await;
    })
    .await;
}
