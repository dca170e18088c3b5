//! The sandbox's node through the real clients: `kubectl run` a shell Pod and read its logs and
//! exit code, simulated Pods for unmapped images, the kubelet's states for a missing command,
//! env from Secrets/ConfigMaps/fieldRefs, runAsUser, restarts after a kill, freeze and thaw,
//! one port on two Pod addresses, volumes by path, graceful deletion, and no process left
//! behind when the sandbox is SIGKILLed.

use logbook_testkit::sandbox as support;

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use logbook::sandbox::SandboxConfig;
use serde_json::{Value, json};
use support::{bounded, eventually, fast_config, start_with};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::kubectl::Kubectl;

/// A sandbox whose node supervises processes with the logbook binary and restarts quickly.
fn node_config() -> SandboxConfig {
    SandboxConfig {
        logbook_exe: Some(env!("CARGO_BIN_EXE_logbook").into()),
        restart_backoff: Duration::from_millis(200),
        ..fast_config()
    }
}

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": "default" },
        "spec": spec,
    }))
    .expect("a valid Pod")
}

async fn status_of(pods: &Api<Pod>, name: &str) -> Value {
    match pods.get_opt(name).await {
        Ok(Some(p)) => serde_json::to_value(&p.status).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Wait until the Pod's status satisfies `ok`; its status then.
async fn until(
    pods: &Api<Pod>,
    name: &str,
    what: &str,
    limit: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let s = status_of(pods, name).await;
        if ok(&s) {
            return s;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("pod {name}: timed out after {limit:?} waiting for {what}; last status: {s:#}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn condition(s: &Value, ty: &str) -> String {
    s.get("conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

fn ready(s: &Value) -> bool {
    condition(s, "Ready") == "True"
}

fn container<'a>(s: &'a Value, name: &str) -> &'a Value {
    s.get("containerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn kubectl_run_a_shell_pod_read_its_logs_and_exit_code() {
    bounded(async {
        let sandbox = start_with(node_config()).await;
        let kubectl = Kubectl::for_sandbox(&sandbox);
        let pods: Api<Pod> = Api::namespaced(sandbox.client(), "default");
        kubectl
            .ok(&[
                "run",
                "fails",
                "--image=busybox:1.37",
                "--restart=Never",
                "--command",
                "--",
                "sh",
                "-c",
                "echo hello from the node; echo to stderr >&2; exit 3",
            ])
            .await;
        kubectl
            .ok(&[
                "run",
                "works",
                "--image=busybox",
                "--restart=Never",
                "--command",
                "--",
                "sh",
                "-c",
                "echo fine",
            ])
            .await;
        let s = until(
            &pods,
            "fails",
            "phase Failed",
            Duration::from_secs(20),
            |s| s["phase"] == "Failed",
        )
        .await;
        let t = &container(&s, "fails")["state"]["terminated"];
        assert_eq!(t["exitCode"], 3, "{s:#}");
        assert_eq!(t["reason"], "Error", "{s:#}");
        assert!(
            s["podIP"].as_str().is_some_and(|ip| ip.starts_with("127.")),
            "{s:#}"
        );
        let logs = kubectl.ok(&["logs", "fails"]).await;
        assert_eq!(logs, "hello from the node\nto stderr\n");
        let stamped = kubectl
            .ok(&["logs", "fails", "--timestamps", "--tail=1"])
            .await;
        assert!(stamped.ends_with("Z to stderr\n"), "{stamped:?}");
        let s = until(
            &pods,
            "works",
            "phase Succeeded",
            Duration::from_secs(20),
            |s| s["phase"] == "Succeeded",
        )
        .await;
        assert_eq!(
            container(&s, "works")["state"]["terminated"]["reason"],
            "Completed"
        );
        let table = kubectl.ok(&["get", "pods", "-o", "wide"]).await;
        let row = table
            .lines()
            .find(|l| l.starts_with("works"))
            .unwrap_or_default()
            .to_string();
        assert!(
            row.contains("0/1") && row.contains("Completed") && row.contains("logbook-node"),
            "{table}"
        );
        let row = table
            .lines()
            .find(|l| l.starts_with("fails"))
            .unwrap_or_default()
            .to_string();
        assert!(row.contains("Error"), "{table}");
        let previous = kubectl.run(&["logs", "fails", "--previous"]).await;
        assert!(
            !previous.ok
                && previous
                    .stderr
                    .contains("previous terminated container \"fails\" in pod \"fails\" not found"),
            "{}",
            previous.stderr
        );
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_unmapped_image_is_simulated_ready_without_a_process() {
    bounded(async {
        let marker = tempfile::tempdir().expect("tempdir");
        let ran = marker.path().join("ran");
        let sandbox = start_with(node_config()).await;
        let pods: Api<Pod> = Api::namespaced(sandbox.client(), "default");
        let cmd = format!("touch {}", ran.display());
        pods.create(&PostParams::default(), &pod("web", json!({
            "containers": [{ "name": "web", "image": "nginx:1.27", "command": ["sh", "-c", cmd] }],
        })))
        .await
        .expect("created");
        let s = until(&pods, "web", "Ready", Duration::from_secs(10), ready).await;
        assert_eq!(s["phase"], "Running");
        assert!(
            container(&s, "web")["state"]["running"].is_object(),
            "{s:#}"
        );
        assert!(
            !ran.exists(),
            "an unmapped image must never execute anything"
        );
        let kubectl = Kubectl::for_sandbox(&sandbox);
        assert_eq!(kubectl.ok(&["logs", "web"]).await, "");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_command_that_does_not_exist_gives_the_kubelets_states() {
    bounded(async {
        let sandbox = start_with(SandboxConfig {
            restart_backoff: Duration::from_secs(20),
            ..node_config()
        })
        .await;
        let pods: Api<Pod> = Api::namespaced(sandbox.client(), "default");
        pods.create(&PostParams::default(), &pod("typo", json!({
            "containers": [{ "name": "typo", "image": "busybox", "command": ["no-such-program-anywhere"] }],
        })))
        .await
        .expect("created");
        let s = until(&pods, "typo", "CrashLoopBackOff", Duration::from_secs(10), |s| {
            container(s, "typo")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
        .await;
        let c = container(&s, "typo");
        let last = &c["lastState"]["terminated"];
        assert_eq!(last["reason"], "StartError", "{s:#}");
        assert_eq!(last["exitCode"], 128, "{s:#}");
        assert!(last["message"].as_str().is_some_and(|m| m.contains("exec: \"no-such-program-anywhere\": executable file not found in $PATH")), "{s:#}");
        assert!(c["restartCount"].as_i64().is_some_and(|n| n >= 1), "{s:#}");
        assert_eq!(s["phase"], "Running");
        assert!(!ready(&s));
        let kubectl = Kubectl::for_sandbox(&sandbox);
        let table = kubectl.ok(&["get", "pods"]).await;
        assert!(table.lines().any(|l| l.starts_with("typo") && l.contains("CrashLoopBackOff")), "{table}");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn env_secrets_config_maps_field_refs_and_run_as_user_reach_the_process() {
    bounded(async {
        let sandbox = start_with(node_config()).await;
        let client = sandbox.client();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        secrets
            .create(&PostParams::default(), &serde_json::from_value(json!({
                "metadata": { "name": "db" }, "stringData": { "password": "s3cret" },
            })).expect("secret"))
            .await
            .expect("secret created");
        maps.create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": { "name": "settings" }, "data": { "mode": "fast", "level": "3" },
        })).expect("configmap"))
        .await
        .expect("configmap created");
        let pods: Api<Pod> = Api::namespaced(client, "default");
        pods.create(&PostParams::default(), &pod("envy", json!({
            "restartPolicy": "Never",
            "containers": [
                { "name": "env", "image": "busybox",
                  "command": ["sh", "-c"],
                  "args": ["echo pw=$PASSWORD mode=$MODE me=$ME ns=$NS ip=$IP cfg_level=$CFG_level greet=$(GREETING) k8s=$KUBERNETES_SERVICE_HOST"],
                  "env": [
                    { "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "db", "key": "password" } } },
                    { "name": "MODE", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "mode" } } },
                    { "name": "ME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                    { "name": "NS", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                    { "name": "IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
                    { "name": "GREETING", "value": "hi-$(ME)" },
                  ],
                  "envFrom": [{ "configMapRef": { "name": "settings" }, "prefix": "CFG_" }] },
                { "name": "who", "image": "busybox", "command": ["id", "-u"],
                  "securityContext": { "runAsUser": 65534 } },
            ],
        })))
        .await
        .expect("created");
        let s = until(&pods, "envy", "Succeeded", Duration::from_secs(20), |s| s["phase"] == "Succeeded").await;
        let ip = s["podIP"].as_str().unwrap_or_default().to_string();
        let kubectl = Kubectl::for_sandbox(&sandbox);
        let out = kubectl.ok(&["logs", "envy", "-c", "env"]).await;
        assert_eq!(
            out,
            format!("pw=s3cret mode=fast me=envy ns=default ip={ip} cfg_level=3 greet=hi-envy k8s=127.0.0.1\n")
        );
        assert_eq!(kubectl.ok(&["logs", "envy", "-c", "who"]).await, "65534\n");
        // kubectl picks the first container itself; the API server's answer without one:
        let which = pods.logs("envy", &Default::default()).await.expect_err("ambiguous");
        assert!(which.to_string().contains("a container name must be specified for pod envy, choose one of: [env who]"), "{which}");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_killed_container_restarts_and_its_count_grows() {
    bounded(async {
        let sandbox = start_with(node_config()).await;
        let pods: Api<Pod> = Api::namespaced(sandbox.client(), "default");
        pods.create(
            &PostParams::default(),
            &pod(
                "sleeper",
                json!({
                    "containers": [{ "name": "main", "image": "busybox",
                        "command": ["sh", "-c", "echo up; exec sleep 300"] }],
                }),
            ),
        )
        .await
        .expect("created");
        until(&pods, "sleeper", "Ready", Duration::from_secs(10), ready).await;
        let faults = sandbox.faults();
        let kubectl = Kubectl::for_sandbox(&sandbox);
        eventually(
            "the first instance's output",
            Duration::from_secs(5),
            || async { (kubectl.ok(&["logs", "sleeper"]).await == "up\n").then_some(()) },
        )
        .await;
        assert_eq!(
            faults.kill_pod("default", "sleeper", None).expect("killed"),
            1
        );
        let s = until(
            &pods,
            "sleeper",
            "a restart",
            Duration::from_secs(10),
            |s| container(s, "main")["restartCount"] == 1 && ready(s),
        )
        .await;
        let last = &container(&s, "main")["lastState"]["terminated"];
        assert_eq!(last["exitCode"], 137, "{s:#}");
        assert_eq!(last["reason"], "Error", "{s:#}");
        assert_eq!(kubectl.ok(&["logs", "sleeper", "--previous"]).await, "up\n");
        faults
            .kill_pod("default", "sleeper", Some("main"))
            .expect("killed again");
        until(
            &pods,
            "sleeper",
            "a second restart",
            Duration::from_secs(10),
            |s| container(s, "main")["restartCount"] == 2,
        )
        .await;
        assert!(faults.kill_pod("default", "nobody-here", None).is_err());
        sandbox.shutdown().await;
    })
    .await;
}

fn http_server(name: &str) -> Pod {
    pod(
        name,
        json!({
            "containers": [{ "name": "http", "image": "busybox",
                "command": ["python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
                "env": [{ "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } }],
                "ports": [{ "name": "http", "containerPort": 8080 }],
                "readinessProbe": { "httpGet": { "port": "http", "path": "/" },
                    "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1 } }],
        }),
    )
}

async fn get_ok(ip: &str) -> bool {
    let addr = format!("{ip}:8080");
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    else {
        return false;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 32];
    matches!(tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await, Ok(Ok(n)) if String::from_utf8_lossy(&buf[..n]).contains(" 200 "))
}

#[tokio::test]
async fn two_pods_share_a_port_and_a_frozen_one_turns_not_ready() {
    if which("python3").is_none() {
        panic!("python3 is needed on PATH for the HTTP server Pods");
    }
    bounded(async {
        let sandbox = start_with(node_config()).await;
        let pods: Api<Pod> = Api::namespaced(sandbox.client(), "default");
        for n in ["one", "two"] {
            pods.create(&PostParams::default(), &http_server(n))
                .await
                .expect("created");
        }
        let a = until(&pods, "one", "Ready", Duration::from_secs(20), ready).await;
        let b = until(&pods, "two", "Ready", Duration::from_secs(20), ready).await;
        let (ip_a, ip_b) = (
            a["podIP"].as_str().unwrap_or_default(),
            b["podIP"].as_str().unwrap_or_default(),
        );
        assert_ne!(ip_a, ip_b);
        assert!(
            get_ok(ip_a).await && get_ok(ip_b).await,
            "both answer on port 8080"
        );
        let faults = sandbox.faults();
        faults.freeze_pod("default", "one").expect("frozen");
        until(&pods, "one", "NotReady", Duration::from_secs(10), |s| {
            condition(s, "Ready") == "False"
        })
        .await;
        assert!(
            ready(&status_of(&pods, "two").await),
            "the other Pod stays Ready"
        );
        faults.thaw_pod("default", "one").expect("thawed");
        until(&pods, "one", "Ready again", Duration::from_secs(10), ready).await;
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_program_writing_under_its_mount_path_lands_in_the_volume() {
    bounded(async {
        let sandbox = start_with(node_config()).await;
        let pods: Api<Pod> = Api::namespaced(sandbox.client(), "default");
        pods.create(&PostParams::default(), &pod("writer", json!({
            "restartPolicy": "Never",
            "volumes": [{ "name": "scratch", "emptyDir": {} }],
            "containers": [{ "name": "w", "image": "busybox", "workingDir": "/work",
                "command": ["sh", "-c", "echo kept > /scratch/out.txt && pwd > /scratch/cwd && echo done > /dev/termination-log"],
                "volumeMounts": [{ "name": "scratch", "mountPath": "/scratch" }] }],
        })))
        .await
        .expect("created");
        let s = until(&pods, "writer", "Succeeded", Duration::from_secs(20), |s| s["phase"] == "Succeeded").await;
        assert_eq!(container(&s, "w")["state"]["terminated"]["message"], "done\n", "{s:#}");
        let uid = pods.get("writer").await.expect("pod").metadata.uid.unwrap_or_default();
        let dir = sandbox.data_dir().join("pods").join(format!("default_writer_{uid}"));
        let out = std::fs::read_to_string(dir.join("volumes/scratch/out.txt")).expect("the file is in the volume's directory");
        assert_eq!(out, "kept\n");
        let cwd = std::fs::read_to_string(dir.join("volumes/scratch/cwd")).expect("cwd");
        assert!(cwd.trim_end().ends_with("/fs/work"), "{cwd}");
        sandbox.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_a_pod_sends_sigterm_then_removes_it() {
    bounded(async {
        let marker = tempfile::tempdir().expect("tempdir");
        let file = marker.path().join("terminated");
        let sandbox = start_with(node_config()).await;
        let pods: Api<Pod> = Api::namespaced(sandbox.client(), "default");
        let script = format!(
            "trap 'echo bye > {}; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
            file.display()
        );
        pods.create(&PostParams::default(), &pod("graceful", json!({
            "terminationGracePeriodSeconds": 20,
            "containers": [{ "name": "main", "image": "busybox", "command": ["sh", "-c", script] }],
        })))
        .await
        .expect("created");
        until(&pods, "graceful", "Ready", Duration::from_secs(10), ready).await;
        let kubectl = Kubectl::for_sandbox(&sandbox);
        eventually("the trap set", Duration::from_secs(5), || async {
            (kubectl.ok(&["logs", "graceful"]).await == "ready\n").then_some(())
        })
        .await;
        let started = std::time::Instant::now();
        let out = kubectl
            .ok(&["delete", "pod", "graceful", "--timeout=15s"])
            .await;
        assert!(out.contains("pod \"graceful\" deleted"), "{out}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the trap ends it well before the grace period"
        );
        assert_eq!(
            std::fs::read_to_string(&file).expect("the TERM trap ran"),
            "bye\n"
        );
        assert!(pods.get_opt("graceful").await.expect("get").is_none());
        // An unbound-to-anything simulated Pod goes at once with --force.
        pods.create(
            &PostParams::default(),
            &pod(
                "sim",
                json!({
                    "containers": [{ "name": "x", "image": "example.com/unmapped:1" }],
                }),
            ),
        )
        .await
        .expect("created");
        until(&pods, "sim", "Ready", Duration::from_secs(10), ready).await;
        pods.delete("sim", &DeleteParams::default().grace_period(0))
            .await
            .expect("deleted");
        assert!(pods.get_opt("sim").await.expect("get").is_none());
        sandbox.shutdown().await;
    })
    .await;
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn alive(pid: i32) -> bool {
    // A zombie is not a live process.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .split(") ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// A `logbook sandbox` child process; SIGKILLed on drop.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test]
async fn no_pod_process_outlives_a_sigkilled_sandbox() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let pids = dir.path().join("pids");
        let mut child = Child(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_logbook"))
                .args(["sandbox", "--addr", "127.0.0.1:0", "--ready-delay", "10ms"])
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("logbook sandbox starts"),
        );
        let stdout = child.0.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let announced = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("kubeconfig:") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        assert!(announced, "logbook sandbox did not start");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let pods: Api<Pod> = Api::namespaced(client, "default");
        // `$$$$`: the kubelet's `$(VAR)` expansion turns `$$` into `$`.
        let script = format!(
            "sleep 300 & echo $$$$ $! > {}.tmp; mv {0}.tmp {0}; wait",
            pids.display()
        );
        pods.create(&PostParams::default(), &pod("orphan-maker", json!({
            "containers": [{ "name": "sh", "image": "busybox", "command": ["sh", "-c", script] }],
        })))
        .await
        .expect("created");
        let found: Vec<i32> = eventually("the Pod's pids", Duration::from_secs(15), || async {
            let text = std::fs::read_to_string(&pids).ok()?;
            let v: Vec<i32> = text
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            (v.len() == 2).then_some(v)
        })
        .await;
        assert!(
            found.iter().all(|p| alive(*p)),
            "the shell and its grandchild run"
        );
        let sandbox_pid = child.0.id().expect("pid") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sandbox_pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("SIGKILL");
        let _ = child.0.wait().await;
        eventually(
            "every Pod process gone",
            Duration::from_secs(10),
            || async { found.iter().all(|p| !alive(*p)).then_some(()) },
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn kubectl_exec_runs_in_the_container_and_returns_its_exit_code() {
    bounded(async {
        let sandbox = start_with(node_config()).await;
        let pods: Api<Pod> = Api::namespaced(sandbox.client(), "default");
        pods.create(
            &PostParams::default(),
            &pod(
                "shell",
                json!({
                    "volumes": [{ "name": "data", "emptyDir": {} }],
                    "containers": [{ "name": "sh", "image": "busybox", "command": ["sleep", "300"],
                        "env": [{ "name": "GREETING", "value": "hello" }],
                        "volumeMounts": [{ "name": "data", "mountPath": "/data" }] }],
                }),
            ),
        )
        .await
        .expect("created");
        until(&pods, "shell", "Ready", Duration::from_secs(10), ready).await;
        let kubectl = Kubectl::for_sandbox(&sandbox);
        let out = kubectl
            .run(&[
                "exec",
                "shell",
                "--",
                "sh",
                "-c",
                "echo hi $GREETING; echo oops >&2; exit 3",
            ])
            .await;
        assert!(!out.ok);
        assert_eq!(out.stdout, "hi hello\n", "{}", out.stderr);
        assert!(
            out.stderr.contains("oops")
                && out.stderr.contains("command terminated with exit code 3"),
            "{}",
            out.stderr
        );
        // -i: stdin reaches the command, and paths under a mount land in the volume.
        let mut cmd = tokio::process::Command::new(&kubectl.bin);
        cmd.arg("--kubeconfig")
            .arg(&kubectl.kubeconfig)
            .args([
                "exec",
                "-i",
                "shell",
                "--",
                "sh",
                "-c",
                "cat > /data/in && cat /data/in",
            ])
            .env("HOME", kubectl.home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl exec -i");
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(b"through stdin\n").await.expect("write");
        }
        let done = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("kubectl exec -i ends")
            .expect("output");
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&done.stdout), "through stdin\n");
        let uid = pods
            .get("shell")
            .await
            .expect("pod")
            .metadata
            .uid
            .unwrap_or_default();
        let file = sandbox
            .data_dir()
            .join("pods")
            .join(format!("default_shell_{uid}"))
            .join("volumes/data/in");
        assert_eq!(
            std::fs::read_to_string(file).expect("in the volume"),
            "through stdin\n"
        );
        sandbox.shutdown().await;
    })
    .await;
}
