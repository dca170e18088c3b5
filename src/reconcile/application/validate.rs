//! Validation of an Application spec beyond what its schema can say.
//!
//! The CRD schema already rejects most bad specs at the API server; this checks again what a
//! spec read from a file or an older log may still get wrong, and what no schema can express
//! (the name must also be a valid Service name, exactly one source per env var, requests not
//! above limits, one Application per host).

use crate::model::{Application, PATH_PATTERN, is_dns1035_label};
use crate::reconcile::quantity;
use crate::world::{HostClaim, World};

/// Why an Application cannot be turned into children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Another, older Application already uses the host.
    HostConflict {
        /// The host asked for.
        host: String,
        /// `namespace/name` of the Application that holds it.
        holder: String,
    },
    /// The spec breaks rules; each string names the field and the problem.
    Spec(Vec<String>),
}

impl Invalid {
    /// The condition reason: `HostConflict` or `InvalidSpec`.
    pub fn reason(&self) -> &'static str {
        match self {
            Invalid::HostConflict { .. } => "HostConflict",
            Invalid::Spec(_) => "InvalidSpec",
        }
    }

    /// A message saying what is wrong and what to do.
    pub fn message(&self) -> String {
        match self {
            Invalid::HostConflict { host, holder } => format!(
                "host {host} is already used by Application {holder}; choose another host, or remove it from {holder} first"
            ),
            Invalid::Spec(problems) => problems.join("; "),
        }
    }
}

/// Checks `app` (at `namespace/name`) against everything its schema cannot enforce.
pub fn validate(
    world: &World,
    namespace: &str,
    name: &str,
    app: &Application,
) -> Result<(), Invalid> {
    let problems = spec_problems(name, app);
    validate_with(world, namespace, name, app, &problems)
}

/// [`validate`], given the [`spec_problems`] of `app` (which depend on nothing else, so a
/// planner can keep them until the Application changes).
pub(super) fn validate_with(
    world: &World,
    namespace: &str,
    name: &str,
    app: &Application,
    problems: &[String],
) -> Result<(), Invalid> {
    if !problems.is_empty() {
        return Err(Invalid::Spec(problems.to_vec()));
    }
    let spec = &app.spec;
    if let Some(host) = &spec.host
        && let Some(holder) = host_holder(world, host)
        && (holder.namespace != namespace || holder.name != name)
    {
        return Err(Invalid::HostConflict {
            host: host.clone(),
            holder: format!("{}/{}", holder.namespace, holder.name),
        });
    }
    Ok(())
}

/// What is wrong with the spec of `app` (named `name`) on its own, field by field; empty when
/// nothing is. Host conflicts, which depend on other Applications, are [`validate`]'s.
pub(super) fn spec_problems(name: &str, app: &Application) -> Vec<String> {
    let mut problems = Vec::new();
    let spec = &app.spec;
    if !is_dns1035_label(name) {
        problems.push(format!(
            "metadata.name {name:?} cannot name a Service: use at most 63 lowercase letters, digits and '-', starting with a letter"
        ));
    }
    if spec.image.trim().is_empty() {
        problems.push("spec.image is empty: name the container image to run".to_string());
    } else if spec.image.chars().any(char::is_whitespace) {
        problems.push(format!("spec.image {:?} contains whitespace", spec.image));
    }
    if !(0..=1000).contains(&spec.replicas) {
        problems.push(format!(
            "spec.replicas is {}: it must be between 0 and 1000",
            spec.replicas
        ));
    }
    if !(1..=65535).contains(&spec.port) {
        problems.push(format!(
            "spec.port is {}: it must be between 1 and 65535",
            spec.port
        ));
    }
    if let Some(host) = &spec.host
        && !is_dns_subdomain(host)
    {
        problems.push(format!(
                "spec.host {host:?} is not a DNS name: use lowercase letters, digits, '-' and '.', at most 253 characters"
            ));
    }
    if !is_path(&spec.path) {
        problems.push(format!(
            "spec.path {:?} must start with '/' and contain no spaces",
            spec.path
        ));
    }
    if let Some(check) = &spec.health_check
        && !is_path(&check.path)
    {
        problems.push(format!(
            "spec.healthCheck.path {:?} must start with '/' and contain no spaces",
            check.path
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, env) in spec.env.iter().enumerate() {
        let sources = usize::from(env.value.is_some())
            + usize::from(env.secret_key_ref.is_some())
            + usize::from(env.config_map_key_ref.is_some());
        if sources > 1 {
            problems.push(format!(
                "spec.env[{i}] ({}) sets more than one of value, secretKeyRef and configMapKeyRef: keep one",
                env.name
            ));
        }
        if !seen.insert(env.name.as_str()) {
            problems.push(format!(
                "spec.env[{i}] repeats the name {}: each variable may appear once",
                env.name
            ));
        }
        if env.name.is_empty() {
            problems.push(format!("spec.env[{i}] has an empty name"));
        }
    }
    if let Some(res) = &spec.resources {
        let requests = res.requests.clone().unwrap_or_default();
        let limits = res.limits.clone().unwrap_or_default();
        for (field, req, lim) in [
            ("cpu", &requests.cpu, &limits.cpu),
            ("memory", &requests.memory, &limits.memory),
        ] {
            for (which, q) in [("requests", req), ("limits", lim)] {
                if let Some(q) = q
                    && quantity::parse(q).is_none_or(|v| v < 0)
                {
                    problems.push(format!("spec.resources.{which}.{field} {q:?} is not a quantity such as 250m or 512Mi"));
                }
            }
            if let (Some(r), Some(l)) = (
                req.as_deref().and_then(quantity::parse),
                lim.as_deref().and_then(quantity::parse),
            ) && r > l
            {
                problems.push(format!(
                        "spec.resources.requests.{field} ({}) is above spec.resources.limits.{field} ({})",
                        req.as_deref().unwrap_or_default(),
                        lim.as_deref().unwrap_or_default()
                    ));
            }
        }
    }
    problems
}

/// The Application that holds `host`: the oldest claimant (ties and missing timestamps broken
/// by namespace and name).
pub fn host_holder<'w>(world: &'w World, host: &str) -> Option<&'w HostClaim> {
    world.host_claims(host).next()
}

fn is_path(p: &str) -> bool {
    debug_assert!(PATH_PATTERN.starts_with("^/"));
    p.starts_with('/') && !p.chars().any(char::is_whitespace) && p.len() <= 1024
}

fn is_dns_subdomain(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains() {
        assert!(is_dns_subdomain("shop.example.com"));
        assert!(!is_dns_subdomain("Shop.example.com"));
        assert!(!is_dns_subdomain("shop..example"));
        assert!(!is_dns_subdomain("-shop.example"));
        assert!(!is_dns_subdomain("*.example.com"));
    }
}
