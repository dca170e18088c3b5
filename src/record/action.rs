//! Actions: what the planner asks executors to do, with ids derived from content and cause.

use super::key::ObjKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// The `basis` key of an action that repairs a forged fencing token: its value is the plan
/// sequence the object carries but the log never issued. An executor lets such an action
/// through the fence when the object still carries exactly that value; any other newer token
/// still supersedes it.
pub const FENCE_OVERRIDE: &str = "fence";

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

    /// `act-` and the first 20 hex digits of the SHA-256 of the action's canonical JSON with
    /// an empty id. serde_json maps are sorted, so the bytes are canonical; they are streamed
    /// into the hash, never copied.
    pub fn content_id(&self) -> String {
        let view = IdView {
            id: "",
            verb: self.verb,
            target: &self.target,
            api_version: &self.api_version,
            app: &self.app,
            object: &self.object,
            uid: &self.uid,
            reason: &self.reason,
            basis: &self.basis,
        };
        let mut hasher = HashWriter(Sha256::new());
        // Writing into a hasher cannot fail, and these types always serialize.
        let _ = serde_json::to_writer(&mut hasher, &view);
        format!("act-{}", &hex::encode(hasher.0.finalize())[..20])
    }
}

/// The fields of an [`Action`], borrowed, in the order the struct declares them.
#[derive(Serialize)]
struct IdView<'a> {
    id: &'a str,
    verb: Verb,
    target: &'a ObjKey,
    api_version: &'a str,
    app: &'a Option<String>,
    object: &'a Option<serde_json::Value>,
    uid: &'a Option<String>,
    reason: &'a str,
    basis: &'a BTreeMap<String, String>,
}

/// Feeds written bytes into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_the_hash_of_the_canonical_json_without_id() {
        let a = Action::new(
            Verb::Apply,
            ObjKey::new("Deployment", "ns", "web"),
            "apps/v1",
            Some("ns/web".into()),
            Some(serde_json::json!({"b": 1, "a": [1, 2]})),
            None,
            "drift at spec.replicas".into(),
            BTreeMap::from([("Deployment/ns/web".to_string(), "7".to_string())]),
        );
        let mut copy = a.clone();
        copy.id.clear();
        let expected = format!(
            "act-{}",
            &hex::encode(Sha256::digest(serde_json::to_vec(&copy).unwrap()))[..20]
        );
        assert_eq!(a.id, expected);
        let mut other = a.clone();
        other.basis.insert("Deployment/ns/web".into(), "8".into());
        assert_ne!(other.content_id(), a.id, "a new cause is a new action");
    }
}
