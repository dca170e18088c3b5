//! The planner: a pure function from the world view to the actions that close the gap.
//!
//! No I/O, no clock, no randomness, no hash-map iteration order: the same world always yields
//! the same actions, byte for byte, which is what makes replay possible. A [`Reconciler`] names
//! the kinds it reads and manages and plans one scope at a time; [`Planner`] runs them.
//!
//! A room per reconciler ([`application`]; CI builds and Postgres clusters slot in beside it);
//! the generic parts are shared: the [`Reconciler`] trait and [`PlannerConfig`] here, the
//! comparison of desired with observed ([`covers`]), converging one object (`converge`), and
//! resource quantities (`quantity`).

pub mod application;
mod converge;
mod diff;
mod quantity;

pub use application::{ApplicationReconciler, Invalid, host_holder, validate};
pub use diff::covers;

use crate::record::{Action, ObjKey};
use crate::world::World;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Settings that change what the planner produces. Recorded with every plan, so replay and
/// what-if can recompute history under the same (or another) configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlannerConfig {
    /// `spec.ingressClassName` of the shared Ingresses; none lets the cluster pick its default.
    #[serde(default)]
    pub ingress_class: Option<String>,
    /// The `pathType` of Ingress paths: `Prefix` (default) or `Exact`.
    #[serde(default = "default_path_type")]
    pub path_type: String,
    /// The name of the single container in each Deployment.
    #[serde(default = "default_container")]
    pub container_name: String,
    /// Resource requests given to a container whose Application asks for none (a default);
    /// none leaves such containers without requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_requests: Option<crate::model::ResourceList>,
    /// Feature switch: an Application's `healthCheck` is also its container's liveness probe
    /// (off: readiness only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub liveness_probes: bool,
    /// One write in flight per shared object: while an apply of a namespace's shared Ingress
    /// is on its way, newer versions wait, and the plan after it is observed asks for all of
    /// them at once (a burst of N new Applications costs a few Ingress writes, not N). Off
    /// here and in logs written before it existed; the controller turns it on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub coalesce_shared_writes: bool,
}

fn default_path_type() -> String {
    "Prefix".to_string()
}
fn default_container() -> String {
    "app".to_string()
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            ingress_class: None,
            path_type: default_path_type(),
            container_name: default_container(),
            default_requests: None,
            liveness_probes: false,
            coalesce_shared_writes: false,
        }
    }
}

impl PlannerConfig {
    /// A short digest of the configuration, recorded with every plan: replay recomputes a plan
    /// only under the configuration whose digest it carries. Settings at their "off" default
    /// are left out of the digest's input, so adding a setting does not change the digest of
    /// logs written before it existed.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&bytes)[..16])
    }
}

/// A reconciler: a pure function from its slice of the world to actions, one scope at a time.
///
/// A scope is the key of the object a group of actions is about: an Application (its
/// Deployment, Service and status) or a namespace's shared Ingress. Log, bus, executors and
/// replay never know which reconciler produced an action.
pub trait Reconciler {
    /// A stable name, recorded in plans.
    fn name(&self) -> &'static str;
    /// The kinds whose changes it reads.
    fn reads(&self) -> &'static [&'static str];
    /// The kinds it creates, changes and deletes.
    fn manages(&self) -> &'static [&'static str];
    /// The scopes a change of `key` touches. Call it with the world both before and after the
    /// change and plan the union: a host that moved frees the old one for someone else.
    fn scopes_for(&self, world: &World, key: &ObjKey) -> BTreeSet<ObjKey>;
    /// Every scope of the world (a full plan).
    fn all_scopes(&self, world: &World) -> BTreeSet<ObjKey>;
    /// Appends the actions of one scope to `out`.
    fn plan_scope(&self, world: &World, scope: &ObjKey, out: &mut Vec<Action>);
}

/// Runs reconcilers over a world.
pub struct Planner {
    reconcilers: Vec<Box<dyn Reconciler + Send + Sync>>,
}

impl Planner {
    /// The planner logbook runs: the Application reconciler with `config`.
    pub fn new(config: PlannerConfig) -> Self {
        Planner {
            reconcilers: vec![Box::new(ApplicationReconciler::new(config))],
        }
    }

    /// A planner running the given reconcilers, in order.
    pub fn with(reconcilers: Vec<Box<dyn Reconciler + Send + Sync>>) -> Self {
        Planner { reconcilers }
    }

    /// The names of the reconcilers, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.reconcilers.iter().map(|r| r.name()).collect()
    }

    /// Every action that brings the whole world to its desired state.
    pub fn plan_all(&self, world: &World) -> Vec<Action> {
        let mut out = Vec::new();
        for r in &self.reconcilers {
            for scope in r.all_scopes(world) {
                r.plan_scope(world, &scope, &mut out);
            }
        }
        out
    }

    /// The scopes that a change of `keys` touches, for every reconciler.
    pub fn scopes_for<'k>(
        &self,
        world: &World,
        keys: impl IntoIterator<Item = &'k ObjKey>,
    ) -> BTreeSet<ObjKey> {
        let mut scopes = BTreeSet::new();
        for key in keys {
            for r in &self.reconcilers {
                scopes.extend(r.scopes_for(world, key));
            }
        }
        scopes
    }

    /// The actions of the given scopes only (an incremental plan).
    pub fn plan_scopes(&self, world: &World, scopes: &BTreeSet<ObjKey>) -> Vec<Action> {
        let mut out = Vec::new();
        for r in &self.reconcilers {
            for scope in scopes {
                r.plan_scope(world, scope, &mut out);
            }
        }
        out
    }
}
