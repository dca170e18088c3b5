//! End to end, leader election: `logbook controller` processes with `--leader-elect` on one
//! log file (2 s Lease, 1 s renew deadline, 200 ms retry). One leads and plans while the other
//! writes nothing; a killed leader is replaced within the lease duration; a clean stop hands
//! the Lease over at once; a paused leader that comes back after it was replaced writes
//! nothing; a leader that cannot renew records the loss and exits.
//!
//! Attribution: everything between a leader's `acquired` marker and the next `acquired`
//! marker is that leader's. A plan written by a replaced leader would read a log prefix that
//! ends before the new leader's marker, so every plan after a leader's `acquired` marker must
//! have read at least up to it.

use logbook_testkit::sandbox as support;
use logbook_testkit::{AppTest, e2e};

use e2e::{Env, recompute_plans};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use logbook::log::LogReader;
use logbook::model::Application;
use logbook::record::{Body, Entry, MarkerKind};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// The lease duration the harness gives elected controllers.
const LEASE_DURATION: Duration = Duration::from_secs(2);

/// A Leadership marker: (seq, event, identity, detail).
#[derive(Clone, Debug)]
struct Leadership {
    seq: u64,
    event: String,
    identity: String,
    detail: serde_json::Value,
}

fn leadership(entries: &[Entry]) -> Vec<Leadership> {
    entries
        .iter()
        .filter_map(|e| match &e.body {
            Body::Marker(m) if m.marker == MarkerKind::Leadership => Some(Leadership {
                seq: e.seq,
                event: m.detail["event"].as_str().unwrap_or_default().to_string(),
                identity: m.detail["identity"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                detail: m.detail.clone(),
            }),
            _ => None,
        })
        .collect()
}

fn acquired(entries: &[Entry]) -> Vec<Leadership> {
    leadership(entries)
        .into_iter()
        .filter(|l| l.event == "acquired")
        .collect()
}

/// Plans after `seq`, as (seq, upto_seq).
fn plans_after(entries: &[Entry], seq: u64) -> Vec<(u64, u64)> {
    entries
        .iter()
        .filter(|e| e.seq > seq)
        .filter_map(|e| match &e.body {
            Body::Plan(p) => Some((e.seq, p.upto_seq)),
            _ => None,
        })
        .collect()
}

/// Every plan after the new leader's `acquired` marker read at least up to it (none is a
/// stale leader's), there is at least one, and no marker of `old` comes after it.
fn nothing_from_the_old_leader_after(entries: &[Entry], new: &Leadership, old: &str) {
    let plans = plans_after(entries, new.seq);
    assert!(!plans.is_empty(), "the new leader {} planned", new.identity);
    for (seq, upto) in &plans {
        assert!(
            *upto >= new.seq,
            "plan {seq} read only up to {upto}, before {}'s acquired marker at {}: written by \
             a replaced leader",
            new.identity,
            new.seq
        );
    }
    for l in leadership(entries) {
        assert!(
            !(l.seq > new.seq && l.identity == old),
            "{old} wrote a Leadership marker ({}) at {} after {} acquired at {}",
            l.event,
            l.seq,
            new.identity,
            new.seq
        );
    }
}

fn starts(entries: &[Entry]) -> usize {
    entries
        .iter()
        .filter(|e| matches!(&e.body, Body::Marker(m) if m.marker == MarkerKind::Start))
        .count()
}

fn stderr_of(env: &Env, identity: &str) -> String {
    std::fs::read_to_string(env.dir.path().join(format!("{identity}.log"))).unwrap_or_default()
}

fn verified(env: &Env) {
    let r = LogReader::open(&env.log_path).unwrap();
    let report = r.verify().unwrap();
    assert!(report.is_ok(), "the log verifies: {report:?}");
}

fn pid_of(env: &Env, identity: &str) -> Pid {
    Pid::from_raw(env.elected[identity].id() as i32)
}

/// Waits (bounded) for the elected controller `identity` to exit; its status.
async fn exited(env: &mut Env, identity: &str, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        let child = env.elected.get_mut(identity).expect("started");
        if let Some(status) = child.try_wait().unwrap() {
            env.elected.remove(identity);
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{identity} did not exit within {within:?}\n{}",
            env.tails()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn standing_by(env: &Env, identity: &str) {
    env.wait(&format!("{identity} to stand by"), || async {
        stderr_of(env, identity)
            .contains("standing by")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plans_the_other_waits_and_takes_over_when_the_leader_is_killed() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.executor("ex-1", 8);
        env.elected_controller("alpha");
        env.elected_controller("bravo");

        let first = env
            .wait("one controller to acquire the Lease", || async {
                acquired(&env.entries()).first().cloned()
            })
            .await;
        let (leader, standby) = if first.identity == "alpha" {
            ("alpha", "bravo")
        } else {
            ("bravo", "alpha")
        };
        assert_eq!(first.detail["lease"], "default/logbook-controller");
        env.apply(&Application::test("shop", "web").build()).await;
        env.ready("shop", "web").await;

        // The leader keeps the Lease for longer than its duration while the standby waits.
        let leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
        let renew = |l: &Lease| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0);
        let since = renew(&leases.get("logbook-controller").await.unwrap()).unwrap();
        let held = env
            .wait("the Lease renewed for longer than its duration", || async {
                let l = leases.get("logbook-controller").await.ok()?;
                (renew(&l)?.duration_since(since).as_secs_f64() > 2.5).then_some(l)
            })
            .await;
        assert_eq!(
            held.spec.unwrap().holder_identity.as_deref(),
            Some(leader),
            "the Lease stayed with the leader"
        );
        let entries = env.entries();
        assert_eq!(acquired(&entries).len(), 1, "exactly one acquired marker");
        assert_eq!(starts(&entries), 1, "the standby wrote nothing");
        assert!(
            !plans_after(&entries, first.seq).is_empty(),
            "the leader plans"
        );
        assert!(
            env.elected
                .get_mut(standby)
                .unwrap()
                .try_wait()
                .unwrap()
                .is_none(),
            "the standby is still running"
        );
        assert!(stderr_of(&env, standby).contains("standing by"));

        // kill -9 the leader: the standby takes over once the Lease has expired.
        let killed = Instant::now();
        env.kill_elected(leader);
        let second = env
            .wait("the standby to acquire the Lease", || async {
                acquired(&env.entries()).get(1).cloned()
            })
            .await;
        let took = killed.elapsed();
        assert_eq!(second.identity, standby);
        assert_eq!(second.detail["transitions"], 1);
        assert!(
            took < LEASE_DURATION + Duration::from_secs(3),
            "took over {took:?} after the kill"
        );
        assert!(
            took >= Duration::from_millis(1500),
            "took over a Lease that had not expired yet ({took:?} after the kill)"
        );

        // The new leader plans what comes next; the old one wrote nothing after it.
        env.apply(&Application::test("shop", "api").build()).await;
        env.converged(&[
            Application::test("shop", "web").build(),
            Application::test("shop", "api").build(),
        ])
        .await;
        let entries = env.entries();
        nothing_from_the_old_leader_after(&entries, &second, leader);
        assert!(recompute_plans(&entries) > 0);
        verified(&env);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_over_at_once_and_a_paused_leader_writes_nothing_once_replaced() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.executor("ex-1", 8);
        env.elected_controller("alpha");
        env.wait("alpha to acquire the Lease", || async {
            acquired(&env.entries()).first().cloned()
        })
        .await;
        env.elected_controller("bravo");
        standing_by(&env, "bravo").await;
        env.apply(&Application::test("shop", "web").build()).await;
        env.ready("shop", "web").await;

        // SIGTERM: stop and released are recorded, the Lease is given up, bravo takes it at
        // its next try instead of after the lease duration.
        let status = Env::terminate(env.elected.get_mut("alpha").unwrap());
        env.elected.remove("alpha");
        let exited_at = k8s_openapi::jiff::Timestamp::now();
        assert!(status.success(), "a clean stop exits 0: {status:?}");
        let leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
        let taken = env
            .wait("bravo to hold the Lease", || async {
                let l = leases.get("logbook-controller").await.ok()?;
                let spec = l.spec?;
                (spec.holder_identity.as_deref() == Some("bravo")).then_some(spec)
            })
            .await;
        let after = taken.acquire_time.unwrap().0.duration_since(exited_at);
        assert!(
            after.as_secs_f64() < 1.5,
            "bravo acquired {after:?} after alpha exited: the Lease was not released"
        );
        let second = env
            .wait("bravo's acquired marker", || async {
                acquired(&env.entries()).get(1).cloned()
            })
            .await;
        let entries = env.entries();
        let marks = leadership(&entries);
        let released = marks
            .iter()
            .find(|l| l.event == "released" && l.identity == "alpha")
            .expect("alpha recorded released");
        assert!(released.seq < second.seq);
        assert!(
            entries.iter().any(|e| e.seq == released.seq - 1
                && matches!(&e.body, Body::Marker(m) if m.marker == MarkerKind::Stop)),
            "stop, then released"
        );

        // A third process stands by; bravo is paused (a partition, a long GC) past the lease
        // duration: charlie takes over; when bravo runs again it finds its fence gone, writes
        // nothing (not even "lost": the Lease is someone else's by then) and exits non-zero.
        env.elected_controller("charlie");
        standing_by(&env, "charlie").await;
        let bravo = pid_of(&env, "bravo");
        kill(bravo, Signal::SIGSTOP).unwrap();
        let third = env
            .wait("charlie to acquire the Lease", || async {
                acquired(&env.entries()).get(2).cloned()
            })
            .await;
        let _ = kill(bravo, Signal::SIGCONT);
        assert_eq!(third.identity, "charlie");
        let status = exited(&mut env, "bravo", Duration::from_secs(10)).await;
        assert!(!status.success(), "a replaced leader exits non-zero");
        assert!(
            stderr_of(&env, "bravo").contains("leadership lost"),
            "{}",
            stderr_of(&env, "bravo")
        );
        env.apply(&Application::test("shop", "api").build()).await;
        env.ready("shop", "api").await;
        let entries = env.entries();
        nothing_from_the_old_leader_after(&entries, &third, "bravo");
        assert!(recompute_plans(&entries) > 0);
        verified(&env);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_records_the_loss_and_exits_before_the_standby_leads() {
    support::bounded(async {
        let mut env = Env::start(&["shop"]).await;
        env.executor("ex-1", 8);
        env.elected_controller("alpha");
        env.wait("alpha to acquire the Lease", || async {
            acquired(&env.entries()).first().cloned()
        })
        .await;
        env.elected_controller("bravo");
        standing_by(&env, "bravo").await;
        env.apply(&Application::test("shop", "web").build()).await;
        env.ready("shop", "web").await;

        // The API server stops answering: alpha cannot renew, stops at the renew deadline,
        // records "lost" (the Lease cannot have expired for bravo yet) and exits non-zero.
        env.sandbox.faults().pause();
        let status = exited(&mut env, "alpha", Duration::from_secs(10)).await;
        env.sandbox.faults().resume();
        assert!(!status.success(), "a leader that lost exits non-zero");
        let lost = leadership(&env.entries())
            .into_iter()
            .find(|l| l.event == "lost")
            .unwrap_or_else(|| {
                panic!(
                    "alpha recorded no lost marker\n{}\n{}",
                    stderr_of(&env, "alpha"),
                    env.trail(10)
                )
            });
        assert_eq!(lost.identity, "alpha");
        let reason = lost.detail["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("renew deadline"), "{reason}");

        let second = env
            .wait("bravo to acquire the Lease", || async {
                acquired(&env.entries()).get(1).cloned()
            })
            .await;
        assert_eq!(second.identity, "bravo");
        assert!(
            lost.seq < second.seq,
            "lost is recorded before the next leader starts"
        );
        env.apply(&Application::test("shop", "api").build()).await;
        env.ready("shop", "api").await;
        let entries = env.entries();
        nothing_from_the_old_leader_after(&entries, &second, "alpha");
        verified(&env);
    })
    .await;
}
