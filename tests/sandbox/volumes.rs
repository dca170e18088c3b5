//! The local-path provisioner through `kube::Client` and kubectl: the default StorageClass,
//! claims bound to directories under the data directory that outlive Pods and a sandbox
//! restart, and reclaiming with `Delete` and `Retain`.

use logbook_testkit::sandbox as support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use logbook::sandbox::SandboxConfig;
use serde_json::json;
use support::{bounded, eventually, start_with};

use crate::kubectl::Kubectl;

const WAIT: Duration = Duration::from_secs(10);

fn claim(name: &str, class: Option<&str>) -> PersistentVolumeClaim {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": { "requests": { "storage": "1Gi" } },
    });
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": name }, "spec": spec,
    }))
    .expect("claim literal")
}

/// Wait until the claim is bound; returns it and its volume.
async fn bound(client: &kube::Client, name: &str) -> (PersistentVolumeClaim, PersistentVolume) {
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    eventually(&format!("claim {name} bound"), WAIT, || {
        let (claims, volumes) = (claims.clone(), volumes.clone());
        async move {
            let c = claims.get(name).await.ok()?;
            let phase = c.status.as_ref()?.phase.clone()?;
            let pv_name = c.spec.as_ref()?.volume_name.clone()?;
            let pv = volumes.get(&pv_name).await.ok()?;
            let pv_phase = pv.status.as_ref()?.phase.clone()?;
            (phase == "Bound" && pv_phase == "Bound").then_some((c, pv))
        }
    })
    .await
}

fn host_path(pv: &PersistentVolume) -> PathBuf {
    let p = pv
        .spec
        .as_ref()
        .and_then(|s| s.host_path.as_ref())
        .map(|h| h.path.clone());
    PathBuf::from(p.expect("hostPath"))
}

async fn gone(volumes: &Api<PersistentVolume>, pv: &str, dir: &Path) {
    eventually("volume and directory removed", WAIT, || {
        let volumes = volumes.clone();
        async move {
            let gone = volumes.get_opt(pv).await.ok()?.is_none();
            (gone && !dir.exists()).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_claim_binds_to_a_directory_that_outlives_pods_and_restarts_and_goes_with_it() {
    bounded(async {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let state = tmp.path().join("state.json");
        let config = || SandboxConfig {
            state: Some(state.clone()),
            data_dir: Some(data.clone()),
            ..support::fast_config()
        };
        let sandbox = start_with(config()).await;
        let client = sandbox.client();
        let k = Kubectl::for_sandbox(&sandbox);

        let sc: StorageClass = Api::all(client.clone())
            .get("standard")
            .await
            .expect("default class");
        let annotations = sc.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations
                .get("storageclass.kubernetes.io/is-default-class")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(sc.provisioner, "rancher.io/local-path");
        assert_eq!(sc.reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(sc.volume_binding_mode.as_deref(), Some("Immediate"));
        let out = k.ok(&["get", "storageclass"]).await;
        assert!(out.contains("standard"), "{out}");

        let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
        let volumes: Api<PersistentVolume> = Api::all(client.clone());
        let c = claims
            .create(&PostParams::default(), &claim("data", None))
            .await
            .expect("claim");
        let uid = c.metadata.uid.clone().expect("uid");
        let (c, pv) = bound(&client, "data").await;
        let pv_name = format!("pvc-{uid}");
        let spec = c.spec.clone().expect("spec");
        assert_eq!(spec.volume_name.as_deref(), Some(pv_name.as_str()));
        assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));
        let cap = c
            .status
            .as_ref()
            .and_then(|s| s.capacity.clone())
            .unwrap_or_default();
        assert_eq!(cap.get("storage").map(|q| q.0.as_str()), Some("1Gi"));
        let pv_spec = pv.spec.clone().expect("pv spec");
        let claim_ref = pv_spec.claim_ref.clone().expect("claimRef");
        assert_eq!(
            (claim_ref.name.as_deref(), claim_ref.uid.as_deref()),
            (Some("data"), Some(uid.as_str()))
        );
        assert_eq!(
            pv_spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        let dir = host_path(&pv);
        assert!(dir.starts_with(data.join("volumes")), "{}", dir.display());
        assert!(dir.is_dir(), "{} made", dir.display());
        std::fs::write(dir.join("kept"), "42").expect("write into the volume");

        // A Pod using the claim comes and goes; the data stays.
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "user" },
            "spec": {
                "containers": [ { "name": "c", "image": "busybox",
                    "volumeMounts": [ { "name": "d", "mountPath": "/data" } ] } ],
                "volumes": [ { "name": "d", "persistentVolumeClaim": { "claimName": "data" } } ]
            }
        }))
        .expect("pod literal");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("pod");
        pods.delete("user", &Default::default())
            .await
            .expect("delete pod");
        assert_eq!(
            std::fs::read_to_string(dir.join("kept")).ok().as_deref(),
            Some("42")
        );

        // A restart from the same state and data directory keeps the binding and the data.
        sandbox.shutdown().await;
        let sandbox = start_with(config()).await;
        let client = sandbox.client();
        let (c2, pv2) = bound(&client, "data").await;
        assert_eq!(c2.metadata.uid.as_deref(), Some(uid.as_str()));
        assert_eq!(host_path(&pv2), dir);
        assert_eq!(
            std::fs::read_to_string(dir.join("kept")).ok().as_deref(),
            Some("42")
        );

        // Deleting the claim deletes its volume and directory (reclaimPolicy Delete).
        let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
        let volumes2: Api<PersistentVolume> = Api::all(client.clone());
        claims
            .delete("data", &Default::default())
            .await
            .expect("delete claim");
        gone(&volumes2, &pv_name, &dir).await;
        drop(volumes);
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn retain_releases_the_volume_and_keeps_its_directory() {
    bounded(async {
        let sandbox = start_with(support::fast_config()).await;
        let client = sandbox.client();
        let classes: Api<StorageClass> = Api::all(client.clone());
        let keep: StorageClass = serde_json::from_value(json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": { "name": "keep" },
            "provisioner": "rancher.io/local-path",
            "reclaimPolicy": "Retain",
        }))
        .expect("class literal");
        classes
            .create(&PostParams::default(), &keep)
            .await
            .expect("class");
        let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(client.clone());
        claims
            .create(&PostParams::default(), &claim("kept", Some("keep")))
            .await
            .expect("claim");
        let (_, pv) = bound(&client, "kept").await;
        let dir = host_path(&pv);
        assert!(dir.starts_with(sandbox.data_dir()), "{}", dir.display());
        assert!(dir.is_dir());
        claims
            .delete("kept", &Default::default())
            .await
            .expect("delete claim");
        let volumes: Api<PersistentVolume> = Api::all(client.clone());
        let name = pv.metadata.name.clone().expect("name");
        eventually("volume released", WAIT, || {
            let (volumes, name) = (volumes.clone(), name.clone());
            async move {
                let pv = volumes.get(&name).await.ok()?;
                (pv.status?.phase.as_deref() == Some("Released")).then_some(())
            }
        })
        .await;
        assert!(dir.is_dir(), "Retain keeps the directory");
        sandbox.shutdown().await;
    })
    .await;
}
