//! The catalogue of served resources: built-in kinds and those registered by CRDs.
//! Owns names, scopes, versions, subresources and printer columns; it must not hold objects.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::status::ApiError;

/// The verbs every served resource supports, as discovery lists them.
pub const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One additional printer column (`kubectl get` output).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// OpenAPI format hint (may be empty).
    pub format: String,
    /// Column description.
    pub description: String,
    /// 0 for the default view, more for `-o wide`.
    pub priority: i64,
    /// A simple JSONPath into the object (`.spec.image`).
    pub json_path: String,
}

impl PrinterColumn {
    fn new(name: &str, type_: &str, json_path: &str) -> Self {
        PrinterColumn {
            name: name.to_string(),
            type_: type_.to_string(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: json_path.to_string(),
        }
    }

    fn age() -> Self {
        Self::new("Age", "date", ".metadata.creationTimestamp")
    }
}

/// One served version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    /// The version (`v1`, `v1alpha1`).
    pub name: String,
    /// Whether `/status` is a subresource in this version.
    pub status: bool,
    /// Printer columns after `Name`.
    pub columns: Vec<PrinterColumn>,
    /// The OpenAPI v3 schema of a CRD version, if declared.
    pub schema: Option<Value>,
}

/// A resource the sandbox serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// Served versions; the first is the preferred and storage version.
    pub versions: Vec<VersionInfo>,
    /// Kind of one object.
    pub kind: String,
    /// Kind of a list of them.
    pub list_kind: String,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Singular resource name.
    pub singular: String,
    /// Short names (`deploy`, `app`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// The CRD that registered it, for custom resources.
    pub crd: Option<String>,
    /// The storage key of another resource whose objects this one serves, converted (as the
    /// real API server serves `events.k8s.io/v1` Events from the core Events' storage); `None`:
    /// objects of its own, under [`ResourceType::id`].
    pub stored_as: Option<String>,
}

impl ResourceType {
    /// What names this resource in the catalogue: `group/plural`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// The key objects of this resource are stored under: its own [`ResourceType::id`], or
    /// the resource it is a view of.
    pub fn key(&self) -> String {
        self.stored_as.clone().unwrap_or_else(|| self.id())
    }

    /// `apiVersion` for a version of this resource.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The served version with this name.
    pub fn version(&self, version: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == version)
    }

    /// Whether a version has the status subresource.
    pub fn has_status(&self, version: &str) -> bool {
        self.version(version).is_some_and(|v| v.status)
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    generation: bool,
    all: bool,
    columns: Vec<PrinterColumn>,
    stored_as: Option<&'static str>,
}

/// A column shown only with `-o wide`.
fn wide(mut c: PrinterColumn) -> PrinterColumn {
    c.priority = 1;
    c
}

fn builtins() -> Vec<Builtin> {
    let c = PrinterColumn::new;
    vec![
        Builtin {
            group: "",
            version: "v1",
            kind: "Namespace",
            plural: "namespaces",
            short: &["ns"],
            namespaced: false,
            status: true,
            generation: false,
            all: false,
            columns: vec![c("Status", "string", ".status.phase"), PrinterColumn::age()],
            stored_as: None,
        },
        Builtin {
            group: "",
            version: "v1",
            kind: "Service",
            plural: "services",
            short: &["svc"],
            namespaced: true,
            status: true,
            generation: false,
            all: true,
            columns: vec![
                c("Type", "string", ".spec.type"),
                c("Cluster-IP", "string", ".spec.clusterIP"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "",
            version: "v1",
            kind: "ConfigMap",
            plural: "configmaps",
            short: &["cm"],
            namespaced: true,
            status: false,
            generation: false,
            all: false,
            columns: vec![PrinterColumn::age()],
            stored_as: None,
        },
        Builtin {
            group: "",
            version: "v1",
            kind: "Secret",
            plural: "secrets",
            short: &[],
            namespaced: true,
            status: false,
            generation: false,
            all: false,
            columns: vec![c("Type", "string", ".type"), PrinterColumn::age()],
            stored_as: None,
        },
        Builtin {
            group: "",
            version: "v1",
            kind: "Event",
            plural: "events",
            short: &["ev"],
            namespaced: true,
            status: false,
            generation: false,
            all: false,
            columns: vec![
                c("Type", "string", ".type"),
                c("Reason", "string", ".reason"),
                c("Message", "string", ".message"),
            ],
            stored_as: None,
        },
        Builtin {
            group: "events.k8s.io",
            version: "v1",
            kind: "Event",
            plural: "events",
            short: &["ev"],
            namespaced: true,
            status: false,
            generation: false,
            all: false,
            columns: vec![
                c("Type", "string", ".type"),
                c("Reason", "string", ".reason"),
                c("Note", "string", ".note"),
            ],
            stored_as: Some("/events"),
        },
        Builtin {
            group: "apps",
            version: "v1",
            kind: "Deployment",
            plural: "deployments",
            short: &["deploy"],
            namespaced: true,
            status: true,
            generation: true,
            all: true,
            columns: vec![
                c("Replicas", "integer", ".spec.replicas"),
                c("Ready", "integer", ".status.readyReplicas"),
                c("Up-to-date", "integer", ".status.updatedReplicas"),
                c("Available", "integer", ".status.availableReplicas"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "",
            version: "v1",
            kind: "Pod",
            plural: "pods",
            short: &["po"],
            namespaced: true,
            status: true,
            generation: false,
            all: true,
            // The API server's Pod columns; their cells are computed as its printer does
            // (`node::printer`), the paths only name where they come from.
            columns: vec![
                c("Ready", "string", ".status.containerStatuses[*].ready"),
                c("Status", "string", ".status.phase"),
                c(
                    "Restarts",
                    "string",
                    ".status.containerStatuses[*].restartCount",
                ),
                PrinterColumn::age(),
                wide(c("IP", "string", ".status.podIP")),
                wide(c("Node", "string", ".spec.nodeName")),
                wide(c("Nominated Node", "string", ".status.nominatedNodeName")),
                wide(c("Readiness Gates", "string", ".spec.readinessGates")),
            ],
            stored_as: None,
        },
        Builtin {
            group: "",
            version: "v1",
            kind: "Node",
            plural: "nodes",
            short: &["no"],
            namespaced: false,
            status: true,
            generation: false,
            all: false,
            columns: vec![PrinterColumn::age()],
            stored_as: None,
        },
        Builtin {
            group: "",
            version: "v1",
            kind: "PersistentVolumeClaim",
            plural: "persistentvolumeclaims",
            short: &["pvc"],
            namespaced: true,
            status: true,
            generation: false,
            all: false,
            columns: vec![
                c("Status", "string", ".status.phase"),
                c("Volume", "string", ".spec.volumeName"),
                c("StorageClass", "string", ".spec.storageClassName"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "",
            version: "v1",
            kind: "PersistentVolume",
            plural: "persistentvolumes",
            short: &["pv"],
            namespaced: false,
            status: true,
            generation: false,
            all: false,
            columns: vec![
                c(
                    "Reclaim Policy",
                    "string",
                    ".spec.persistentVolumeReclaimPolicy",
                ),
                c("Status", "string", ".status.phase"),
                c("StorageClass", "string", ".spec.storageClassName"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "storage.k8s.io",
            version: "v1",
            kind: "StorageClass",
            plural: "storageclasses",
            short: &["sc"],
            namespaced: false,
            status: false,
            generation: false,
            all: false,
            columns: vec![
                c("Provisioner", "string", ".provisioner"),
                c("ReclaimPolicy", "string", ".reclaimPolicy"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "apps",
            version: "v1",
            kind: "ReplicaSet",
            plural: "replicasets",
            short: &["rs"],
            namespaced: true,
            status: true,
            generation: true,
            all: true,
            columns: vec![
                c("Desired", "integer", ".spec.replicas"),
                c("Current", "integer", ".status.replicas"),
                c("Ready", "integer", ".status.readyReplicas"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "batch",
            version: "v1",
            kind: "Job",
            plural: "jobs",
            short: &[],
            namespaced: true,
            status: true,
            generation: true,
            all: true,
            columns: vec![
                c("Status", "string", ".status.conditions[*].type"),
                c("Succeeded", "integer", ".status.succeeded"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "discovery.k8s.io",
            version: "v1",
            kind: "EndpointSlice",
            plural: "endpointslices",
            short: &[],
            namespaced: true,
            status: false,
            generation: true,
            all: false,
            columns: vec![
                c("AddressType", "string", ".addressType"),
                c("Endpoints", "string", ".endpoints[*].addresses[0]"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "networking.k8s.io",
            version: "v1",
            kind: "Ingress",
            plural: "ingresses",
            short: &["ing"],
            namespaced: true,
            status: true,
            generation: true,
            all: false,
            columns: vec![
                c("Class", "string", ".spec.ingressClassName"),
                c("Hosts", "string", ".spec.rules[*].host"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "coordination.k8s.io",
            version: "v1",
            kind: "Lease",
            plural: "leases",
            short: &[],
            namespaced: true,
            status: false,
            generation: false,
            all: false,
            columns: vec![
                c("Holder", "string", ".spec.holderIdentity"),
                PrinterColumn::age(),
            ],
            stored_as: None,
        },
        Builtin {
            group: "apiextensions.k8s.io",
            version: "v1",
            kind: "CustomResourceDefinition",
            plural: "customresourcedefinitions",
            short: &["crd", "crds"],
            namespaced: false,
            status: true,
            generation: true,
            all: false,
            columns: vec![c("Created At", "string", ".metadata.creationTimestamp")],
            stored_as: None,
        },
    ]
}

/// The set of resources being served; changes as CRDs come and go.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: BTreeMap<String, Arc<ResourceType>>,
}

impl Registry {
    /// The built-in resources.
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        for b in builtins() {
            let singular = b.kind.to_lowercase();
            let t = ResourceType {
                group: b.group.to_string(),
                versions: vec![VersionInfo {
                    name: b.version.to_string(),
                    status: b.status,
                    columns: b.columns,
                    schema: None,
                }],
                kind: b.kind.to_string(),
                list_kind: format!("{}List", b.kind),
                plural: b.plural.to_string(),
                singular,
                short_names: b.short.iter().map(|s| s.to_string()).collect(),
                categories: if b.all {
                    vec!["all".to_string()]
                } else {
                    vec![]
                },
                namespaced: b.namespaced,
                generation: b.generation,
                crd: None,
                stored_as: b.stored_as.map(String::from),
            };
            r.types.insert(t.id(), Arc::new(t));
        }
        r
    }

    /// Look up a resource by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&format!("{group}/{plural}"))
            .filter(|t| t.version(version).is_some())
            .cloned()
    }

    /// Look up by storage key (`group/plural`): the resource that owns the objects stored
    /// there, never a view of another's.
    pub fn by_key(&self, key: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(key)
            .filter(|t| t.stored_as.is_none())
            .cloned()
    }

    /// Look up a resource by group and kind.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .values()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
    }

    /// All resources, in key order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Serve a resource (from a CRD).
    pub fn insert(&mut self, t: ResourceType) {
        self.types.insert(t.id(), Arc::new(t));
    }

    /// Stop serving a resource.
    pub fn remove(&mut self, key: &str) {
        self.types.remove(key);
    }

    /// Groups and their versions, core group first, preferred version first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.values() {
            let entry = match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some(e) => e,
                None => {
                    out.push((t.group.clone(), Vec::new()));
                    let last = out.len() - 1;
                    &mut out[last]
                }
            };
            for v in &t.versions {
                if !entry.1.contains(&v.name) {
                    entry.1.push(v.name.clone());
                }
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out.sort_by(|a, b| (!a.0.is_empty(), &a.0).cmp(&(!b.0.is_empty(), &b.0)));
        out
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by number.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major: u32 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, n) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stage, major, n)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The resource a CRD declares, or the reasons it is invalid (`field`, `message`).
pub fn from_crd(crd: &Value) -> Result<ResourceType, Vec<(String, String)>> {
    let mut errs = Vec::new();
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    let group = str_at(crd, &["spec", "group"]).unwrap_or_default();
    let plural = str_at(crd, &["spec", "names", "plural"]).unwrap_or_default();
    let kind = str_at(crd, &["spec", "names", "kind"]).unwrap_or_default();
    if group.is_empty() {
        errs.push(("spec.group".into(), "Required value".into()));
    }
    if plural.is_empty() {
        errs.push(("spec.names.plural".into(), "Required value".into()));
    }
    if kind.is_empty() {
        errs.push(("spec.names.kind".into(), "Required value".into()));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = str_at(crd, &["spec", "scope"]).unwrap_or_default();
    if scope != "Namespaced" && scope != "Cluster" {
        errs.push((
            "spec.scope".into(),
            format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        ));
    }
    let mut versions = Vec::new();
    let declared = crd
        .pointer("/spec/versions")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    if declared.is_empty() {
        errs.push((
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    let mut storage = None;
    for (i, v) in declared.iter().enumerate() {
        let vname = str_at(v, &["name"]).unwrap_or_default();
        if vname.is_empty() {
            errs.push((format!("spec.versions[{i}].name"), "Required value".into()));
            continue;
        }
        if v.get("storage").and_then(|s| s.as_bool()) == Some(true) {
            if storage.is_some() {
                errs.push((
                    "spec.versions".into(),
                    "Invalid value: must have exactly one version marked as storage version".into(),
                ));
            }
            storage = Some(vname.to_string());
        }
        if v.get("served").and_then(|s| s.as_bool()) != Some(true) {
            continue;
        }
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(|c| c.as_array())
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: str_at(c, &["name"]).unwrap_or_default().to_string(),
                        type_: str_at(c, &["type"]).unwrap_or("string").to_string(),
                        format: str_at(c, &["format"]).unwrap_or_default().to_string(),
                        description: str_at(c, &["description"]).unwrap_or_default().to_string(),
                        priority: c.get("priority").and_then(|p| p.as_i64()).unwrap_or(0),
                        json_path: str_at(c, &["jsonPath"]).unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![PrinterColumn::age()]);
        versions.push(VersionInfo {
            name: vname.to_string(),
            status: v.pointer("/subresources/status").is_some(),
            columns,
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
        });
    }
    if storage.is_none() && !declared.is_empty() {
        errs.push((
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    if versions.is_empty() && !declared.is_empty() {
        errs.push((
            "spec.versions".into(),
            "Invalid value: must have at least one served version".into(),
        ));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    // Preferred version first, as discovery orders them.
    versions.sort_by_key(|v| std::cmp::Reverse(version_priority(&v.name)));
    let names = crd.pointer("/spec/names");
    Ok(ResourceType {
        group: group.to_string(),
        versions,
        kind: kind.to_string(),
        list_kind: names
            .and_then(|n| n.get("listKind"))
            .and_then(|s| s.as_str())
            .map(String::from)
            .unwrap_or_else(|| format!("{kind}List")),
        plural: plural.to_string(),
        singular: names
            .and_then(|n| n.get("singular"))
            .and_then(|s| s.as_str())
            .map(String::from)
            .unwrap_or_else(|| kind.to_lowercase()),
        short_names: strings(names.and_then(|n| n.get("shortNames"))),
        categories: strings(names.and_then(|n| n.get("categories"))),
        namespaced: scope == "Namespaced",
        generation: true,
        crd: Some(name.to_string()),
        stored_as: None,
    })
}

/// A CRD whose resource clashes with one already served.
pub fn clash(reg: &Registry, t: &ResourceType) -> Option<ApiError> {
    let existing = reg.by_key(&t.id())?;
    if existing.crd.as_deref() == t.crd.as_deref() {
        return None;
    }
    Some(ApiError::invalid(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        t.crd.as_deref().unwrap_or_default(),
        vec![(
            "spec.names.plural".into(),
            format!("Invalid value: \"{}\": is already in use", t.plural),
        )],
    ))
}
