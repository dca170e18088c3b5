//! Actions: what the planner asks executors to do, with ids derived from content and cause.

use crate::world::ObjKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// What an action does to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// The object does not exist yet: server-side apply it.
    Create,
    /// The object exists but a field logbook owns differs: server-side apply it.
    Apply,
    /// The object must go: delete it, with its uid as precondition.
    Delete,
    /// Write an Application's `status` subresource.
    Status,
}

impl Verb {
    /// The verb's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Apply => "apply",
            Verb::Delete => "delete",
            Verb::Status => "status",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request to change the cluster, as the planner produced it.
///
/// Everything an executor needs is here (it makes no decisions); everything an auditor needs to
/// ask "why" is here too: the reason and the observed versions the action was derived from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Content-derived id: the same world always yields the same id (see [`Action::new`]).
    pub id: String,
    /// What to do.
    pub verb: Verb,
    /// The object acted on.
    pub target: ObjKey,
    /// The target's `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// The Application (`namespace/name`) this action serves; `None` for shared objects.
    pub app: Option<String>,
    /// The object to apply (create/apply), or the status to write (status); `None` for delete.
    pub object: Option<serde_json::Value>,
    /// For delete: the uid the object must still have.
    pub uid: Option<String>,
    /// Why: `missing`, `drift at spec.replicas`, `orphaned`, ...
    pub reason: String,
    /// The observed objects (key → resourceVersion) the action was derived from.
    pub basis: BTreeMap<String, String>,
}

impl Action {
    /// Builds an action and derives its id from everything else in it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        verb: Verb,
        target: ObjKey,
        api_version: &str,
        app: Option<String>,
        object: Option<serde_json::Value>,
        uid: Option<String>,
        reason: String,
        basis: BTreeMap<String, String>,
    ) -> Self {
        let mut action = Action {
            id: String::new(),
            verb,
            target,
            api_version: api_version.to_string(),
            app,
            object,
            uid,
            reason,
            basis,
        };
        action.id = action.content_id();
        action
    }

    /// `act-` and the first 20 hex digits of the SHA-256 of the action's canonical JSON
    /// (its id field left empty). serde_json maps are sorted, so the bytes are canonical.
    pub fn content_id(&self) -> String {
        let mut copy = self.clone();
        copy.id.clear();
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        format!("act-{}", &hex::encode(digest)[..20])
    }
}
