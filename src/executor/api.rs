//! Requests to the Kubernetes API on behalf of one action, each carrying `Audit-ID: <action id>`.
//! Owns building, sending and classifying requests; it decides nothing about actions.

use crate::model::ApiCall;
use crate::record::ObjKey;
use http::HeaderValue;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{GroupVersionKind, Request};
use kube::{Client, Resource};
use serde_json::Value;
use std::time::Duration;

/// Every call an executor makes to the Kubernetes API, as RBAC names it: the roles `deploy/`
/// gives the executors grant exactly these (`tests/deploy_render.rs`). The kinds are those
/// the planner manages (`Reconciler::manages`), in the Applications' namespaces.
pub const API_CALLS: &[ApiCall] = &[
    // The children (`apply.rs`): GET for the fencing token, POST to create, server-side apply
    // (PATCH), DELETE with uid and resourceVersion preconditions.
    ApiCall::cluster("apps", "deployments", CHILD_VERBS),
    ApiCall::cluster("", "services", CHILD_VERBS),
    ApiCall::cluster("networking.k8s.io", "ingresses", CHILD_VERBS),
    // An Application's status: GET the Application for the fencing token in
    // `status.lastAction`, then server-side apply (PATCH) of the status subresource.
    ApiCall::cluster("logbook.dev", "applications", &["get"]),
    ApiCall::cluster("logbook.dev", "applications/status", &["patch"]),
];

/// What an executor does to a child object.
const CHILD_VERBS: &[&str] = &["get", "create", "patch", "delete"];

/// The header the API server records as the request's audit id.
pub const AUDIT_ID: &str = "Audit-ID";

/// How long one request may take before it counts as a transient failure.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request did not succeed, classified by what a retry could change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 404: the object (or its namespace, or its kind) does not exist.
    NotFound(String),
    /// 409: a concurrent change (resourceVersion or uid precondition, AlreadyExists).
    Conflict(String),
    /// Worth retrying: 5xx, 429, timeouts, connection errors.
    Transient(String),
    /// Retrying cannot help: 400, 403, 422 and the like, or a request that cannot be built.
    Permanent(String),
}

impl Failure {
    /// The explanation, for the outcome's message.
    pub fn message(&self) -> &str {
        match self {
            Failure::NotFound(m)
            | Failure::Conflict(m)
            | Failure::Transient(m)
            | Failure::Permanent(m) => m,
        }
    }
}

/// The API of one action's target, every request stamped with the action's id.
pub struct TargetApi<'a> {
    client: &'a Client,
    audit_id: HeaderValue,
    request: Request,
    name: String,
    /// `Deployment shop/web`, for messages.
    what: String,
}

impl<'a> TargetApi<'a> {
    /// The API of `target` (an object of `api_version`), for action `action_id`.
    pub fn new(
        client: &'a Client,
        action_id: &str,
        api_version: &str,
        target: &ObjKey,
    ) -> Result<TargetApi<'a>, Failure> {
        let what = if target.namespace.is_empty() {
            format!("{} {}", target.kind, target.name)
        } else {
            format!("{} {}/{}", target.kind, target.namespace, target.name)
        };
        if target.kind.is_empty() || target.name.is_empty() || api_version.is_empty() {
            return Err(Failure::Permanent(format!(
                "the action's target {what:?} (apiVersion {api_version:?}) lacks a kind, name \
                 or apiVersion: nothing can be addressed"
            )));
        }
        let audit_id = HeaderValue::from_str(action_id).map_err(|_| {
            Failure::Permanent(format!(
                "action id {action_id:?} cannot be sent as an {AUDIT_ID} header"
            ))
        })?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, &target.kind);
        let resource = ApiResource::from_gvk(&gvk);
        let ns = (!target.namespace.is_empty()).then_some(target.namespace.as_str());
        Ok(TargetApi {
            client,
            audit_id,
            request: Request::new(DynamicObject::url_path(&resource, ns)),
            name: target.name.clone(),
            what,
        })
    }

    /// `Deployment shop/web`.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// GET the target.
    pub async fn get(&self) -> Result<DynamicObject, Failure> {
        let req = self
            .request
            .get(&self.name, &Default::default())
            .map_err(|e| self.unbuildable("get", e))?;
        self.send_json("get", req).await
    }

    /// POST the object (fails with 409 when it already exists).
    pub async fn create(&self, object: &Value) -> Result<DynamicObject, Failure> {
        let body = serde_json::to_vec(object).map_err(|e| {
            Failure::Permanent(format!(
                "cannot encode the object to create {}: {e}",
                self.what
            ))
        })?;
        let params = PostParams {
            field_manager: Some(crate::model::FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        let req = self
            .request
            .create(&params, body)
            .map_err(|e| self.unbuildable("create", e))?;
        self.send_json("create", req).await
    }

    /// Server-side apply of `object` (field manager `logbook`, forced), on the object itself or
    /// on its `status` subresource.
    pub async fn apply(&self, object: &Value, status: bool) -> Result<DynamicObject, Failure> {
        let params = PatchParams::apply(crate::model::FIELD_MANAGER).force();
        let patch = Patch::Apply(object);
        let (verb, req) = if status {
            let req = self
                .request
                .patch_subresource("status", &self.name, &params, &patch);
            ("apply status of", req)
        } else {
            ("apply", self.request.patch(&self.name, &params, &patch))
        };
        let req = req.map_err(|e| self.unbuildable(verb, e))?;
        self.send_json(verb, req).await
    }

    /// DELETE with the given preconditions.
    pub async fn delete(&self, params: &DeleteParams) -> Result<(), Failure> {
        let req = self
            .request
            .delete(&self.name, params)
            .map_err(|e| self.unbuildable("delete", e))?;
        self.send("delete", req).await.map(|_| ())
    }

    fn unbuildable(&self, verb: &str, e: kube::core::request::Error) -> Failure {
        Failure::Permanent(format!(
            "cannot build the request to {verb} {}: {e}",
            self.what
        ))
    }

    async fn send_json(
        &self,
        verb: &str,
        req: http::Request<Vec<u8>>,
    ) -> Result<DynamicObject, Failure> {
        let text = self.send(verb, req).await?;
        serde_json::from_str(&text).map_err(|e| {
            Failure::Transient(format!(
                "{verb} {}: the API server's answer is not an object: {e}",
                self.what
            ))
        })
    }

    /// The one place requests are sent: adds `Audit-ID`, bounds the time, classifies errors.
    async fn send(&self, verb: &str, mut req: http::Request<Vec<u8>>) -> Result<String, Failure> {
        req.headers_mut().insert(AUDIT_ID, self.audit_id.clone());
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        tracing::debug!(%method, %path, "request");
        match tokio::time::timeout(REQUEST_TIMEOUT, self.client.request_text(req)).await {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(e)) => Err(classify(verb, &self.what, e)),
            Err(_) => Err(Failure::Transient(format!(
                "{verb} {}: no answer from the API server within {REQUEST_TIMEOUT:?} \
                 ({method} {path})",
                self.what
            ))),
        }
    }
}

/// Sorts a client error by what a retry could change; the API's own message is kept verbatim.
pub fn classify(verb: &str, what: &str, e: kube::Error) -> Failure {
    match e {
        kube::Error::Api(status) => {
            let code = status.code;
            let message = format!(
                "{verb} {what}: {code} {}: {}",
                if status.reason.is_empty() {
                    "(no reason)"
                } else {
                    &status.reason
                },
                status.message
            );
            match code {
                404 => Failure::NotFound(message),
                409 => Failure::Conflict(message),
                408 | 429 | 500..=599 | 0 => Failure::Transient(message),
                _ => Failure::Permanent(message),
            }
        }
        kube::Error::BuildRequest(e) => {
            Failure::Permanent(format!("cannot build the request to {verb} {what}: {e}"))
        }
        kube::Error::HttpError(e) => {
            Failure::Permanent(format!("cannot build the request to {verb} {what}: {e}"))
        }
        // Connection refused or reset, TLS, timeouts in the client stack, unreadable answers:
        // the API server may be back on the next delivery.
        other => Failure::Transient(format!(
            "{verb} {what}: cannot reach the API server: {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn errors_are_sorted_by_what_a_retry_could_change() {
        let c = |code| classify("apply", "Deployment shop/web", api(code, "R", "msg"));
        assert!(matches!(c(404), Failure::NotFound(_)));
        assert!(matches!(c(409), Failure::Conflict(_)));
        for code in [429, 500, 503, 504] {
            assert!(matches!(c(code), Failure::Transient(_)), "{code}");
        }
        for code in [400, 403, 422] {
            assert!(matches!(c(code), Failure::Permanent(_)), "{code}");
        }
        let Failure::Permanent(m) = classify(
            "create",
            "Deployment shop/web",
            api(422, "Invalid", "spec.replicas: Invalid value: -1"),
        ) else {
            panic!("422 is permanent");
        };
        assert_eq!(
            m,
            "create Deployment shop/web: 422 Invalid: spec.replicas: Invalid value: -1"
        );
    }
}
