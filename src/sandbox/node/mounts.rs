//! Volumes as a container's process sees them, without containers: each volume is a host
//! directory (`emptyDir`, Secret and ConfigMap files under the Pod's directory in the data dir,
//! a PVC's bound PersistentVolume's `spec.hostPath.path`, a `hostPath`), and a container reaches
//! it by path rewriting: every `mountPath` that appears in an argument, an environment value or
//! the working directory (at the start or after a space, quote, `=`, `:`, `>` or `<`, and ending
//! at a `/` or a non-path character) is replaced by the host directory, and the mapping is
//! exported as `LOGBOOK_MOUNTS` (`mountPath=hostDir` pairs separated by `;`). A `workingDir`
//! outside every volume (and the default one) is a directory under the Pod's `fs/`, never the
//! host's path of that name; `terminationMessagePath` is a file of the Pod's. A program that
//! builds a path at runtime from pieces does not see the volume: this is the honest limit of a
//! node without mount namespaces. Owns preparing those directories and the rewriting; it must
//! not create PersistentVolumes (the provisioner does) or start processes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::super::meta;
use super::super::store::Store;

/// Why a Pod's volumes are not ready (the kubelet's `FailedMount`): the Pod waits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct MountError(pub String);

/// The host directory of each of a Pod's volumes, by volume name.
pub type Volumes = Vec<(String, PathBuf)>;

fn io(what: &str, path: &Path, e: std::io::Error) -> MountError {
    MountError(format!("cannot {what} {}: {e}", path.display()))
}

fn write_items(
    dir: &Path,
    data: Vec<(String, Vec<u8>)>,
    items: Option<&Vec<Value>>,
    mode: u32,
) -> Result<(), MountError> {
    let chosen: Vec<(String, Vec<u8>)> = match items {
        Some(items) => items
            .iter()
            .filter_map(|it| {
                let key = it.get("key")?.as_str()?;
                let path = it.get("path").and_then(Value::as_str).unwrap_or(key);
                data.iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| (path.to_string(), v.clone()))
            })
            .collect(),
        None => data,
    };
    for (name, bytes) in chosen {
        if name.split('/').any(|p| p == "..") {
            continue;
        }
        let file = dir.join(&name);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("make", parent, e))?;
        }
        std::fs::write(&file, bytes).map_err(|e| io("write", &file, e))?;
        let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode));
    }
    Ok(())
}

fn object_data(
    store: &Store,
    ns: &str,
    secret: bool,
    name: &str,
) -> Option<Vec<(String, Vec<u8>)>> {
    let key = if secret { "/secrets" } else { "/configmaps" };
    let o = store.get(key, ns, name)?;
    let mut out = Vec::new();
    for field in ["data", "binaryData"] {
        let decode = secret || field == "binaryData";
        if let Some(d) = o.obj.get(field).and_then(Value::as_object) {
            for (k, v) in d {
                let s = v.as_str().unwrap_or_default();
                let b = if decode {
                    super::unbase64(s).unwrap_or_default()
                } else {
                    s.as_bytes().to_vec()
                };
                out.push((k.clone(), b));
            }
        }
    }
    Some(out)
}

/// Make (or find) the host directory of every volume of `pod`, under `root` (the Pod's own
/// directory); `owner` gets the directories it will write to.
pub fn prepare(
    store: &Store,
    pod: &Value,
    root: &Path,
    owner: Option<(u32, u32)>,
) -> Result<Volumes, MountError> {
    let ns = meta::namespace(pod);
    let mut out = Vec::new();
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        let own = root.join("volumes").join(name);
        let dir = if let Some(claim) = v
            .pointer("/persistentVolumeClaim/claimName")
            .and_then(Value::as_str)
        {
            let pvc = store
                .get("/persistentvolumeclaims", ns, claim)
                .ok_or_else(|| {
                    MountError(format!("persistentvolumeclaim \"{claim}\" not found"))
                })?;
            let pv_name = pvc
                .obj
                .pointer("/spec/volumeName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    MountError(format!("persistentvolumeclaim \"{claim}\" is not bound"))
                })?;
            let pv = store
                .get("/persistentvolumes", "", pv_name)
                .ok_or_else(|| MountError(format!("persistentvolume \"{pv_name}\" not found")))?;
            let path = pv
                .obj
                .pointer("/spec/hostPath/path")
                .or_else(|| pv.obj.pointer("/spec/local/path"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    MountError(format!(
                        "persistentvolume \"{pv_name}\" has no spec.hostPath.path: the node mounts only host directories"
                    ))
                })?;
            let p = PathBuf::from(path);
            std::fs::create_dir_all(&p).map_err(|e| io("make", &p, e))?;
            p
        } else if let Some(path) = v.pointer("/hostPath/path").and_then(Value::as_str) {
            PathBuf::from(path)
        } else if v.get("secret").is_some() || v.get("configMap").is_some() {
            let secret = v.get("secret").is_some();
            let src = if secret {
                &v["secret"]
            } else {
                &v["configMap"]
            };
            let obj_name = src
                .get(if secret { "secretName" } else { "name" })
                .and_then(Value::as_str)
                .unwrap_or_default();
            let optional = src
                .get("optional")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mode = src
                .get("defaultMode")
                .and_then(Value::as_u64)
                .unwrap_or(0o644) as u32;
            std::fs::create_dir_all(&own).map_err(|e| io("make", &own, e))?;
            match object_data(store, ns, secret, obj_name) {
                Some(data) => {
                    write_items(&own, data, src.get("items").and_then(Value::as_array), mode)?
                }
                None if optional => {}
                None => {
                    return Err(MountError(format!(
                        "MountVolume.SetUp failed for volume \"{name}\" : {} \"{obj_name}\" not found",
                        if secret { "secret" } else { "configmap" }
                    )));
                }
            }
            own
        } else {
            // emptyDir, and what the node does not fill (downwardAPI, projected): a directory.
            std::fs::create_dir_all(&own).map_err(|e| io("make", &own, e))?;
            let _ = std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o777));
            own
        };
        if let Some((uid, gid)) = owner
            && dir.starts_with(root)
        {
            let _ = std::os::unix::fs::chown(&dir, Some(uid), Some(gid));
        }
        out.push((name.to_string(), dir));
    }
    Ok(out)
}

/// One container's mounts: `mountPath` → host path, longest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mounts(Vec<(String, PathBuf)>);

impl Mounts {
    /// The mounts of `container` over the Pod's prepared `volumes`, plus `extra` (the
    /// termination message file).
    pub fn of(container: &Value, volumes: &Volumes, extra: Vec<(String, PathBuf)>) -> Mounts {
        let mut v = extra;
        for m in container
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = m.get("name").and_then(Value::as_str).unwrap_or_default();
            let path = m
                .get("mountPath")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some((_, dir)) = volumes.iter().find(|(n, _)| n == name) else {
                continue;
            };
            let mut host = dir.clone();
            if let Some(sub) = m
                .get("subPath")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                host = host.join(sub);
                let _ = std::fs::create_dir_all(&host);
            }
            let path = path.trim_end_matches('/');
            if !path.is_empty() {
                v.push((path.to_string(), host));
            }
        }
        v.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Mounts(v)
    }

    /// `s` with every mount path replaced by its host directory.
    pub fn rewrite(&self, s: &str) -> String {
        if self.0.is_empty() {
            return s.to_string();
        }
        let path_char = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-');
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        let bytes = s.as_bytes();
        while i < s.len() {
            let before_ok = i == 0
                || matches!(
                    bytes[i - 1],
                    b' ' | b'\t' | b'\n' | b'"' | b'\'' | b'=' | b':' | b'>' | b'<' | b'(' | b';'
                );
            if before_ok && bytes[i] == b'/' {
                let hit = self.0.iter().find(|(m, _)| {
                    s[i..].starts_with(m.as_str())
                        && s[i + m.len()..]
                            .chars()
                            .next()
                            .is_none_or(|c| c == '/' || !path_char(c))
                });
                if let Some((m, host)) = hit {
                    out.push_str(&host.display().to_string());
                    i += m.len();
                    continue;
                }
            }
            let c = s[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
        out
    }

    /// The `LOGBOOK_MOUNTS` value.
    pub fn export(&self) -> String {
        self.0
            .iter()
            .map(|(m, h)| format!("{m}={}", h.display()))
            .collect::<Vec<_>>()
            .join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_rewritten_at_path_boundaries() {
        let vols = vec![
            ("data".to_string(), PathBuf::from("/srv/pv/data")),
            ("cfg".to_string(), PathBuf::from("/srv/pod/cfg")),
        ];
        let c = serde_json::json!({ "volumeMounts": [
            { "name": "data", "mountPath": "/data" },
            { "name": "cfg", "mountPath": "/data/cfg/" },
        ]});
        let m = Mounts::of(&c, &vols, vec![]);
        assert_eq!(m.rewrite("/data"), "/srv/pv/data");
        assert_eq!(m.rewrite("/data/x.txt"), "/srv/pv/data/x.txt");
        assert_eq!(m.rewrite("/data/cfg/a"), "/srv/pod/cfg/a");
        assert_eq!(
            m.rewrite("echo hi > /data/out; cat '/data/in'"),
            "echo hi > /srv/pv/data/out; cat '/srv/pv/data/in'"
        );
        assert_eq!(m.rewrite("--dir=/data"), "--dir=/srv/pv/data");
        assert_eq!(m.rewrite("/database"), "/database");
        assert_eq!(m.rewrite("/x/data"), "/x/data");
        assert_eq!(m.export(), "/data/cfg=/srv/pod/cfg;/data=/srv/pv/data");
    }
}
