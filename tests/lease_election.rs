//! The leader elector against the sandbox alone: two electors in one process, one leads and
//! the other waits; a leader that stops renewing is replaced after the lease duration, one
//! that releases is replaced at once; conflicts (409) on update are handled: a stale
//! resourceVersion is re-read and renewed, injected conflicts are retried, and a Lease taken
//! by someone else is lost at once.

use logbook_testkit::sandbox as support;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use logbook::controller::lease::{Election, ElectionConfig, Role};
use logbook::sandbox::faults::Verb;
use std::time::Duration;
use support::{bounded, eventually, start};
use tokio::time::Instant;

const LEASE: &str = "logbook-controller";

fn config() -> ElectionConfig {
    ElectionConfig {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(200),
        ..ElectionConfig::default()
    }
}

/// Waits (bounded) until `e` leads.
async fn leads(e: &Election, within: Duration) {
    let mut role = e.role();
    let r = tokio::time::timeout(within, role.wait_for(Role::is_leader)).await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "{} did not lead within {within:?} (role {:?})",
        e.identity(),
        *e.role().borrow()
    );
}

async fn lease(api: &Api<Lease>) -> Lease {
    api.get(LEASE).await.expect("the Lease is readable")
}

fn holder(l: &Lease) -> String {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

fn renewed(l: &Lease) -> Option<k8s_openapi::jiff::Timestamp> {
    l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)
}

fn transitions(l: &Lease) -> i32 {
    l.spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leads_the_other_takes_over_after_the_duration_or_at_once_on_release() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let leases: Api<Lease> = Api::namespaced(client.clone(), "default");

        let a = Election::start(client.clone(), "a", config());
        let b = Election::start(client.clone(), "b", config());
        let a_leads = eventually("one of the two to lead", Duration::from_secs(5), || async {
            match (a.role().borrow().is_leader(), b.role().borrow().is_leader()) {
                (true, true) => panic!("both lead"),
                (true, false) => Some(true),
                (false, true) => Some(false),
                (false, false) => None,
            }
        })
        .await;
        let (leader, standby) = if a_leads { (a, b) } else { (b, a) };
        assert!(leader.fence().holds());
        // The standby keeps waiting while the leader renews for longer than the duration.
        let first = renewed(&lease(&leases).await).expect("renewTime set");
        let l = eventually(
            "the Lease renewed for longer than its duration",
            Duration::from_secs(10),
            || async {
                let l = leases.get(LEASE).await.ok()?;
                let r = renewed(&l)?;
                (r.duration_since(first).as_secs_f64() > 2.5).then_some(l)
            },
        )
        .await;
        assert_eq!(holder(&l), leader.identity());
        assert_eq!(
            *standby.role().borrow(),
            Role::Standby {
                holder: Some(leader.identity().to_string())
            }
        );
        assert!(!standby.fence().holds(), "a standby never holds the fence");
        assert_eq!(transitions(&l), 0);

        // The leader stops renewing (as if it crashed): the standby waits out the duration.
        let fence = leader.fence();
        let stopped = Instant::now();
        leader.stop(false).await;
        assert!(!fence.holds(), "a stopped elector's fence no longer holds");
        leads(&standby, Duration::from_secs(6)).await;
        let took = stopped.elapsed();
        assert!(
            took >= Duration::from_millis(1500),
            "took over a Lease that had not expired ({took:?} after the last renewal)"
        );
        let l = lease(&leases).await;
        assert_eq!(holder(&l), standby.identity());
        assert_eq!(transitions(&l), 1, "a takeover counts as a transition");
        assert_eq!(*standby.role().borrow(), Role::Leader { transitions: 1 });

        // A third elector waits; the leader releases on a clean stop: it takes over at once.
        let c = Election::start(client.clone(), "c", config());
        eventually("c to see the holder", Duration::from_secs(5), || async {
            matches!(&*c.role().borrow(), Role::Standby { holder: Some(h) } if h == standby.identity())
                .then_some(())
        })
        .await;
        let released = Instant::now();
        standby.stop(true).await;
        leads(&c, Duration::from_secs(5)).await;
        assert!(
            released.elapsed() < Duration::from_millis(1500),
            "a released Lease was taken over after {:?}, not at once",
            released.elapsed()
        );
        let l = lease(&leases).await;
        assert_eq!(holder(&l), "c");
        assert_eq!(transitions(&l), 2);
        c.stop(true).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_on_update_are_handled() {
    bounded(async {
        let sandbox = start().await;
        let client = sandbox.client();
        let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
        let a = Election::start(client.clone(), "a", config());
        leads(&a, Duration::from_secs(5)).await;
        let mut lost = a.role();

        // Someone else edits the Lease (a label): the leader's resourceVersion is stale, its
        // next update gets 409, it reads the Lease again, finds itself the holder and renews.
        let edited = leases
            .patch(
                LEASE,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"labels": {"edited": "yes"}}})),
            )
            .await
            .expect("label added");
        let edited_rv = edited.metadata.resource_version.clone();
        let after_edit = renewed(&edited).expect("renewTime");
        eventually(
            "a renewal after the edit",
            Duration::from_secs(5),
            || async {
                let l = leases.get(LEASE).await.ok()?;
                (l.metadata.resource_version != edited_rv
                    && renewed(&l)? > after_edit
                    && holder(&l) == "a")
                    .then_some(())
            },
        )
        .await;
        assert!(a.role().borrow().is_leader());

        // Injected conflicts on a third of updates: retried within the renew deadline.
        sandbox.faults().set_error_verbs(&[Verb::Update]);
        sandbox.faults().set_error_rate(0.3, &[409]);
        eventually(
            "a few injected conflicts",
            Duration::from_secs(10),
            || async { (sandbox.faults().injected().len() >= 3).then_some(()) },
        )
        .await;
        sandbox.faults().set_error_rate(0.0, &[409]);
        assert!(
            sandbox
                .faults()
                .injected()
                .iter()
                .all(|i| i.verb == Verb::Update)
        );
        assert!(a.role().borrow().is_leader(), "conflicts were retried");
        assert!(a.fence().holds());

        // Someone else takes the Lease: the leader's next update conflicts, it reads the
        // Lease, sees another holder and reports the loss at once.
        eventually(
            "the Lease taken over by hand (retried when the leader renews in between)",
            Duration::from_secs(5),
            || async {
                let mut taken = leases.get(LEASE).await.ok()?;
                if let Some(spec) = taken.spec.as_mut() {
                    spec.holder_identity = Some("intruder".into());
                }
                leases
                    .replace(LEASE, &PostParams::default(), &taken)
                    .await
                    .ok()
            },
        )
        .await;
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            lost.wait_for(|r| matches!(r, Role::Lost { .. })),
        )
        .await;
        let role = a.role().borrow().clone();
        assert!(matches!(r, Ok(Ok(_))), "no loss reported: {role:?}");
        match role {
            Role::Lost { reason } => assert!(reason.contains("intruder"), "{reason}"),
            other => panic!("expected Lost, got {other:?}"),
        }
        assert!(!a.fence().holds());
        assert!(!a.fence().before_expiry(), "someone else holds it now");
        a.stop(true).await;
        assert_eq!(
            holder(&lease(&leases).await),
            "intruder",
            "a lost Lease is not released"
        );
    })
    .await;
}
