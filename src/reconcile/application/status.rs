//! The status an Application should have: Invalid, Progressing and Ready conditions from what
//! is known of its Deployment, its URL, and when each condition last changed. Pure.

use super::ApplicationReconciler;
use super::validate::Invalid;
use crate::model::{Application, ApplicationStatus, Condition, condition};
use crate::world::{Observed, World};

impl ApplicationReconciler {
    /// The status `app` should have, given what is known of its Deployment.
    pub(super) fn desired_status(
        &self,
        world: &World,
        app: &Application,
        invalid: Option<&Invalid>,
        deployment: Option<&Observed>,
        deployment_current: bool,
    ) -> ApplicationStatus {
        let generation = app.metadata.generation;
        let old = app
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let cond = |type_: &str, status: bool, reason: &str, message: String| {
            let status = if status { "True" } else { "False" };
            let since = old
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .or_else(|| world.now().map(str::to_string));
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                last_transition_time: since,
                observed_generation: generation,
            }
        };
        let ready_replicas = deployment.map(|d| d.ready_replicas().unwrap_or(0) as i32);
        let conditions = match invalid {
            Some(inv) => vec![
                cond(condition::INVALID, true, inv.reason(), inv.message()),
                cond(
                    condition::PROGRESSING,
                    false,
                    "Invalid",
                    "nothing is rolled out while the spec is invalid".into(),
                ),
                cond(condition::READY, false, "Invalid", inv.message()),
            ],
            None => {
                let want = app.spec.replicas;
                let valid = cond(
                    condition::INVALID,
                    false,
                    "Valid",
                    "the spec is valid".into(),
                );
                match deployment {
                    None => vec![
                        valid,
                        cond(
                            condition::PROGRESSING,
                            true,
                            "Creating",
                            "the Deployment is being created".into(),
                        ),
                        cond(
                            condition::READY,
                            false,
                            "Pending",
                            "the Deployment does not exist yet".into(),
                        ),
                    ],
                    Some(d) => {
                        let ready = ready_replicas.unwrap_or(0);
                        let observed = d.observed_generation().unwrap_or(0);
                        let dgen = d.generation().unwrap_or(0);
                        let rolled = deployment_current && observed >= dgen && ready >= want;
                        if rolled {
                            vec![
                                valid,
                                cond(
                                    condition::PROGRESSING,
                                    false,
                                    "Complete",
                                    format!("{want} of {want} replicas ready"),
                                ),
                                cond(
                                    condition::READY,
                                    true,
                                    "Available",
                                    format!("{ready} of {want} replicas ready"),
                                ),
                            ]
                        } else {
                            let msg = format!("{ready} of {want} replicas ready");
                            vec![
                                valid,
                                cond(condition::PROGRESSING, true, "RollingOut", msg.clone()),
                                cond(condition::READY, false, "RollingOut", msg),
                            ]
                        }
                    }
                }
            }
        };
        let url = match (invalid, &app.spec.host) {
            (None, Some(host)) => Some(format!("http://{host}{}", app.spec.path)),
            _ => None,
        };
        ApplicationStatus {
            observed_generation: generation,
            conditions,
            url,
            ready_replicas,
            last_action: None,
        }
    }
}

/// Equal in everything but the conditions' lastTransitionTime. (Destructured, so a field
/// added to the status cannot be forgotten here.)
pub(super) fn same_but_times(a: &ApplicationStatus, b: &ApplicationStatus) -> bool {
    let ApplicationStatus {
        observed_generation,
        conditions,
        url,
        ready_replicas,
        last_action: _,
    } = a;
    *observed_generation == b.observed_generation
        && *url == b.url
        && *ready_replicas == b.ready_replicas
        && conditions.len() == b.conditions.len()
        && conditions.iter().zip(&b.conditions).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}
