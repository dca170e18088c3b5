//! What an executor may touch: the kinds logbook manages, with the verbs each allows, in the
//! namespaces it is configured for, and only objects that carry logbook's managed-by label.
//! Checked before any request; it refuses, it never decides what to do instead.

use crate::model::{MANAGED_BY, MANAGER};
use crate::record::{Action, Verb};
use serde_json::Value;
use std::collections::BTreeSet;

/// Every kind an action may target, its apiVersion, and the verbs allowed on it: the kinds the
/// planner manages (`tests/executor.rs` checks the two agree) and nothing else.
pub const KINDS: &[(&str, &str, &[Verb])] = &[
    ("Deployment", "apps/v1", CHILD),
    ("Service", "v1", CHILD),
    ("Ingress", "networking.k8s.io/v1", CHILD),
    ("Application", "logbook.dev/v1alpha1", &[Verb::Status]),
];

const CHILD: &[Verb] = &[Verb::Create, Verb::Apply, Verb::Delete];

/// The namespaces an executor acts in (none: every namespace).
#[derive(Clone, Debug, Default)]
pub struct Remit {
    namespaces: BTreeSet<String>,
}

impl Remit {
    /// A remit over `namespaces` (empty: every namespace).
    pub fn new(namespaces: impl IntoIterator<Item = String>) -> Remit {
        Remit {
            namespaces: namespaces.into_iter().filter(|n| !n.is_empty()).collect(),
        }
    }

    /// Why `action` is outside the remit, if it is: an unmanaged kind or verb, a namespace this
    /// executor is not configured for, or an object to write that is not logbook's own (other
    /// identity than its target, or without the managed-by label).
    pub fn check(&self, action: &Action) -> Result<(), String> {
        let target = &action.target;
        let Some((_, api_version, verbs)) = KINDS.iter().find(|(k, _, _)| *k == target.kind) else {
            return Err(format!(
                "{} is not a kind logbook manages ({})",
                target.kind,
                KINDS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
            ));
        };
        if action.api_version != *api_version {
            return Err(format!(
                "{} is managed as {api_version}, not {}",
                target.kind, action.api_version
            ));
        }
        if !verbs.contains(&action.verb) {
            return Err(format!(
                "logbook does not {} a {} (only {})",
                action.verb,
                target.kind,
                verbs
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if target.namespace.is_empty() {
            return Err(format!(
                "{} {} names no namespace",
                target.kind, target.name
            ));
        }
        if !self.namespaces.is_empty() && !self.namespaces.contains(&target.namespace) {
            return Err(format!(
                "namespace {} is not one this executor acts in (--namespaces {})",
                target.namespace,
                self.namespaces
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        let Some(object) = &action.object else {
            return match action.verb {
                Verb::Delete => Ok(()),
                verb => Err(format!("the {verb} action carries no object")),
            };
        };
        let field = |path: &str| object.pointer(path).and_then(Value::as_str);
        for (path, want) in [
            ("/kind", target.kind.as_str()),
            ("/apiVersion", action.api_version.as_str()),
            ("/metadata/name", target.name.as_str()),
            ("/metadata/namespace", target.namespace.as_str()),
        ] {
            if let Some(found) = field(path)
                && found != want
            {
                return Err(format!(
                    "the object's {} is {found:?}, but the action targets {want:?}",
                    &path[1..].replace('/', ".")
                ));
            }
        }
        if action.verb != Verb::Status
            && field(&format!("/metadata/labels/{}", escape(MANAGED_BY))) != Some(MANAGER)
        {
            return Err(format!(
                "the object to write does not carry the label {MANAGED_BY}={MANAGER}"
            ));
        }
        Ok(())
    }
}

/// Why an object found in the cluster is not logbook's to change, if it is not: it lacks the
/// managed-by label. (An Application's status is written on the user's own object.)
pub fn check_existing(
    kind: &str,
    labels: Option<&std::collections::BTreeMap<String, String>>,
    what: &str,
) -> Result<(), String> {
    if kind == "Application" {
        return Ok(());
    }
    match labels.and_then(|l| l.get(MANAGED_BY)) {
        Some(m) if m == MANAGER => Ok(()),
        _ => Err(format!(
            "{what} exists without the label {MANAGED_BY}={MANAGER}: it is not logbook's to \
             change"
        )),
    }
}

/// A JSON pointer token for `s` (`/` and `~` escaped).
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ObjKey;
    use serde_json::json;

    fn action(verb: Verb, kind: &str, api_version: &str, object: Option<Value>) -> Action {
        Action::new(
            verb,
            ObjKey::new(kind, "shop", "web"),
            api_version,
            Some("shop/web".into()),
            object,
            None,
            "test".into(),
            Default::default(),
        )
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {MANAGED_BY: MANAGER}}})
    }

    #[test]
    fn what_logbook_manages_passes() {
        let remit = Remit::default();
        for verb in [Verb::Create, Verb::Apply] {
            assert_eq!(
                remit.check(&action(verb, "Deployment", "apps/v1", Some(deployment()))),
                Ok(())
            );
        }
        assert_eq!(
            remit.check(&action(Verb::Delete, "Service", "v1", None)),
            Ok(())
        );
        let status = json!({"metadata": {"name": "web", "namespace": "shop"}, "status": {}});
        assert_eq!(
            remit.check(&action(
                Verb::Status,
                "Application",
                "logbook.dev/v1alpha1",
                Some(status)
            )),
            Ok(())
        );
        let only_shop = Remit::new(["shop".to_string()]);
        assert_eq!(
            only_shop.check(&action(Verb::Delete, "Service", "v1", None)),
            Ok(())
        );
    }

    #[test]
    fn everything_else_is_refused_with_the_reason() {
        let remit = Remit::default();
        let refused = |a: Action| remit.check(&a).err().unwrap_or_default();
        assert!(refused(action(Verb::Delete, "Secret", "v1", None)).contains("not a kind"));
        assert!(refused(action(Verb::Delete, "Namespace", "v1", None)).contains("not a kind"));
        assert!(
            refused(action(
                Verb::Delete,
                "Deployment",
                "extensions/v1beta1",
                None
            ))
            .contains("managed as apps/v1")
        );
        assert!(
            refused(action(Verb::Status, "Deployment", "apps/v1", None))
                .contains("does not status")
        );
        assert!(
            refused(action(
                Verb::Delete,
                "Application",
                "logbook.dev/v1alpha1",
                None
            ))
            .contains("does not delete")
        );
        let mut unlabelled = deployment();
        unlabelled["metadata"]["labels"] = json!({});
        assert!(
            refused(action(
                Verb::Apply,
                "Deployment",
                "apps/v1",
                Some(unlabelled)
            ))
            .contains("does not carry the label")
        );
        let mut elsewhere = deployment();
        elsewhere["metadata"]["namespace"] = json!("kube-system");
        assert!(
            refused(action(
                Verb::Apply,
                "Deployment",
                "apps/v1",
                Some(elsewhere)
            ))
            .contains("metadata.namespace")
        );
        let only_other = Remit::new(["other".to_string()]);
        assert!(
            only_other
                .check(&action(Verb::Delete, "Service", "v1", None))
                .is_err_and(|e| e.contains("not one this executor acts in"))
        );
        let labels = [(MANAGED_BY.to_string(), "helm".to_string())].into();
        assert!(check_existing("Deployment", Some(&labels), "Deployment shop/web").is_err());
        assert!(check_existing("Deployment", None, "Deployment shop/web").is_err());
        assert!(check_existing("Application", None, "Application shop/web").is_ok());
    }
}
