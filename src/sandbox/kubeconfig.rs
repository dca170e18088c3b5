//! The kubeconfig that points kube and kubectl at a sandbox.
//! Owns its YAML; it must not read or change any other kubeconfig.

/// The name of the cluster, user and context in the kubeconfig.
pub const CONTEXT: &str = "logbook-sandbox";

/// A kubeconfig for a sandbox served at `url` (plain HTTP, no credentials).
pub fn yaml(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {url}
users:
- name: {CONTEXT}
  user: {{}}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
preferences: {{}}
"
    )
}
