//! Labels, annotations and names shared by everything logbook manages.

use std::collections::BTreeMap;

/// The label that marks an object as managed by logbook; objects without it are never touched.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`] on logbook's objects.
pub const MANAGER: &str = "logbook";
/// The label naming the application an object belongs to.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The label naming the instance (the Application's name).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The label naming the role of the object within the application.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The label naming the version (image tag) the object runs.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
/// The label naming the larger system the object is part of.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";

/// Annotation carrying the id of the last action that wrote the object (set by executors).
pub const ACTION_ID_ANNOTATION: &str = "logbook.dev/action-id";
/// Annotation carrying the plan sequence of the last action that wrote the object (fencing token).
pub const PLAN_SEQ_ANNOTATION: &str = "logbook.dev/plan-seq";

/// The field manager logbook uses for server-side apply.
pub const FIELD_MANAGER: &str = "logbook";
/// The name of the shared Ingress that holds the rules of a namespace's Applications.
pub const SHARED_INGRESS: &str = "logbook";

/// Label selector matching every object logbook manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

/// The labels of a child of application `app` playing role `component`.
pub fn child_labels(app: &str, component: &str, version: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(MANAGED_BY.to_string(), MANAGER.to_string());
    labels.insert(NAME_LABEL.to_string(), app.to_string());
    labels.insert(INSTANCE_LABEL.to_string(), app.to_string());
    labels.insert(COMPONENT_LABEL.to_string(), component.to_string());
    labels.insert(PART_OF_LABEL.to_string(), MANAGER.to_string());
    if let Some(v) = version.filter(|v| is_label_value(v)) {
        labels.insert(VERSION_LABEL.to_string(), v.to_string());
    }
    labels
}

/// The labels of a namespace's shared Ingress.
pub fn ingress_labels() -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(MANAGED_BY.to_string(), MANAGER.to_string());
    labels.insert(NAME_LABEL.to_string(), SHARED_INGRESS.to_string());
    labels.insert(COMPONENT_LABEL.to_string(), "ingress".to_string());
    labels.insert(PART_OF_LABEL.to_string(), MANAGER.to_string());
    labels
}

/// The selector labels of an application's pods (a subset of [`child_labels`], immutable).
pub fn selector_labels(app: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(NAME_LABEL.to_string(), app.to_string());
    labels.insert(INSTANCE_LABEL.to_string(), app.to_string());
    labels
}

/// A valid Kubernetes label value: at most 63 characters, alphanumerics with `-_.` inside.
pub fn is_label_value(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty()
            || (v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// The tag of an image reference (`repo/name:tag` → `tag`), if it has one and no digest.
pub fn image_tag(image: &str) -> Option<&str> {
    if image.contains('@') {
        return None;
    }
    let last = image.rsplit('/').next()?;
    last.split_once(':').map(|(_, tag)| tag)
}

/// A DNS-1035 label (what a Service name must be): lowercase alphanumerics and `-`,
/// starting with a letter, ending with an alphanumeric, at most 63 characters.
pub fn is_dns1035_label(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("nginx:1.27"), Some("1.27"));
        assert_eq!(image_tag("registry:5000/team/app:v2"), Some("v2"));
        assert_eq!(image_tag("registry:5000/team/app"), None);
        assert_eq!(image_tag("app@sha256:abc"), None);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns1035_label("web-1"));
        assert!(!is_dns1035_label("1web"));
        assert!(!is_dns1035_label("web.app"));
        assert!(!is_dns1035_label(&"a".repeat(64)));
    }

    #[test]
    fn label_values() {
        assert!(is_label_value("1.27-alpine"));
        assert!(!is_label_value("-bad"));
        assert!(!is_label_value(&"a".repeat(64)));
    }
}
