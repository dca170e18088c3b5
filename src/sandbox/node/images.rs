//! The image map: which container images the node runs as local programs, and how (the
//! directories put first on `PATH`, the image's default command, the local user). Owns parsing,
//! the built-in defaults and name matching; it must not start anything: an unmapped image never
//! executes, the agent simulates it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One mapped image: what stands in for its filesystem and its entrypoint.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mapping {
    /// Directories put first on the container's `PATH` (the image's programs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<PathBuf>,
    /// The image's ENTRYPOINT: run when a container gives no `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The image's CMD: the arguments when a container gives neither `command` nor `args`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The local user (name or uid) to run as when the Pod sets no `runAsUser`; unset: the
    /// sandbox's own user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A directory that must exist for the mapping to work (the programs it names); a Pod of
    /// the image waits in `ErrImagePull` with this explanation otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<PathBuf>,
    /// What to do when `requires` is missing (shown in the waiting message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The whole map: image name (repository, with or without a tag) → mapping.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageMap {
    /// The mappings; `busybox` matches every tag of busybox, `postgres:15` only that tag.
    pub images: BTreeMap<String, Mapping>,
}

/// What can be wrong with an image map file.
#[derive(Debug, thiserror::Error)]
pub enum ImageMapError {
    /// The file could not be read.
    #[error("cannot read the image map {path}: {source}; pass --images with a readable file")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid image map.
    #[error(
        "the image map {path} is not valid: {message}; see `logbook sandbox --print-images` for the format"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Why a mapped image cannot run here.
#[derive(Debug, Clone, PartialEq)]
pub struct Unavailable(pub String);

/// The name logbook's own image is published under.
pub const LOGBOOK_IMAGE: &str = "ghcr.io/logbook-dev/logbook";

impl ImageMap {
    /// The built-in map: busybox and alpine (a shell and the host's coreutils), git, PostgreSQL
    /// 15 (Debian's binaries), and logbook's own image (the running executable, `exe`).
    pub fn defaults(exe: Option<&Path>) -> ImageMap {
        let shell = Mapping {
            path: vec!["/usr/local/bin".into(), "/usr/bin".into(), "/bin".into()],
            command: vec![],
            args: vec!["sh".into()],
            ..Mapping::default()
        };
        let git = Mapping {
            path: vec!["/usr/bin".into(), "/bin".into()],
            command: vec!["git".into()],
            requires: Some("/usr/bin/git".into()),
            hint: Some("install git (apt-get install git)".into()),
            ..Mapping::default()
        };
        let pg_bin = postgres_bindir();
        let postgres = Mapping {
            path: vec![pg_bin.clone(), "/usr/bin".into(), "/bin".into()],
            command: vec![],
            args: vec!["postgres".into()],
            user: None,
            requires: Some(pg_bin),
            hint: Some(
                "install PostgreSQL 15 (apt-get install postgresql-15; `pg_config --bindir` names the directory) or map postgres:15 to its binaries in the image map".into(),
            ),
        };
        let mut images = BTreeMap::new();
        images.insert("busybox".to_string(), shell.clone());
        images.insert("alpine".to_string(), shell);
        images.insert("alpine/git".to_string(), git.clone());
        images.insert("git".to_string(), git);
        images.insert("postgres:15".to_string(), postgres);
        if let Some(exe) = exe {
            let own = Mapping {
                path: exe
                    .parent()
                    .map(|p| vec![p.to_path_buf()])
                    .unwrap_or_default(),
                command: vec![exe.display().to_string()],
                ..Mapping::default()
            };
            images.insert(LOGBOOK_IMAGE.to_string(), own.clone());
            images.insert("logbook".to_string(), own);
        }
        ImageMap { images }
    }

    /// Parse an image map from YAML; `origin` names it in errors.
    pub fn parse(yaml: &str, origin: &Path) -> Result<ImageMap, ImageMapError> {
        serde_saphyr::from_str::<ImageMap>(yaml).map_err(|e| ImageMapError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Read an image map file.
    pub fn load(path: &Path) -> Result<ImageMap, ImageMapError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImageMapError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ImageMap::parse(&text, path)
    }

    /// The map as YAML, with a header that explains it.
    pub fn to_yaml(&self) -> String {
        let body = serde_saphyr::to_string(self).unwrap_or_default();
        format!(
            "# logbook sandbox image map: which images the node runs as local programs.\n\
             # An image not listed here never runs a process: its Pods are simulated Running and Ready.\n\
             # Keys are repositories, with or without a tag (`busybox` matches every busybox tag).\n\
             # path: directories put first on PATH; command/args: the image's ENTRYPOINT/CMD;\n\
             # user: the local user to run as when the Pod sets no runAsUser;\n\
             # requires: a directory or file that must exist (its Pods wait in ErrImagePull otherwise).\n\
             {body}"
        )
    }

    /// The mapping for an image reference, if any: `repo:tag` first, then `repo`.
    pub fn lookup(&self, image: &str) -> Option<&Mapping> {
        let (repo, tag) = split_image(image);
        if let Some(tag) = tag
            && let Some(m) = self.images.get(&format!("{repo}:{tag}"))
        {
            return Some(m);
        }
        self.images.get(&repo)
    }
}

impl Mapping {
    /// Whether what the mapping needs exists here; why not otherwise.
    pub fn check(&self, image: &str) -> Result<(), Unavailable> {
        match &self.requires {
            Some(p) if !p.exists() => Err(Unavailable(format!(
                "image {image:?} is mapped to {}, which does not exist on this machine: {}",
                p.display(),
                self.hint
                    .as_deref()
                    .unwrap_or("change the image map (--images)")
            ))),
            _ => Ok(()),
        }
    }
}

/// Debian's PostgreSQL 15 binaries: `pg_config --bindir` when it names version 15, else the
/// usual directory.
fn postgres_bindir() -> PathBuf {
    let usual = PathBuf::from("/usr/lib/postgresql/15/bin");
    if usual.is_dir() {
        return usual;
    }
    std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.to_string_lossy().contains("/15/"))
        .unwrap_or(usual)
}

/// An image reference as repository and tag, without digest, `docker.io/` or `library/`.
pub fn split_image(image: &str) -> (String, Option<String>) {
    let no_digest = image.split('@').next().unwrap_or(image);
    let (repo, tag) = match no_digest.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
        _ => (no_digest, None),
    };
    let repo = repo
        .strip_prefix("docker.io/")
        .or_else(|| repo.strip_prefix("index.docker.io/"))
        .unwrap_or(repo);
    let repo = repo.strip_prefix("library/").unwrap_or(repo);
    (repo.to_string(), tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_with_and_without_tags() {
        let map = ImageMap::defaults(Some(Path::new("/opt/logbook/bin/logbook")));
        assert!(map.lookup("busybox").is_some());
        assert!(map.lookup("busybox:1.37").is_some());
        assert!(map.lookup("docker.io/library/busybox:1.37").is_some());
        assert!(map.lookup("alpine/git:v2").is_some());
        assert!(map.lookup("postgres:15").is_some());
        assert!(map.lookup("postgres:16").is_none(), "only the tag mapped");
        assert!(map.lookup("postgres").is_none());
        assert!(map.lookup("nginx:1.27").is_none());
        assert!(map.lookup("localhost:5000/busybox").is_none());
        let own = map
            .lookup("ghcr.io/logbook-dev/logbook:0.1")
            .map(|m| &m.command);
        assert_eq!(own, Some(&vec!["/opt/logbook/bin/logbook".to_string()]));
        assert_eq!(
            split_image("reg:5000/a/b:1@sha256:00"),
            ("reg:5000/a/b".into(), Some("1".into()))
        );
    }

    #[test]
    fn a_file_parses_and_round_trips() {
        let yaml = "images:\n  myapp:1.0:\n    path: [/srv/myapp/bin]\n    command: [myapp]\n    args: [--serve]\n    user: nobody\n";
        let map = ImageMap::parse(yaml, Path::new("images.yaml")).expect("valid map");
        let m = map.lookup("myapp:1.0").expect("mapped");
        assert_eq!(m.command, vec!["myapp"]);
        assert_eq!(m.user.as_deref(), Some("nobody"));
        assert!(map.lookup("myapp:2.0").is_none());
        let defaults = ImageMap::defaults(None);
        let back = ImageMap::parse(&defaults.to_yaml(), Path::new("x")).expect("round trip");
        assert_eq!(back, defaults);
    }

    #[test]
    fn bad_files_say_where_and_what() {
        let e = ImageMap::parse("images:\n  a:\n    comand: [x]\n", Path::new("/etc/m.yaml"))
            .expect_err("unknown field");
        let s = e.to_string();
        assert!(s.contains("/etc/m.yaml") && s.contains("comand"), "{s}");
        let e = ImageMap::load(Path::new("/nonexistent/images.yaml")).expect_err("missing");
        assert!(e.to_string().contains("--images"), "{e}");
        let missing = Mapping {
            requires: Some("/nonexistent/pg/bin".into()),
            hint: Some("install it".into()),
            ..Mapping::default()
        };
        let Err(Unavailable(why)) = missing.check("postgres:15") else {
            panic!("a missing directory must make the mapping unavailable");
        };
        assert!(why.contains("/nonexistent/pg/bin") && why.contains("install it"));
    }
}
