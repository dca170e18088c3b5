//! The workload controllers through kubectl and `kube::Client`: Deployments own ReplicaSets own
//! Pods, roll out within maxSurge/maxUnavailable or recreate, scale, replace lost Pods and go
//! with their owners; Jobs run Pods to completion or to their backoff limit. Pod status comes
//! from the stand-in kubelet.

use logbook_testkit::sandbox as support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
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

fn job_condition(j: &Job, ty: &str) -> Option<(String, String)> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty && c.status == "True")
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

async fn job_pods(pods: &Api<Pod>, job: &str) -> Vec<Pod> {
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    pods.list(&lp).await.expect("list pods").items
}

#[tokio::test]
async fn a_job_whose_pod_succeeds_completes_and_kubectl_wait_returns() {
    bounded(async {
        let sandbox = start_pods().await;
        let client = sandbox.client();
        let k = Kubectl::for_sandbox(&sandbox);
        let jobs: Api<Job> = Api::default_namespaced(client.clone());
        let pods: Api<Pod> = Api::default_namespaced(client.clone());

        // kubectl sends this one as protobuf.
        k.ok(&["create", "job", "j", "--image=busybox", "--", "echo", "hi"])
            .await;
        let job = jobs.get("j").await.expect("job");
        let uid = job.metadata.uid.clone().expect("uid");
        let pod = eventually("the Job's Pod", WAIT, || {
            let pods = pods.clone();
            async move { job_pods(&pods, "j").await.into_iter().next() }
        })
        .await;
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("batch.kubernetes.io/controller-uid"), Some(&uid));
        assert_eq!(labels.get("controller-uid"), Some(&uid));
        assert_eq!(labels.get("job-name").map(String::as_str), Some("j"));
        assert_eq!(owner_uid(&pod.metadata), Some(uid));
        let name = pod.metadata.name.clone().expect("name");
        assert!(name.starts_with("j-"), "{name}");
        let container = pod
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .expect("spec");
        assert_eq!(
            container.command,
            Some(vec!["echo".to_string(), "hi".to_string()])
        );
        let j = jobs.get("j").await.expect("job");
        assert_eq!(j.status.as_ref().and_then(|s| s.active), Some(1));
        assert!(
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .is_some()
        );

        let wait = k.run(&["wait", "--for=condition=complete", "job/j", "--timeout=20s"]);
        let finish = async {
            kubelet::set_running(&pods, &name, &kubelet::next_ip(), true).await;
            kubelet::set_finished(&pods, &name, "Succeeded").await;
        };
        let (out, ()) = tokio::join!(wait, finish);
        assert!(out.ok, "kubectl wait: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("job.batch/j condition met"),
            "{}",
            out.stdout
        );
        let j = jobs.get("j").await.expect("job");
        let s = j.status.clone().expect("status");
        assert_eq!((s.succeeded, s.active, s.failed), (Some(1), None, None));
        assert!(s.completion_time.is_some());
        assert_eq!(
            job_condition(&j, "SuccessCriteriaMet").map(|c| c.1),
            Some("CompletionsReached".into())
        );
        assert_eq!(
            job_condition(&j, "Complete").map(|c| c.1),
            Some("CompletionsReached".into())
        );
        sandbox.shutdown().await;
    })
    .await;
}

fn job(name: &str, spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({ "spec": {
        "restartPolicy": "Never",
        "containers": [ { "name": "work", "image": "busybox", "command": ["true"] } ]
    } });
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("job literal")
}

#[tokio::test]
async fn a_failing_job_stops_at_its_backoff_limit() {
    bounded(async {
        let sandbox = start_pods().await;
        let client = sandbox.client();
        let jobs: Api<Job> = Api::default_namespaced(client.clone());
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        jobs.create(
            &PostParams::default(),
            &job("bad", json!({ "backoffLimit": 1 })),
        )
        .await
        .expect("create");
        let mut failed = std::collections::BTreeSet::new();
        for round in 1..=2 {
            let p = eventually(&format!("Pod {round} of the failing Job"), WAIT, || {
                let (pods, failed) = (pods.clone(), failed.clone());
                async move {
                    job_pods(&pods, "bad").await.into_iter().find(|p| {
                        active(p) && !failed.contains(p.metadata.name.as_deref().unwrap_or(""))
                    })
                }
            })
            .await;
            let name = p.metadata.name.clone().expect("name");
            kubelet::set_finished(&pods, &name, "Failed").await;
            failed.insert(name);
        }
        let j = eventually("the Job failed", WAIT, || {
            let jobs = jobs.clone();
            async move {
                jobs.get("bad")
                    .await
                    .ok()
                    .filter(|j| job_condition(j, "Failed").is_some())
            }
        })
        .await;
        assert_eq!(
            job_condition(&j, "Failed").map(|c| c.1),
            Some("BackoffLimitExceeded".into())
        );
        assert_eq!(
            job_condition(&j, "FailureTarget").map(|c| c.1),
            Some("BackoffLimitExceeded".into())
        );
        let s = j.status.clone().expect("status");
        assert_eq!((s.failed, s.active, s.succeeded), (Some(2), None, None));
        let left: Vec<Pod> = job_pods(&pods, "bad")
            .await
            .into_iter()
            .filter(active)
            .collect();
        assert!(left.is_empty(), "no Pod runs after the Job failed");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn jobs_honour_parallelism_completions_deadline_and_ttl() {
    bounded(async {
        let sandbox = start_pods().await;
        let client = sandbox.client();
        let jobs: Api<Job> = Api::default_namespaced(client.clone());
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        let spec = json!({ "parallelism": 2, "completions": 3, "ttlSecondsAfterFinished": 0 });
        jobs.create(&PostParams::default(), &job("batch", spec))
            .await
            .expect("create");
        let running = |n: usize| {
            let pods = pods.clone();
            move || {
                let pods = pods.clone();
                async move {
                    let ps: Vec<Pod> = job_pods(&pods, "batch")
                        .await
                        .into_iter()
                        .filter(active)
                        .collect();
                    (ps.len() == n).then_some(ps)
                }
            }
        };
        // Two at a time; after two succeed, one more for the third completion.
        let two = eventually("2 Pods in parallel", WAIT, running(2)).await;
        for p in &two {
            kubelet::set_finished(&pods, p.metadata.name.as_deref().unwrap_or(""), "Succeeded")
                .await;
        }
        let last = eventually("1 Pod for the last completion", WAIT, running(1)).await;
        let j = jobs.get("batch").await.expect("job");
        assert_eq!(j.status.as_ref().and_then(|s| s.succeeded), Some(2));
        kubelet::set_finished(
            &pods,
            last[0].metadata.name.as_deref().unwrap_or(""),
            "Succeeded",
        )
        .await;
        // Complete, then gone with its Pods at once (ttlSecondsAfterFinished: 0).
        eventually("the finished Job and its Pods removed", WAIT, || {
            let (jobs, pods) = (jobs.clone(), pods.clone());
            async move {
                let gone = jobs.get_opt("batch").await.ok()?.is_none();
                (gone && job_pods(&pods, "batch").await.is_empty()).then_some(())
            }
        })
        .await;

        let spec = json!({ "activeDeadlineSeconds": 1 });
        jobs.create(&PostParams::default(), &job("slow", spec))
            .await
            .expect("create");
        let j = eventually("the Job past its deadline", WAIT, || {
            let jobs = jobs.clone();
            async move {
                jobs.get("slow")
                    .await
                    .ok()
                    .filter(|j| job_condition(j, "Failed").is_some())
            }
        })
        .await;
        assert_eq!(
            job_condition(&j, "Failed").map(|c| c.1),
            Some("DeadlineExceeded".into())
        );
        let left: Vec<Pod> = job_pods(&pods, "slow")
            .await
            .into_iter()
            .filter(active)
            .collect();
        assert!(left.is_empty(), "the deadline stops the Job's Pods");
        sandbox.shutdown().await;
    })
    .await;
}
