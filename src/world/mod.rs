//! The world view the planner reads: Applications and managed objects as last observed.
//!
//! Owns the indexes that keep planning incremental (host claims, children by application,
//! applications by namespace, and a journal of which Applications changed, so a planner can
//! keep what it derived from the others). It is pure data, changed only by [`World::observe`]
//! and [`World::forget`]; it never reads the API server and never looks at a clock.

mod fold;
mod observed;

pub use fold::checkpoint::{
    CHECKPOINT_FORMAT, CHECKPOINT_KIND, CHECKPOINT_NAME, Checkpoint, CheckpointDetail,
    checkpoint_key,
};
pub use fold::{ANSWER_DEADLINE_KEY, DEFAULT_ANSWER_DEADLINE_MS, Fold, Overdue, checkpoint};
pub use observed::{Observed, Unreadable, strip_managed_fields};

use crate::model::{Application, INSTANCE_LABEL, SHARED_INGRESS};
use crate::record::{Action, ObjKey};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

/// The source of [`World::id`]s and revisions: unique in the process, never reused.
static STAMPS: AtomicU64 = AtomicU64::new(1);

fn stamp() -> u64 {
    STAMPS.fetch_add(1, Ordering::Relaxed)
}

/// The kind name of [`Application`].
pub const APPLICATION: &str = "Application";

/// Who claims a host: ordered oldest first (by creationTimestamp, then namespace and name;
/// an Application without a timestamp counts as the newest).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostClaim {
    /// True when the claimant has no creationTimestamp (sorts after every timestamp).
    pub undated: bool,
    /// The claimant's creationTimestamp (RFC 3339), empty when undated.
    pub created: String,
    /// The claimant's namespace.
    pub namespace: String,
    /// The claimant's name.
    pub name: String,
}

/// The world as the controller knows it: the input of the planner.
///
/// Besides what was observed it keeps *revisions*: every change of an object (and, for an
/// Application, every change of the claims on its host) gets a number unique in the process.
/// Revisions say nothing about content and never reach a plan; they let a planner keep what it
/// derived from an object until the object changes ([`World::revision`],
/// [`World::apps_changed_since`]). A clone is another world with its own [`World::id`].
#[derive(Debug)]
pub struct World {
    id: u64,
    /// key → revision of its last change (for Applications, kept after they are gone).
    revs: BTreeMap<ObjKey, u64>,
    /// namespace → revision → name: every Application that ever was in the namespace, by the
    /// revision of its last change (a removal included).
    app_changes: BTreeMap<String, BTreeMap<u64, String>>,
    apps: BTreeMap<ObjKey, Application>,
    objects: BTreeMap<ObjKey, Observed>,
    pending: BTreeMap<ObjKey, Action>,
    /// target → (plan sequence, action id) of the newest action the log issued for it.
    issued: BTreeMap<ObjKey, (u64, String)>,
    hosts: BTreeMap<String, BTreeSet<HostClaim>>,
    /// namespace → Application names in it.
    apps_by_ns: BTreeMap<String, BTreeSet<String>>,
    /// (namespace, application) → managed children that name it as their instance.
    children: BTreeMap<(String, String), BTreeSet<ObjKey>>,
    now: Option<String>,
}

impl Default for World {
    fn default() -> Self {
        World {
            id: stamp(),
            revs: BTreeMap::new(),
            app_changes: BTreeMap::new(),
            apps: BTreeMap::new(),
            objects: BTreeMap::new(),
            pending: BTreeMap::new(),
            issued: BTreeMap::new(),
            hosts: BTreeMap::new(),
            apps_by_ns: BTreeMap::new(),
            children: BTreeMap::new(),
            now: None,
        }
    }
}

impl Clone for World {
    /// The same view, as another world: it gets its own [`World::id`], so what a planner
    /// derived from one is not taken for the other's once they go separate ways.
    fn clone(&self) -> Self {
        World {
            id: stamp(),
            revs: self.revs.clone(),
            app_changes: self.app_changes.clone(),
            apps: self.apps.clone(),
            objects: self.objects.clone(),
            pending: self.pending.clone(),
            issued: self.issued.clone(),
            hosts: self.hosts.clone(),
            apps_by_ns: self.apps_by_ns.clone(),
            children: self.children.clone(),
            now: self.now.clone(),
        }
    }
}

impl World {
    /// An empty world.
    pub fn new() -> Self {
        World::default()
    }

    /// This world's identity: unique in the process, and new for every clone.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The revision of the last change of `key` (see [`World`]); for an Application, also
    /// bumped when the claims on its host change, and kept after it is gone.
    pub fn revision(&self, key: &ObjKey) -> Option<u64> {
        self.revs.get(key).copied()
    }

    /// The Applications of `namespace` that changed (appeared, changed, went away, or saw the
    /// claims on their host change) at a revision above `since`, oldest change first, with
    /// that revision. Each name appears once, at its last change.
    pub fn apps_changed_since(
        &self,
        namespace: &str,
        since: u64,
    ) -> impl Iterator<Item = (u64, &String)> {
        self.app_changes
            .get(namespace)
            .into_iter()
            .flat_map(move |m| m.range(since.saturating_add(1)..))
            .map(|(rev, name)| (*rev, name))
    }

    /// The highest revision of any Application change in `namespace` (0 when none).
    pub fn last_app_change(&self, namespace: &str) -> u64 {
        self.app_changes
            .get(namespace)
            .and_then(|m| m.last_key_value())
            .map_or(0, |(rev, _)| *rev)
    }

    /// Stamps a change of `key`: a new revision, and for an Application its journal entry.
    fn touch(&mut self, key: &ObjKey) {
        let rev = stamp();
        let old = self.revs.insert(key.clone(), rev);
        if key.kind == APPLICATION {
            let journal = self.app_changes.entry(key.namespace.clone()).or_default();
            if let Some(old) = old {
                journal.remove(&old);
            }
            journal.insert(rev, key.name.clone());
        }
    }

    /// Stamps every Application claiming `host`: who holds it may have changed.
    fn touch_claimants(&mut self, host: &str) {
        let claimants: Vec<ObjKey> = self
            .host_claims(host)
            .map(|c| ObjKey::new(APPLICATION, &c.namespace, &c.name))
            .collect();
        for key in claimants {
            self.touch(&key);
        }
    }

    /// Records an observed object (an Application or anything else), replacing what was known.
    /// Returns an error when an Application's spec cannot be read; the world is then unchanged.
    pub fn observe(&mut self, key: ObjKey, observed: Observed) -> Result<(), String> {
        if key.kind == APPLICATION {
            let app: Application = observed
                .read_as()
                .map_err(|e| format!("{key}: not a valid Application: {e}"))?;
            self.forget(&key);
            self.insert_app(key.clone(), app);
        } else {
            self.forget(&key);
            if let Some(app) = instance_of(&observed) {
                self.children
                    .entry((key.namespace.clone(), app))
                    .or_default()
                    .insert(key.clone());
            }
        }
        self.touch(&key);
        self.objects.insert(key, observed);
        Ok(())
    }

    /// Forgets an object (it was deleted). Unknown keys are ignored.
    pub fn forget(&mut self, key: &ObjKey) {
        if key.kind == APPLICATION {
            self.touch(key);
        } else {
            self.revs.remove(key);
        }
        if let Some(old) = self.objects.remove(key)
            && let Some(app) = instance_of(&old)
        {
            let slot = (key.namespace.clone(), app);
            if let Some(set) = self.children.get_mut(&slot) {
                set.remove(key);
                if set.is_empty() {
                    self.children.remove(&slot);
                }
            }
        }
        if let Some(app) = self.apps.remove(key) {
            if let Some(host) = app.spec.host.as_deref()
                && let Some(claims) = self.hosts.get_mut(host)
            {
                claims.retain(|c| !(c.namespace == key.namespace && c.name == key.name));
                if claims.is_empty() {
                    self.hosts.remove(host);
                }
                let host = host.to_string();
                self.touch_claimants(&host);
            }
            if let Some(names) = self.apps_by_ns.get_mut(&key.namespace) {
                names.remove(&key.name);
                if names.is_empty() {
                    self.apps_by_ns.remove(&key.namespace);
                }
            }
        }
    }

    fn insert_app(&mut self, key: ObjKey, app: Application) {
        if let Some(host) = app.spec.host.clone() {
            let created = app
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            self.hosts
                .entry(host.clone())
                .or_default()
                .insert(HostClaim {
                    undated: created.is_empty(),
                    created,
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                });
            self.touch_claimants(&host);
        }
        self.apps_by_ns
            .entry(key.namespace.clone())
            .or_default()
            .insert(key.name.clone());
        self.apps.insert(key, app);
    }

    /// Sets the planner's notion of "now": the timestamp of the last entry it read (RFC 3339).
    pub fn set_now(&mut self, now: Option<String>) {
        self.now = now;
    }

    /// The timestamp of the last entry read, if any.
    pub fn now(&self) -> Option<&str> {
        self.now.as_deref()
    }

    /// Marks an action as on its way (planned, not yet answered nor observed).
    pub fn set_pending(&mut self, action: Action) {
        self.pending.insert(action.target.clone(), action);
    }

    /// Clears the pending action on `target` if it is the one with `action_id`.
    pub fn clear_pending(&mut self, target: &ObjKey, action_id: &str) {
        if self.pending.get(target).is_some_and(|a| a.id == action_id) {
            self.pending.remove(target);
        }
    }

    /// The pending action on `target`, if any.
    pub fn pending(&self, target: &ObjKey) -> Option<&Action> {
        self.pending.get(target)
    }

    /// Notes that the log issued `action_id` of plan `plan_seq` for `target`.
    pub fn set_issued(&mut self, target: &ObjKey, plan_seq: u64, action_id: &str) {
        let newer = self
            .issued
            .get(target)
            .is_none_or(|(seq, _)| *seq <= plan_seq);
        if newer {
            self.issued
                .insert(target.clone(), (plan_seq, action_id.to_string()));
        }
    }

    /// The plan sequence and id of the newest action the log issued for `target`.
    pub fn issued(&self, target: &ObjKey) -> Option<(u64, &str)> {
        self.issued.get(target).map(|(s, id)| (*s, id.as_str()))
    }

    /// Why the fencing token `(plan_seq, action_id)` an object carries was not issued by the
    /// log for `target`, if it was not: a plan sequence beyond the newest the log issued for
    /// it, or that very sequence with another action id. (Older tokens cannot be told apart
    /// from ones the log issued and were since replaced, and are taken as issued.)
    pub fn forged_token(
        &self,
        target: &ObjKey,
        plan_seq: u64,
        action_id: Option<&str>,
    ) -> Option<String> {
        match self.issued(target) {
            None => Some(format!(
                "the object carries plan sequence {plan_seq}, but the log never issued an action \
                 for it"
            )),
            Some((issued, _)) if plan_seq > issued => Some(format!(
                "the object carries plan sequence {plan_seq}, beyond the newest the log issued \
                 for it ({issued})"
            )),
            Some((issued, id)) if plan_seq == issued && action_id.is_some_and(|a| a != id) => {
                Some(format!(
                    "the object carries action {} of plan {plan_seq}, which the log never issued \
                     (it issued {id})",
                    action_id.unwrap_or_default()
                ))
            }
            _ => None,
        }
    }

    /// All pending actions, ordered by target.
    pub fn pending_actions(&self) -> impl Iterator<Item = &Action> {
        self.pending.values()
    }

    /// The Application at `key`.
    pub fn app(&self, key: &ObjKey) -> Option<&Application> {
        self.apps.get(key)
    }

    /// All Applications, ordered by namespace and name.
    pub fn apps(&self) -> impl Iterator<Item = (&ObjKey, &Application)> {
        self.apps.iter()
    }

    /// The number of Applications.
    pub fn app_count(&self) -> usize {
        self.apps.len()
    }

    /// The observed object at `key` (any kind, Applications included).
    pub fn object(&self, key: &ObjKey) -> Option<&Observed> {
        self.objects.get(key)
    }

    /// All observed objects, ordered by key.
    pub fn objects(&self) -> impl Iterator<Item = (&ObjKey, &Observed)> {
        self.objects.iter()
    }

    /// Names of the Applications in `namespace`, sorted.
    pub fn app_names_in(&self, namespace: &str) -> impl Iterator<Item = &String> {
        self.apps_by_ns.get(namespace).into_iter().flatten()
    }

    /// Every namespace that has Applications or managed objects, sorted.
    pub fn namespaces(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.apps_by_ns.keys().cloned().collect();
        out.extend(
            self.objects
                .iter()
                .filter(|(k, o)| k.name == SHARED_INGRESS && k.kind == "Ingress" && o.is_managed())
                .map(|(k, _)| k.namespace.clone()),
        );
        out
    }

    /// Managed children that name `namespace/app` as their instance.
    pub fn children_of(&self, namespace: &str, app: &str) -> impl Iterator<Item = &ObjKey> {
        self.children
            .get(&(namespace.to_string(), app.to_string()))
            .into_iter()
            .flatten()
    }

    /// Every (namespace, application) that has managed children, sorted.
    pub fn child_owners(&self) -> impl Iterator<Item = &(String, String)> {
        self.children.keys()
    }

    /// The claims on `host`, oldest first.
    pub fn host_claims(&self, host: &str) -> impl Iterator<Item = &HostClaim> {
        self.hosts.get(host).into_iter().flatten()
    }
}

/// The Application a managed object belongs to (its `app.kubernetes.io/instance` label).
fn instance_of(observed: &Observed) -> Option<String> {
    if !observed.is_managed() {
        return None;
    }
    observed.label(INSTANCE_LABEL).map(str::to_string)
}
