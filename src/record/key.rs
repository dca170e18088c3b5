//! Object keys: kind, namespace and name, ordered, the way every map in logbook is keyed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies an object by kind, namespace and name (namespace empty for cluster-scoped kinds).
///
/// Ordered by kind, then namespace, then name, so maps keyed by it iterate deterministically.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjKey {
    /// The object's kind, e.g. `Deployment`.
    pub kind: String,
    /// The object's namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjKey {
    /// A key from its three parts.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        ObjKey {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// Parses `KIND/NAMESPACE/NAME` (or `KIND/NAME` for cluster-scoped objects).
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [kind, ns, name] if !kind.is_empty() && !name.is_empty() => {
                Ok(ObjKey::new(kind, ns, name))
            }
            [kind, name] if !kind.is_empty() && !name.is_empty() => Ok(ObjKey::new(kind, "", name)),
            _ => Err(format!(
                "`{s}` is not an object reference; expected KIND/NAMESPACE/NAME, e.g. Deployment/default/web"
            )),
        }
    }
}

impl fmt::Display for ObjKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}
