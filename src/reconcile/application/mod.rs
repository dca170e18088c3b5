//! The Application reconciler: each Application becomes a Deployment and a Service named after
//! it, a rule in its namespace's shared Ingress, and a status; invalid specs get no children.
//!
//! The room holds what is particular to Applications: [`desired`] children (Deployments and
//! Services built directly as JSON, the Ingress from types), the [`status`] they add up to, and
//! [`validate`] (what the CRD schema cannot say). Comparing and converging are the planner's
//! shared parts ([`crate::reconcile::covers`]). Pure: no I/O, no clock.

mod desired;
mod memo;
mod status;
mod validate;

pub use validate::{Invalid, host_holder, validate};

use super::converge::PENDING;

use super::converge::{basis_of, converge, delete, forged};
use super::{PlannerConfig, Reconciler};
use crate::model::{ApplicationStatus, SHARED_INGRESS, condition};
use crate::record::{Action, FENCE_OVERRIDE, ObjKey, Verb};
use crate::world::{APPLICATION, Observed, World};
use memo::{AppInputs, IngressInputs, Memo};
use status::same_but_times;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

const DEPLOYMENT: &str = "Deployment";
const SERVICE: &str = "Service";
const INGRESS: &str = "Ingress";
const APP_API_VERSION: &str = "logbook.dev/v1alpha1";

/// Plans Deployments, Services, shared Ingresses and statuses for Applications.
///
/// It keeps what it derived from each Application until the Application changes, and each
/// namespace's Ingress rules up to date from the Applications that changed (see `memo`), so a
/// plan costs what changed rather than what the namespace holds. What it keeps is exactly what
/// it would compute again: plans are the same with it as without it.
#[derive(Clone, Debug, Default)]
pub struct ApplicationReconciler {
    config: PlannerConfig,
    memo: Arc<Mutex<Memo>>,
}

impl ApplicationReconciler {
    /// A reconciler with `config`.
    pub fn new(config: PlannerConfig) -> Self {
        ApplicationReconciler {
            config,
            memo: Arc::default(),
        }
    }

    /// Plans one Application: its Deployment, Service, stray children and status. When
    /// nothing it reads changed since its last plan asked for nothing, it asks for nothing.
    fn plan_app(&self, world: &World, key: &ObjKey, out: &mut Vec<Action>) {
        let inputs = AppInputs::of(world, key);
        if Memo::lock(&self.memo).app_is_quiet(key, &inputs) {
            return;
        }
        let before = out.len();
        self.plan_app_again(world, key, out);
        Memo::lock(&self.memo).app_planned(world, key, inputs, out.len() == before);
    }

    /// [`Self::plan_app`], computed.
    fn plan_app_again(&self, world: &World, key: &ObjKey, out: &mut Vec<Action>) {
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let app_ref = format!("{ns}/{name}");
        let Some(app) = world.app(key) else {
            // The Application is gone: its children go too.
            for child in world.children_of(ns, name) {
                if child.kind == INGRESS {
                    continue;
                }
                delete(
                    world,
                    child,
                    Some(app_ref.clone()),
                    "orphaned: its Application is gone",
                    out,
                );
            }
            return;
        };
        if app.metadata.deletion_timestamp.is_some() {
            return;
        }
        let app_obs = world.object(key);
        let derived = Memo::lock(&self.memo).derived(self, world, key, app);
        let invalid = validate::validate_with(world, ns, name, app, &derived.problems).err();
        let dep_key = ObjKey::new(DEPLOYMENT, ns, name);
        let mut deployment_current = false;
        if invalid.is_none()
            && let (Some(dep), Some(svc)) = (&derived.deployment, &derived.service)
        {
            let basis = basis_of(key, app_obs);
            deployment_current = converge(
                world,
                basis.clone(),
                &dep_key,
                "apps/v1",
                dep,
                Some(app_ref.clone()),
                out,
            );
            converge(
                world,
                basis,
                &ObjKey::new(SERVICE, ns, name),
                "v1",
                svc,
                Some(app_ref.clone()),
                out,
            );
            for child in world.children_of(ns, name) {
                if child.kind != INGRESS
                    && !(child.name == name && (child.kind == DEPLOYMENT || child.kind == SERVICE))
                {
                    delete(
                        world,
                        child,
                        Some(app_ref.clone()),
                        "stray: not a child its Application asks for",
                        out,
                    );
                }
            }
        }
        let dep_obs = world.object(&dep_key).filter(|d| d.is_managed());
        let status = self.desired_status(world, app, invalid.as_ref(), dep_obs, deployment_current);
        let pending_status = match world.pending(key) {
            Some(p) if p.verb == Verb::Status => p
                .object
                .as_ref()
                .and_then(|o| o.get("status"))
                .and_then(|s| serde_json::from_value::<ApplicationStatus>(s.clone()).ok()),
            _ => None,
        };
        let current = pending_status.as_ref().or(app.status.as_ref());
        // A status token the log never issued would make every status write look superseded.
        let forged_status = app_obs
            .and_then(|o| forged(world, key, o.status_token()))
            .filter(|(carried, _)| {
                world
                    .pending(key)
                    .is_none_or(|p| p.basis.get(FENCE_OVERRIDE) != Some(&carried.to_string()))
            });
        if !current.is_some_and(|c| same_but_times(c, &status)) || forged_status.is_some() {
            let object = serde_json::json!({
                "apiVersion": APP_API_VERSION,
                "kind": APPLICATION,
                "metadata": {"name": name, "namespace": ns},
                "status": status,
            });
            let reason = status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::READY)
                .map(|c| format!("status: Ready={} ({})", c.status, c.reason))
                .unwrap_or_else(|| "status".to_string());
            let mut basis = basis_of(key, app_obs);
            if let Some(d) = dep_obs {
                basis.insert(dep_key.to_string(), d.resource_version.clone());
            }
            let reason = match forged_status {
                Some((carried, why)) => {
                    basis.insert(FENCE_OVERRIDE.to_string(), carried.to_string());
                    format!("{reason}; drift: {why}")
                }
                None => reason,
            };
            out.push(Action::new(
                Verb::Status,
                key.clone(),
                APP_API_VERSION,
                Some(app_ref),
                Some(object),
                None,
                reason,
                basis,
            ));
        }
    }

    /// Plans a namespace's shared Ingress: one rule per valid Application holding its host.
    ///
    /// The rules come from the memo, updated from the Applications that changed; when nothing
    /// the plan reads changed since it last asked for nothing, it asks for nothing again
    /// without comparing the rules. With `coalesceSharedWrites`, a new version is not asked for
    /// while the last one is on its way: the next plan after it is observed asks for all
    /// that changed meanwhile at once.
    fn plan_ingress(&self, world: &World, ns: &str, out: &mut Vec<Action>) {
        let key = ObjKey::new(INGRESS, ns, SHARED_INGRESS);
        let mut memo = Memo::lock(&self.memo);
        let rules = memo.rules(self, world, ns);
        let inputs = IngressInputs::of(world, &key, rules.version);
        if rules.quiet.as_ref() == Some(&inputs) {
            return;
        }
        let mut basis = BTreeMap::new();
        let mut list = Vec::with_capacity(rules.rules.len());
        for (name, rule) in rules.rules.values() {
            let app = ObjKey::new(APPLICATION, ns, name);
            basis.extend(basis_of(&app, world.object(&app)));
            list.push(rule.clone());
        }
        let mut actions = Vec::new();
        match self.desired_ingress(ns, list) {
            Some(ing) => {
                converge(
                    world,
                    basis,
                    &key,
                    "networking.k8s.io/v1",
                    &ing,
                    None,
                    &mut actions,
                );
            }
            None => {
                if world.object(&key).is_some_and(Observed::is_managed) {
                    delete(
                        world,
                        &key,
                        None,
                        "no Application in the namespace has a host",
                        &mut actions,
                    );
                }
            }
        }
        if self.config.coalesce_shared_writes {
            // One write in flight: a new version waits while the last is on its way.
            actions.retain(|a| !a.basis.contains_key(PENDING));
        }
        memo.planned(ns, inputs, &actions);
        out.extend(actions);
    }
}

impl Reconciler for ApplicationReconciler {
    fn name(&self) -> &'static str {
        "application"
    }

    fn reads(&self) -> &'static [&'static str] {
        &[APPLICATION, DEPLOYMENT, SERVICE, INGRESS]
    }

    fn manages(&self) -> &'static [&'static str] {
        &[DEPLOYMENT, SERVICE, INGRESS, "Application/status"]
    }

    fn scopes_for(&self, world: &World, key: &ObjKey) -> BTreeSet<ObjKey> {
        let mut scopes = BTreeSet::new();
        let ns = key.namespace.as_str();
        match key.kind.as_str() {
            APPLICATION => {
                scopes.insert(key.clone());
                scopes.insert(ObjKey::new(INGRESS, ns, SHARED_INGRESS));
                if let Some(host) = world.app(key).and_then(|a| a.spec.host.as_deref()) {
                    for claim in world.host_claims(host) {
                        scopes.insert(ObjKey::new(APPLICATION, &claim.namespace, &claim.name));
                        scopes.insert(ObjKey::new(INGRESS, &claim.namespace, SHARED_INGRESS));
                    }
                }
            }
            INGRESS if key.name == SHARED_INGRESS => {
                scopes.insert(ObjKey::new(INGRESS, ns, SHARED_INGRESS));
            }
            _ => {
                if let Some(app) = world
                    .object(key)
                    .filter(|o| o.is_managed())
                    .and_then(|o| o.label(crate::model::INSTANCE_LABEL))
                {
                    scopes.insert(ObjKey::new(APPLICATION, ns, app));
                } else if key.kind == DEPLOYMENT || key.kind == SERVICE {
                    // a child that vanished: its Application (same name) may need it back
                    scopes.insert(ObjKey::new(APPLICATION, ns, &key.name));
                }
            }
        }
        scopes
    }

    fn all_scopes(&self, world: &World) -> BTreeSet<ObjKey> {
        let mut scopes: BTreeSet<ObjKey> = world.apps().map(|(k, _)| k.clone()).collect();
        scopes.extend(
            world
                .child_owners()
                .map(|(ns, app)| ObjKey::new(APPLICATION, ns, app)),
        );
        scopes.extend(
            world
                .namespaces()
                .into_iter()
                .map(|ns| ObjKey::new(INGRESS, &ns, SHARED_INGRESS)),
        );
        scopes
    }

    fn plan_scope(&self, world: &World, scope: &ObjKey, out: &mut Vec<Action>) {
        match scope.kind.as_str() {
            APPLICATION => self.plan_app(world, scope, out),
            INGRESS if scope.name == SHARED_INGRESS => {
                self.plan_ingress(world, &scope.namespace, out)
            }
            _ => {}
        }
    }
}
