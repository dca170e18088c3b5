//! What the Application reconciler keeps between plans, so a plan costs what changed: each
//! Application's spec problems and desired Deployment and Service (until the Application
//! changes), and each namespace's shared-Ingress rules (updated from the Applications that
//! changed since, by the world's journal of revisions).
//!
//! A cache, not state: every value is what the pure functions would compute from the world
//! now, so plans are the same byte for byte with it or without it. It never decides anything.

use super::ApplicationReconciler;
use super::validate::{host_holder, spec_problems};
use crate::model::Application;
use crate::record::{Action, ObjKey};
use crate::world::{APPLICATION, World};
use k8s_openapi::api::networking::v1::IngressRule;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What one Application (at one revision) asks for, whatever the rest of the world is.
#[derive(Debug)]
pub(super) struct Derived {
    /// The revision of the Application it was derived from.
    rev: u64,
    /// Its spec problems (see `validate::spec_problems`).
    pub problems: Vec<String>,
    /// Its desired Deployment (valid specs only).
    pub deployment: Option<Value>,
    /// Its desired Service (valid specs only).
    pub service: Option<Value>,
}

/// A namespace's shared-Ingress rules as of a point in the world's journal.
#[derive(Debug, Default)]
pub(super) struct NsRules {
    /// The world they were derived from, and the last journal revision read.
    world: u64,
    seen: u64,
    /// Bumped whenever `rules` changes.
    pub version: u64,
    /// host → (Application name, its rule): the valid Applications holding their host.
    pub rules: BTreeMap<String, (String, IngressRule)>,
    /// Application name → the host it has a rule for.
    by_app: BTreeMap<String, String>,
    /// The inputs of the last plan of the Ingress that asked for nothing.
    pub quiet: Option<IngressInputs>,
}

/// Everything a shared Ingress's plan reads besides its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct IngressInputs {
    pub world: u64,
    pub version: u64,
    pub observed: Option<u64>,
    pub pending: Option<String>,
    pub issued: Option<(u64, String)>,
}

impl IngressInputs {
    /// The inputs of the plan of `key` (a shared Ingress) with rules at `version`.
    pub fn of(world: &World, key: &ObjKey, version: u64) -> IngressInputs {
        IngressInputs {
            world: world.id(),
            version,
            observed: world.object(key).and(world.revision(key)),
            pending: world.pending(key).map(|a| a.id.clone()),
            issued: world.issued(key).map(|(s, id)| (s, id.to_string())),
        }
    }
}

/// Everything the plan of one Application's scope reads, by revision: the Application, its
/// Deployment, Service and other children, what is pending on and issued for each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AppInputs {
    world: u64,
    objects: Vec<ObjectInputs>,
    children: Vec<(ObjKey, ObjectInputs)>,
}

/// What a plan reads of one object: its revision, the action pending on it, the last issued.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ObjectInputs {
    rev: Option<u64>,
    pending: Option<String>,
    issued: Option<(u64, String)>,
}

impl ObjectInputs {
    fn of(world: &World, key: &ObjKey) -> ObjectInputs {
        ObjectInputs {
            rev: world.revision(key),
            pending: world.pending(key).map(|a| a.id.clone()),
            issued: world.issued(key).map(|(s, id)| (s, id.to_string())),
        }
    }
}

impl AppInputs {
    /// The inputs of the plan of the Application scope `key`.
    pub fn of(world: &World, key: &ObjKey) -> AppInputs {
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        AppInputs {
            world: world.id(),
            objects: [
                key.clone(),
                ObjKey::new(super::DEPLOYMENT, ns, name),
                ObjKey::new(super::SERVICE, ns, name),
            ]
            .iter()
            .map(|k| ObjectInputs::of(world, k))
            .collect(),
            children: world
                .children_of(ns, name)
                .map(|k| (k.clone(), ObjectInputs::of(world, k)))
                .collect(),
        }
    }
}

/// The reconciler's cache.
#[derive(Debug, Default)]
pub(super) struct Memo {
    apps: BTreeMap<ObjKey, Arc<Derived>>,
    ingress: BTreeMap<String, NsRules>,
    /// Application scope → the inputs of its last plan, when that plan asked for nothing.
    quiet_apps: BTreeMap<ObjKey, AppInputs>,
}

impl Memo {
    /// Locks the cache. A panic while it was held leaves nothing half-written that matters
    /// (entries are replaced whole), so a poisoned lock is taken over.
    pub fn lock(memo: &Mutex<Memo>) -> MutexGuard<'_, Memo> {
        memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the Application at `key` asks for, derived once per revision.
    pub fn derived(
        &mut self,
        r: &ApplicationReconciler,
        world: &World,
        key: &ObjKey,
        app: &Application,
    ) -> Arc<Derived> {
        let rev = world.revision(key).unwrap_or(0);
        if let Some(d) = self.apps.get(key).filter(|d| d.rev == rev && rev != 0) {
            return d.clone();
        }
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let problems = spec_problems(name, app);
        let valid = problems.is_empty();
        let d = Arc::new(Derived {
            rev,
            problems,
            deployment: valid.then(|| r.desired_deployment(ns, name, app)),
            service: valid.then(|| r.desired_service(ns, name, app)),
        });
        if self.apps.len() > 2 * world.app_count() + 1024 {
            // Applications that went away: dropped in one sweep, now and then.
            self.apps.retain(|k, _| world.app(k).is_some());
        }
        if rev != 0 {
            self.apps.insert(key.clone(), d.clone());
        }
        d
    }

    /// The shared-Ingress rules of `ns`, brought up to date with the world's journal.
    pub fn rules(&mut self, r: &ApplicationReconciler, world: &World, ns: &str) -> &NsRules {
        let mut rules = self.ingress.remove(ns).unwrap_or_default();
        let changed: Vec<String> = if rules.world != world.id() {
            rules = NsRules {
                world: world.id(),
                version: rules.version + 1,
                ..NsRules::default()
            };
            world.app_names_in(ns).cloned().collect()
        } else {
            world
                .apps_changed_since(ns, rules.seen)
                .map(|(_, name)| name.clone())
                .collect()
        };
        rules.seen = world.last_app_change(ns);
        let mut any = false;
        for name in changed {
            let key = ObjKey::new(APPLICATION, ns, &name);
            let now = self.rule_of(r, world, &key);
            let before = rules.by_app.get(&name).and_then(|host| {
                rules
                    .rules
                    .get(host)
                    .filter(|(holder, _)| *holder == name)
                    .map(|(_, rule)| (host, rule))
            });
            if before.map(|(h, rule)| (h.as_str(), rule))
                == now.as_ref().map(|(h, r)| (h.as_str(), r))
            {
                continue;
            }
            any = true;
            if let Some(host) = rules.by_app.remove(&name)
                && rules
                    .rules
                    .get(&host)
                    .is_some_and(|(holder, _)| *holder == name)
            {
                rules.rules.remove(&host);
            }
            if let Some((host, rule)) = now {
                rules.by_app.insert(name.clone(), host.clone());
                rules.rules.insert(host, (name, rule));
            }
        }
        if any {
            rules.version += 1;
        }
        self.ingress.insert(ns.to_string(), rules);
        &self.ingress[ns]
    }

    /// The rule the Application at `key` has in its namespace's shared Ingress: when it asks
    /// for a host, holds it, is valid and is not being deleted.
    fn rule_of(
        &mut self,
        r: &ApplicationReconciler,
        world: &World,
        key: &ObjKey,
    ) -> Option<(String, IngressRule)> {
        let app = world.app(key)?;
        let host = app.spec.host.as_deref()?;
        if app.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let holder = host_holder(world, host)?;
        if holder.namespace != key.namespace || holder.name != key.name {
            return None;
        }
        if !self.derived(r, world, key, app).problems.is_empty() {
            return None;
        }
        Some((host.to_string(), r.ingress_rule(&key.name, host, app)))
    }

    /// True when the last plan of the Application scope `key` asked for nothing and read
    /// exactly `inputs`: planning it again would ask for nothing again.
    pub fn app_is_quiet(&self, key: &ObjKey, inputs: &AppInputs) -> bool {
        self.quiet_apps.get(key) == Some(inputs)
    }

    /// Notes that the plan of the Application scope `key` with `inputs` asked for `actions`.
    pub fn app_planned(&mut self, world: &World, key: &ObjKey, inputs: AppInputs, quiet: bool) {
        if quiet {
            if self.quiet_apps.len() > 2 * world.app_count() + 1024 {
                self.quiet_apps.retain(|k, _| world.app(k).is_some());
            }
            self.quiet_apps.insert(key.clone(), inputs);
        } else {
            self.quiet_apps.remove(key);
        }
    }

    /// Notes that the plan of `ns`'s Ingress with `inputs` asked for `actions`.
    pub fn planned(&mut self, ns: &str, inputs: IngressInputs, actions: &[Action]) {
        if let Some(rules) = self.ingress.get_mut(ns) {
            rules.quiet = actions.is_empty().then_some(inputs);
        }
    }
}
