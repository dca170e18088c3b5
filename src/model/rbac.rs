//! The Kubernetes API calls a process makes, named as RBAC names them.
//!
//! Each process keeps one list of these next to the code that makes the calls
//! (`controller::API_CALLS`, `executor::api::API_CALLS`); the roles in `deploy/` grant exactly
//! what those lists say, no more and no less (`tests/deploy_render.rs` checks it).

/// Where a call is made, which decides the kind of role that grants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// In any namespace (or on a cluster-scoped resource): a ClusterRole and ClusterRoleBinding.
    Cluster,
    /// Only in the namespace the process itself runs in: a Role and RoleBinding there.
    OwnNamespace,
}

/// One resource a process calls, with the verbs it uses on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiCall {
    /// The API group; `""` is the core group.
    pub group: &'static str,
    /// The resource's plural name, `resource/subresource` for a subresource
    /// (`applications/status`).
    pub resource: &'static str,
    /// The RBAC verbs: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`. A
    /// server-side apply is a `patch`, a POST a `create`, a PUT an `update`.
    pub verbs: &'static [&'static str],
    /// Where the calls are made.
    pub scope: Scope,
}

impl ApiCall {
    /// Calls in any namespace.
    pub const fn cluster(
        group: &'static str,
        resource: &'static str,
        verbs: &'static [&'static str],
    ) -> ApiCall {
        ApiCall {
            group,
            resource,
            verbs,
            scope: Scope::Cluster,
        }
    }

    /// Calls in the process's own namespace only.
    pub const fn own_namespace(
        group: &'static str,
        resource: &'static str,
        verbs: &'static [&'static str],
    ) -> ApiCall {
        ApiCall {
            group,
            resource,
            verbs,
            scope: Scope::OwnNamespace,
        }
    }

    /// Whether this names `verb` on `resource` of `group`.
    pub fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        self.group == group && self.resource == resource && self.verbs.contains(&verb)
    }
}
