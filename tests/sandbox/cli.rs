//! `logbook sandbox` as a process: it prints its URL and kubeconfig, kube works through that
//! kubeconfig unchanged, SIGTERM stops it, and `--state` saves and restores the objects.

use logbook_testkit::sandbox as support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ObjectMeta;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::bounded;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running `logbook sandbox`, killed on drop.
struct Running {
    child: tokio::process::Child,
}

async fn launch(kubeconfig: &Path, state: &Path) -> Running {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(["sandbox", "--addr", "127.0.0.1:0", "--ready-delay", "10ms"])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--state")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("logbook sandbox starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let ready = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.starts_with("kubeconfig:");
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    };
    let ok = tokio::time::timeout(Duration::from_secs(20), ready)
        .await
        .unwrap_or(false);
    assert!(ok, "logbook sandbox did not announce itself: {seen:?}");
    assert!(
        seen.iter()
            .any(|l| l.starts_with("logbook sandbox serving at http://127.0.0.1:")),
        "{seen:?}"
    );
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running { child }
}

async fn client_from(kubeconfig: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube accepts the kubeconfig");
    kube::Client::try_from(config).expect("client")
}

async fn terminate(mut r: Running) {
    let pid = r.child.id().expect("pid") as i32;
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM sent");
    let status = tokio::time::timeout(Duration::from_secs(20), r.child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert!(status.success(), "clean exit: {status:?}");
}

#[tokio::test]
async fn standalone_sandbox_serves_stops_and_keeps_state() {
    bounded(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let state = dir.path().join("state.json");

        let running = launch(&kubeconfig, &state).await;
        let client = client_from(&kubeconfig).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(client);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("keep-me".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = cms
            .create(&PostParams::default(), &cm)
            .await
            .expect("create");
        terminate(running).await;
        let saved = std::fs::read_to_string(&state).expect("state saved on exit");
        assert!(saved.contains("keep-me"));

        let running = launch(&kubeconfig, &state).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(client_from(&kubeconfig).await);
        let restored = cms.get("keep-me").await.expect("restored from --state");
        assert_eq!(restored.metadata.uid, created.metadata.uid);
        let later = cms
            .create(
                &PostParams::default(),
                &ConfigMap {
                    metadata: ObjectMeta {
                        name: Some("later".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .expect("create after restore");
        let v = |c: &ConfigMap| {
            c.metadata
                .resource_version
                .as_deref()
                .unwrap_or("")
                .parse::<u64>()
                .unwrap_or(0)
        };
        assert!(
            v(&later) > v(&restored),
            "resourceVersions keep increasing across restarts"
        );
        terminate(running).await;
    })
    .await;
}

#[test]
fn flags_parse_with_defaults() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: logbook::cli::sandbox::SandboxArgs,
    }
    let cli = Cli::try_parse_from(["x"]).expect("defaults parse");
    assert_eq!(cli.args.addr.to_string(), "127.0.0.1:0");
    assert_eq!(cli.args.ready_delay, Duration::from_millis(200));
    let cli = Cli::try_parse_from(["x", "--ready-delay", "2s", "--history", "5", "--seed", "9"])
        .expect("parse");
    assert_eq!(cli.args.ready_delay, Duration::from_secs(2));
    assert_eq!((cli.args.history, cli.args.seed), (5, 9));
    assert!(Cli::try_parse_from(["x", "--ready-delay", "soon"]).is_err());
}
