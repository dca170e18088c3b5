//! The local-path provisioner, as kind ships it: a default StorageClass `standard`, each claim
//! bound to a new PersistentVolume whose `hostPath` is a directory under `<data dir>/volumes/`,
//! and reclaiming (`Delete` removes the volume and its directory, `Retain` releases it). It must
//! not mount anything (the node agent reads `spec.hostPath.path`) nor touch Pods.
//!
//! Binding is `Immediate`: the sandbox has one node, so there is no topology to wait for, and
//! a claim is bound before any Pod uses it (kind's class says `WaitForFirstConsumer`; that
//! would make the same directory, only later).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::meta;
use super::status::ApiError;
use super::store::{EventType, Op, Signal, Store};

/// Storage key of PersistentVolumeClaims.
pub const CLAIMS: &str = "/persistentvolumeclaims";
/// Storage key of PersistentVolumes.
pub const VOLUMES: &str = "/persistentvolumes";
/// Storage key of StorageClasses.
pub const CLASSES: &str = "storage.k8s.io/storageclasses";
/// The default StorageClass installed at start.
pub const DEFAULT_CLASS: &str = "standard";
/// The provisioner name of the sandbox's classes (kind's local-path provisioner).
pub const PROVISIONER: &str = "rancher.io/local-path";
const DEFAULT_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// What can go wrong with a volume's directory.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The directory could not be made.
    #[error(
        "cannot make the volume directory {path}: {source}; check that the sandbox's data directory (--data-dir) is writable"
    )]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory could not be removed.
    #[error("cannot remove the volume directory {path}: {source}; remove it by hand")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Install the default StorageClass unless a class of that name exists.
pub fn install(store: &Store) {
    let _ = store.write(CLASSES, "", DEFAULT_CLASS, |ctx| {
        if ctx.current.is_some() {
            return Err(ApiError::already_exists(
                "storage.k8s.io",
                "storageclasses",
                DEFAULT_CLASS,
            ));
        }
        Ok(Op::Create(json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": DEFAULT_CLASS,
                "annotations": { DEFAULT_ANNOTATION: "true" },
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        })))
    });
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(|v| v.as_str()).unwrap_or("")
}

/// The name of the default StorageClass, if one is marked so.
fn default_class(store: &Store) -> Option<String> {
    store
        .all(CLASSES, None)
        .into_iter()
        .find(|c| {
            c.obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(DEFAULT_ANNOTATION))
                .and_then(|v| v.as_str())
                == Some("true")
        })
        .map(|c| meta::name(&c.obj).to_string())
}

fn edit(store: &Store, key: &str, ns: &str, name: &str, uid: &str, f: impl FnOnce(&mut Value)) {
    let _ = store.write(key, ns, name, |ctx| match ctx.current {
        Some(c) if meta::uid(&c.obj) == uid => {
            let mut o = (*c.obj).clone();
            f(&mut o);
            if o == *c.obj {
                return Err(ApiError::no_such_path());
            }
            Ok(Op::Replace(o))
        }
        _ => Err(ApiError::no_such_path()),
    });
}

/// Bind one claim: a default class if it names none, `Pending`, then a new volume and `Bound`.
fn sync_claim(store: &Store, dir: &Path, pvc: &Value) -> Result<(), VolumeError> {
    let (ns, name, uid) = (meta::namespace(pvc), meta::name(pvc), meta::uid(pvc));
    if !meta::meta_str(pvc, "deletionTimestamp").is_empty() {
        return Ok(());
    }
    if str_at(pvc, "/status/phase").is_empty() {
        edit(store, CLAIMS, ns, name, uid, |o| {
            o["status"] = json!({ "phase": "Pending" });
        });
    }
    if !str_at(pvc, "/spec/volumeName").is_empty() {
        return Ok(());
    }
    let mut class = pvc
        .pointer("/spec/storageClassName")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    if class.is_none() {
        // Retroactive default class assignment, as the PV controller does since 1.28.
        let Some(d) = default_class(store) else {
            return Ok(());
        };
        edit(store, CLAIMS, ns, name, uid, |o| {
            o["spec"]["storageClassName"] = json!(d);
        });
        class = Some(d);
    }
    let class = class.unwrap_or_default();
    let Some(sc) = store.get(CLASSES, "", &class) else {
        return Ok(());
    };
    if str_at(&sc.obj, "/provisioner") != PROVISIONER {
        return Ok(());
    }
    let reclaim = match str_at(&sc.obj, "/reclaimPolicy") {
        "" => "Delete",
        r => r,
    };
    let pv_name = format!("pvc-{uid}");
    let path = dir.join(format!("{pv_name}_{ns}_{name}"));
    std::fs::create_dir_all(&path).map_err(|source| VolumeError::Create {
        path: path.clone(),
        source,
    })?;
    let size = pvc
        .pointer("/spec/resources/requests/storage")
        .cloned()
        .unwrap_or(json!("1Gi"));
    let modes = pvc
        .pointer("/spec/accessModes")
        .cloned()
        .unwrap_or(json!(["ReadWriteOnce"]));
    let mode = pvc
        .pointer("/spec/volumeMode")
        .cloned()
        .unwrap_or(json!("Filesystem"));
    let pv = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": pv_name,
            "annotations": { PROVISIONED_BY: PROVISIONER },
        },
        "spec": {
            "capacity": { "storage": size },
            "accessModes": modes,
            "volumeMode": mode,
            "hostPath": { "path": path.display().to_string(), "type": "DirectoryOrCreate" },
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": class,
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": ns, "name": name, "uid": uid,
                "resourceVersion": meta::resource_version(pvc),
            },
        },
        "status": { "phase": "Pending" },
    });
    let created = store.write(VOLUMES, "", &pv_name, |ctx| {
        if ctx.current.is_some() {
            return Err(ApiError::already_exists("", "persistentvolumes", &pv_name));
        }
        Ok(Op::Create(pv))
    });
    let pv_uid = match created {
        Ok(w) => meta::uid(&w.stored.obj).to_string(),
        Err(_) => match store.get(VOLUMES, "", &pv_name) {
            Some(s) => meta::uid(&s.obj).to_string(),
            None => return Ok(()),
        },
    };
    edit(store, VOLUMES, "", &pv_name, &pv_uid, |o| {
        o["status"] = json!({ "phase": "Bound" });
    });
    edit(store, CLAIMS, ns, name, uid, |o| {
        o["spec"]["volumeName"] = json!(pv_name);
        let a = meta::metadata_mut(o)
            .entry("annotations")
            .or_insert_with(|| json!({}));
        a["pv.kubernetes.io/bind-completed"] = json!("yes");
        a["pv.kubernetes.io/bound-by-controller"] = json!("yes");
        a["volume.kubernetes.io/storage-provisioner"] = json!(PROVISIONER);
        o["status"] = json!({
            "phase": "Bound",
            "accessModes": o.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
            "capacity": { "storage": size },
        });
    });
    Ok(())
}

/// A claim is gone: its volume goes (and its directory, if the provisioner made it under
/// `dir`) with `Delete`, or is `Released` with `Retain`.
fn reclaim(store: &Store, dir: &Path, claim_uid: &str) -> Result<(), VolumeError> {
    for pv in store.all(VOLUMES, None) {
        if str_at(&pv.obj, "/spec/claimRef/uid") != claim_uid {
            continue;
        }
        let (name, uid) = (meta::name(&pv.obj), meta::uid(&pv.obj));
        let ours = pv
            .obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(PROVISIONED_BY))
            .and_then(|p| p.as_str())
            == Some(PROVISIONER);
        let path = PathBuf::from(str_at(&pv.obj, "/spec/hostPath/path"));
        if str_at(&pv.obj, "/spec/persistentVolumeReclaimPolicy") == "Delete" && ours {
            if path.starts_with(dir) && path != dir && path.exists() {
                std::fs::remove_dir_all(&path).map_err(|source| VolumeError::Remove {
                    path: path.clone(),
                    source,
                })?;
            }
            let _ = store.write(VOLUMES, "", name, |ctx| match ctx.current {
                Some(c) if meta::uid(&c.obj) == uid => Ok(Op::Delete),
                _ => Err(ApiError::no_such_path()),
            });
        } else {
            edit(store, VOLUMES, "", name, uid, |o| {
                o["status"] = json!({ "phase": "Released" });
            });
        }
    }
    Ok(())
}

fn report(r: Result<(), VolumeError>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "volume provisioner");
    }
}

/// Claims whose volume is gone, after a restart: every bound volume's claim is looked up.
fn sweep(store: &Store, dir: &Path) {
    for pvc in store.all(CLAIMS, None) {
        report(sync_claim(store, dir, &pvc.obj));
    }
    let claims: std::collections::HashSet<String> = store
        .all(CLAIMS, None)
        .iter()
        .map(|c| meta::uid(&c.obj).to_string())
        .collect();
    for pv in store.all(VOLUMES, None) {
        let claim = str_at(&pv.obj, "/spec/claimRef/uid");
        if !claim.is_empty()
            && !claims.contains(claim)
            && str_at(&pv.obj, "/status/phase") == "Bound"
        {
            report(reclaim(store, dir, claim));
        }
    }
}

/// Run the provisioner over `dir` (`<data dir>/volumes`) until the store's change stream ends.
pub async fn run(store: Arc<Store>, dir: PathBuf) {
    let mut rx = store.subscribe();
    sweep(&store, &dir);
    loop {
        match rx.recv().await {
            Ok(Signal::Change(c)) if c.key == CLAIMS => {
                if c.kind == EventType::Deleted {
                    report(reclaim(&store, &dir, meta::uid(&c.object)));
                } else if let Some(now) = store.get(CLAIMS, &c.namespace, meta::name(&c.object)) {
                    report(sync_claim(&store, &dir, &now.obj));
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => sweep(&store, &dir),
            Err(RecvError::Closed) => return,
        }
    }
}
