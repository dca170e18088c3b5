//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's rules, over kube's
//! `Api<Lease>`.
//!
//! - **Acquire**: create the Lease (409: someone else did; read it next round), or update it
//!   with its resourceVersion as precondition (409: someone else won). A Lease held by another
//!   identity is taken over only once its record has not changed for `leaseDurationSeconds`
//!   by this process's own monotonic clock, counted from when this process first saw that
//!   record (client-go's `observedTime`): no comparison of clocks between machines. A Lease
//!   with an empty holder (released) is free at once. Taking it over increments
//!   `leaseTransitions`.
//! - **Renew**: every `retry_period`, update `renewTime` with the last resourceVersion (409:
//!   re-read; still ours → renew again, someone else's → lost at once).
//! - **Lose**: a leader that has not renewed within `renew_deadline` of its last successful
//!   write reports loss. `renew_deadline < lease_duration`, so a leader knows it lost before
//!   anyone else may take over; the [`Fence`] lets writers check this synchronously before
//!   every write, independently of when the loss is reported.
//! - **Release**: on a clean stop the leader writes an empty holder (client-go's
//!   `ReleaseOnCancel`), so a standby takes over at its next try instead of after the
//!   lease duration.
//!
//! The identity must be unique per process: a process that finds its own identity in the
//! Lease treats it as its own (as client-go does; a restarted container keeps its Pod name).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The default Lease name.
pub const DEFAULT_LEASE_NAME: &str = "logbook-controller";

/// Where the Lease is and how it is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// How long a Lease that is not renewed keeps others waiting (whole seconds, ≥ 1).
    pub lease_duration: Duration,
    /// How long a leader keeps leading without a successful renewal (< `lease_duration`).
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew (< `renew_deadline`).
    pub retry_period: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            lease_name: DEFAULT_LEASE_NAME.to_string(),
            namespace: "default".to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl ElectionConfig {
    /// Checks the timings: `lease_duration > renew_deadline > retry_period > 0`, and a
    /// lease duration of whole seconds (the Lease records seconds).
    pub fn check(&self) -> Result<(), String> {
        if self.lease_name.is_empty() || self.namespace.is_empty() {
            return Err("the lease name and namespace must not be empty".to_string());
        }
        if self.lease_duration.subsec_nanos() != 0 || self.lease_duration.as_secs() == 0 {
            return Err(format!(
                "--lease-duration {:?} must be a whole number of seconds, at least 1s (the Lease \
                 records seconds)",
                self.lease_duration
            ));
        }
        if i32::try_from(self.lease_duration.as_secs()).is_err() {
            return Err(format!(
                "--lease-duration {:?} is too long",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--renew-deadline {:?} must be shorter than --lease-duration {:?}, so that a \
                 leader stops before another may take over",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(format!(
                "--retry-period {:?} must be more than 0 and shorter than --renew-deadline {:?}",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    /// `namespace/name` of the Lease.
    pub fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.lease_name)
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// The flags of leader election (`logbook controller`).
#[derive(clap::Args, Clone, Debug)]
pub struct ElectionArgs {
    /// Wait as a standby until this process holds the Lease; `--leader-elect=false` for a
    /// single controller (it then leads from the start: run only one).
    #[arg(long, env = "LOGBOOK_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(long, env = "LOGBOOK_LEASE_NAME", default_value = DEFAULT_LEASE_NAME, value_name = "NAME")]
    pub lease_name: String,
    /// The Lease's namespace (default: $POD_NAMESPACE, else `default`).
    #[arg(long, env = "LOGBOOK_LEASE_NAMESPACE", value_name = "NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This process's identity: the Lease holder and the Events' reportingInstance; unique
    /// per process (default: $POD_NAME, else hostname-pid).
    #[arg(long, env = "LOGBOOK_IDENTITY", value_name = "NAME")]
    pub identity: Option<String>,
    /// How long a Lease that is not renewed keeps standbys waiting (whole seconds).
    #[arg(long, env = "LOGBOOK_LEASE_DURATION", default_value = "15s", value_parser = crate::process::parse_duration, value_name = "DURATION")]
    pub lease_duration: Duration,
    /// How long the leader keeps leading without renewing; it then stops planning and exits.
    #[arg(long, env = "LOGBOOK_RENEW_DEADLINE", default_value = "10s", value_parser = crate::process::parse_duration, value_name = "DURATION")]
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew the Lease.
    #[arg(long, env = "LOGBOOK_RETRY_PERIOD", default_value = "2s", value_parser = crate::process::parse_duration, value_name = "DURATION")]
    pub retry_period: Duration,
}

impl ElectionArgs {
    /// The identity these flags (or the environment) give this process.
    pub fn identity(&self) -> String {
        self.identity
            .clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(default_identity)
    }

    /// The election these flags describe (`None` with `--leader-elect=false`), checked.
    pub fn election(&self) -> Result<Option<ElectionConfig>, String> {
        if !self.leader_elect {
            return Ok(None);
        }
        let namespace = self
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let config = ElectionConfig {
            lease_name: self.lease_name.clone(),
            namespace,
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        };
        config.check()?;
        Ok(Some(config))
    }
}

/// `$POD_NAME`, else `hostname-pid`.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "logbook".to_string());
    format!("{host}-{}", std::process::id())
}

/// Where an elector stands, as its watch channel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Waiting: someone else holds the Lease (or it could not be read yet).
    Standby {
        /// The holder last seen, if any.
        holder: Option<String>,
    },
    /// This process holds the Lease.
    Leader {
        /// `leaseTransitions` when it was acquired.
        transitions: i32,
    },
    /// This process held the Lease and lost it; it will not try again.
    Lost {
        /// Why: the renew deadline passed, or another holder took it.
        reason: String,
    },
    /// The elector was stopped (after releasing the Lease, if it was leading).
    Stopped,
}

impl Role {
    /// True while leading.
    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Leader { .. })
    }
}

/// Whether this process may still write as the leader, checked synchronously by writers.
///
/// A fence holds from a successful acquisition until `renew_deadline` after the last
/// successful renewal (counted from when that request was sent), and never again once the
/// Lease was found taken or was released. [`Fence::before_expiry`] says whether no one else
/// can hold the Lease yet (the last successful write plus the lease duration), which is when
/// a leader that has just lost may still record its last word.
#[derive(Clone, Debug)]
pub struct Fence(Option<Arc<FenceState>>);

#[derive(Debug)]
struct FenceState {
    base: Instant,
    /// Nanoseconds since `base` of the last successful write's sending, plus 1 (0: never).
    renewed: AtomicU64,
    revoked: AtomicBool,
    why: Mutex<Option<String>>,
    renew_deadline: Duration,
    lease_duration: Duration,
}

impl Fence {
    /// A fence that always holds: a controller without leader election.
    pub fn unfenced() -> Fence {
        Fence(None)
    }

    fn new(config: &ElectionConfig) -> Fence {
        Self::since(config, Instant::now())
    }

    fn since(config: &ElectionConfig, base: Instant) -> Fence {
        Fence(Some(Arc::new(FenceState {
            base,
            renewed: AtomicU64::new(0),
            revoked: AtomicBool::new(false),
            why: Mutex::new(None),
            renew_deadline: config.renew_deadline,
            lease_duration: config.lease_duration,
        })))
    }

    fn last_write(s: &FenceState) -> Option<Instant> {
        match s.renewed.load(Ordering::Acquire) {
            0 => None,
            n => Some(s.base + Duration::from_nanos(n - 1)),
        }
    }

    /// True while this process may act as the leader.
    pub fn holds(&self) -> bool {
        let Some(s) = &self.0 else { return true };
        if s.revoked.load(Ordering::Acquire) {
            return false;
        }
        Self::last_write(s).is_some_and(|at| Instant::now() < at + s.renew_deadline)
    }

    /// True while no one else can hold the Lease yet (it was not taken or released, and its
    /// duration has not passed since this process last wrote it).
    pub fn before_expiry(&self) -> bool {
        let Some(s) = &self.0 else { return true };
        if s.revoked.load(Ordering::Acquire) {
            return false;
        }
        Self::last_write(s).is_some_and(|at| Instant::now() < at + s.lease_duration)
    }

    /// When leading ends unless the Lease is renewed (`None`: never held, or unfenced).
    pub fn deadline(&self) -> Option<Instant> {
        let s = self.0.as_ref()?;
        Self::last_write(s).map(|at| at + s.renew_deadline)
    }

    /// Why the fence does not hold.
    pub fn why(&self) -> String {
        let Some(s) = &self.0 else {
            return "no leader election".to_string();
        };
        if let Ok(why) = s.why.lock()
            && let Some(w) = why.as_ref()
        {
            return w.clone();
        }
        match Self::last_write(s) {
            None => "the Lease was never acquired".to_string(),
            Some(_) => format!(
                "the Lease was not renewed within the renew deadline ({:?})",
                s.renew_deadline
            ),
        }
    }

    fn renewed(&self, sent: Instant) {
        if let Some(s) = &self.0 {
            let n = sent.saturating_duration_since(s.base).as_nanos() as u64 + 1;
            s.renewed.fetch_max(n, Ordering::AcqRel);
        }
    }

    /// Stops the fence holding for good, saying why (the first reason given is kept).
    pub fn revoke(&self, why: String) {
        if let Some(s) = &self.0 {
            if let Ok(mut w) = s.why.lock()
                && w.is_none()
            {
                *w = Some(why);
            }
            s.revoked.store(true, Ordering::Release);
        }
    }
}

/// A running elector: its role as a watch channel, its fence, and a way to stop it.
pub struct Election {
    role: watch::Receiver<Role>,
    fence: Fence,
    config: ElectionConfig,
    identity: String,
    stop: CancellationToken,
    release: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Election {
    /// Starts competing for the Lease `config` names, as `identity`, in a background task.
    pub fn start(client: kube::Client, identity: &str, config: ElectionConfig) -> Election {
        let (tx, role) = watch::channel(Role::Standby { holder: None });
        let fence = Fence::new(&config);
        let stop = CancellationToken::new();
        let release = Arc::new(AtomicBool::new(false));
        let elector = Elector {
            api: Api::namespaced(client, &config.namespace),
            config: config.clone(),
            identity: identity.to_string(),
            fence: fence.clone(),
            tx,
            current: None,
            observed: None,
        };
        let task = tokio::spawn(elector.run(stop.clone(), release.clone()));
        Election {
            role,
            fence,
            config,
            identity: identity.to_string(),
            stop,
            release,
            task,
        }
    }

    /// The role, as it changes.
    pub fn role(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// The fence writers check before each write.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// The Lease's settings.
    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// This process's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this process leads (the Lease's `leaseTransitions` then), or until
    /// `cancel`; `None` when cancelled or when the elector ended without leading.
    pub async fn acquired(&self, cancel: &CancellationToken) -> Option<i32> {
        let mut role = self.role.clone();
        tokio::select! {
            _ = cancel.cancelled() => None,
            r = role.wait_for(|r| !matches!(r, Role::Standby { .. })) => match r.ok()?.clone() {
                Role::Leader { transitions } => Some(transitions),
                _ => None,
            },
        }
    }

    /// Resolves once leadership is lost (never while leading well), with why.
    pub async fn lost(&self) -> String {
        let mut role = self.role.clone();
        match role.wait_for(|r| matches!(r, Role::Lost { .. })).await {
            Ok(r) => match &*r {
                Role::Lost { reason } => reason.clone(),
                _ => String::new(),
            },
            // The elector is gone: it stopped leading.
            Err(_) => "the leader elector stopped".to_string(),
        }
    }

    /// Stops competing; with `release`, a leader that still holds the Lease gives it up
    /// first, so a standby can take over at once. Call it only once nothing more is written
    /// as the leader. Bounded by the renew deadline.
    pub async fn stop(self, release: bool) {
        self.release.store(release, Ordering::Release);
        self.stop.cancel();
        let bound = self.config.renew_deadline + Duration::from_secs(1);
        let mut task = self.task;
        if tokio::time::timeout(bound, &mut task).await.is_err() {
            task.abort();
            tracing::warn!(lease = %self.config.lease(), "the leader elector did not stop in time");
        }
    }
}

/// The Lease record the rules look at.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    duration_seconds: Option<i32>,
    acquire: Option<MicroTime>,
    renew: Option<MicroTime>,
    transitions: i32,
}

impl Record {
    fn of(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration_seconds: spec.lease_duration_seconds,
            acquire: spec.acquire_time,
            renew: spec.renew_time,
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

enum Renewal {
    /// Another holder has the Lease.
    Taken(String),
    /// The attempt failed; try again until the deadline.
    Failed(String),
}

struct Elector {
    api: Api<Lease>,
    config: ElectionConfig,
    identity: String,
    fence: Fence,
    tx: watch::Sender<Role>,
    /// The Lease as last read or written (its resourceVersion is the next precondition).
    current: Option<Lease>,
    /// The record last seen and when it was first seen (this process's clock).
    observed: Option<(Record, Instant)>,
}

fn micro_now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    async fn run(mut self, stop: CancellationToken, release: Arc<AtomicBool>) {
        let lease = self.config.lease();
        // Standby: try until acquired.
        let transitions = loop {
            let attempt = tokio::time::timeout(self.config.renew_deadline, self.try_acquire());
            let result = tokio::select! {
                _ = stop.cancelled() => {
                    self.tx.send_replace(Role::Stopped);
                    return;
                }
                r = attempt => r,
            };
            match result {
                Ok(Ok(Some(t))) => break t,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(%lease, error = %e, "cannot read or write the Lease; trying again")
                }
                Err(_) => tracing::warn!(%lease, "the Lease request timed out; trying again"),
            }
            let pause = jittered(self.config.retry_period);
            tokio::select! {
                _ = stop.cancelled() => {
                    self.tx.send_replace(Role::Stopped);
                    return;
                }
                _ = tokio::time::sleep(pause) => {}
            }
        };
        tracing::info!(%lease, identity = %self.identity, transitions, "leading");
        self.tx.send_replace(Role::Leader { transitions });
        // Leader: renew until stopped or lost.
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
            let Some(deadline) = self.fence.deadline() else {
                break;
            };
            let renewal = tokio::time::timeout_at(deadline, self.renew());
            let outcome = tokio::select! {
                _ = stop.cancelled() => break,
                r = renewal => r,
            };
            // A Lease found taken revokes the fence; one not renewed in time has let it lapse
            // already, which still leaves until the lease duration to record the loss.
            let lost = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(Renewal::Taken(holder))) => {
                    let reason = format!("the Lease {lease} is now held by {holder}");
                    self.fence.revoke(reason.clone());
                    Some(reason)
                }
                Ok(Err(Renewal::Failed(e))) => {
                    tracing::warn!(%lease, error = %e, "cannot renew the Lease; trying again until the renew deadline");
                    (!self.fence.holds()).then(|| self.fence.why())
                }
                Err(_) => Some(format!(
                    "the Lease {lease} was not renewed within the renew deadline ({:?})",
                    self.config.renew_deadline
                )),
            };
            if let Some(reason) = lost {
                tracing::error!(%lease, identity = %self.identity, %reason, "leadership lost");
                self.tx.send_replace(Role::Lost { reason });
                return;
            }
        }
        if release.load(Ordering::Acquire) && self.fence.holds() {
            match tokio::time::timeout(self.config.renew_deadline, self.release()).await {
                Ok(Ok(())) => tracing::info!(%lease, "Lease released"),
                Ok(Err(e)) => {
                    tracing::warn!(%lease, error = %e, "cannot release the Lease; it expires after its duration")
                }
                Err(_) => {
                    tracing::warn!(%lease, "releasing the Lease timed out; it expires after its duration")
                }
            }
        }
        self.fence
            .revoke("the leader elector was stopped".to_string());
        self.tx.send_replace(Role::Stopped);
    }

    /// Notes the record read or written; a changed record restarts the expiry clock.
    fn observe(&mut self, lease: &Lease) {
        let record = Record::of(lease);
        if self.observed.as_ref().map(|(r, _)| r) != Some(&record) {
            self.observed = Some((record, Instant::now()));
        }
        self.current = Some(lease.clone());
    }

    fn spec(&self, acquire: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        let now = micro_now();
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.config.duration_seconds()),
            acquire_time: Some(acquire.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One standby attempt: `Some(transitions)` once this process holds the Lease.
    async fn try_acquire(&mut self) -> Result<Option<i32>, String> {
        let name = self.config.lease_name.clone();
        let pp = PostParams::default();
        let sent = Instant::now();
        let found = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| format!("reading Lease {}: {e}", self.config.lease()))?;
        let Some(lease) = found else {
            let new = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None, 0)),
            };
            return match self.api.create(&pp, &new).await {
                Ok(created) => {
                    self.fence.renewed(sent);
                    self.observe(&created);
                    Ok(Some(0))
                }
                // Someone created it first: read it at the next try.
                Err(e) if is_conflict(&e) => Ok(None),
                Err(e) => Err(format!("creating Lease {}: {e}", self.config.lease())),
            };
        };
        self.observe(&lease);
        let record = Record::of(&lease);
        let mine = record.holder.as_deref() == Some(self.identity.as_str());
        if let Some(holder) = &record.holder
            && !mine
        {
            let seen = self.observed.as_ref().map(|(_, at)| *at).unwrap_or(sent);
            let duration = record
                .duration_seconds
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s as u64))
                .unwrap_or(self.config.lease_duration);
            if Instant::now() < seen + duration {
                self.tx.send_if_modified(|r| {
                    let next = Role::Standby {
                        holder: Some(holder.clone()),
                    };
                    let changed = *r != next;
                    *r = next;
                    changed
                });
                return Ok(None);
            }
            tracing::info!(lease = %self.config.lease(), %holder, "the Lease expired; taking it over");
        }
        // Ours already (a restart under the same identity) keeps acquireTime and the count.
        let spec = if mine {
            self.spec(record.acquire.clone(), record.transitions)
        } else {
            self.spec(None, record.transitions.saturating_add(1))
        };
        let transitions = spec.lease_transitions.unwrap_or(0);
        let mut next = lease;
        next.spec = Some(spec);
        match self.api.replace(&name, &pp, &next).await {
            Ok(written) => {
                self.fence.renewed(sent);
                self.observe(&written);
                Ok(Some(transitions))
            }
            // Someone else wrote it since it was read: they won this round.
            Err(e) if is_conflict(&e) => Ok(None),
            Err(e) => Err(format!("updating Lease {}: {e}", self.config.lease())),
        }
    }

    /// One renewal: an update of `renewTime` with the last resourceVersion as precondition.
    async fn renew(&mut self) -> Result<(), Renewal> {
        let name = self.config.lease_name.clone();
        let pp = PostParams::default();
        for _ in 0..2 {
            let Some(mut lease) = self.current.clone() else {
                return Err(Renewal::Failed("no Lease read yet".to_string()));
            };
            let record = Record::of(&lease);
            if record.holder.as_deref() != Some(self.identity.as_str()) {
                return Err(Renewal::Taken(
                    record.holder.unwrap_or_else(|| "nobody".into()),
                ));
            }
            lease.spec = Some(self.spec(record.acquire.clone(), record.transitions));
            let sent = Instant::now();
            match self.api.replace(&name, &pp, &lease).await {
                Ok(written) => {
                    self.fence.renewed(sent);
                    self.observe(&written);
                    return Ok(());
                }
                Err(e) if is_conflict(&e) => {
                    // Changed since it was last written: read it and look who holds it.
                    match self.api.get_opt(&name).await {
                        Ok(Some(now)) => self.observe(&now),
                        Ok(None) => {
                            return Err(Renewal::Taken("nobody (the Lease was deleted)".into()));
                        }
                        Err(e) => {
                            return Err(Renewal::Failed(format!(
                                "reading Lease {} after a conflict: {e}",
                                self.config.lease()
                            )));
                        }
                    }
                }
                Err(e) => {
                    return Err(Renewal::Failed(format!(
                        "renewing Lease {}: {e}",
                        self.config.lease()
                    )));
                }
            }
        }
        Err(Renewal::Failed(format!(
            "Lease {} keeps changing under this leader",
            self.config.lease()
        )))
    }

    /// Gives the Lease up: an empty holder and a 1-second duration (client-go's release).
    async fn release(&mut self) -> Result<(), String> {
        let Some(mut lease) = self.current.clone() else {
            return Ok(());
        };
        let record = Record::of(&lease);
        if record.holder.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        let now = micro_now();
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(record.transitions),
            ..LeaseSpec::default()
        });
        self.api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
            .map_err(|e| format!("releasing Lease {}: {e}", self.config.lease()))
    }
}

/// `period` plus up to 20 % (client-go's jitter for acquisition), so standbys do not all ask
/// at the same moment.
fn jittered(period: Duration) -> Duration {
    let factor: f64 = rand::random::<f64>() * 0.2;
    period + period.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ElectionConfig {
        ElectionConfig {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(1),
            retry_period: Duration::from_millis(200),
            ..ElectionConfig::default()
        }
    }

    #[test]
    fn timings_must_leave_room_for_a_leader_to_stop() {
        assert_eq!(config().check(), Ok(()));
        assert_eq!(ElectionConfig::default().check(), Ok(()));
        let bad = ElectionConfig {
            renew_deadline: Duration::from_secs(2),
            ..config()
        };
        assert!(bad.check().is_err_and(|e| e.contains("--renew-deadline")));
        let bad = ElectionConfig {
            retry_period: Duration::from_secs(1),
            ..config()
        };
        assert!(bad.check().is_err_and(|e| e.contains("--retry-period")));
        let bad = ElectionConfig {
            lease_duration: Duration::from_millis(2500),
            ..config()
        };
        assert!(bad.check().is_err_and(|e| e.contains("whole number")));
    }

    #[tokio::test]
    async fn a_fence_holds_until_the_renew_deadline_and_never_after_revocation() {
        assert!(Fence::unfenced().holds());
        let fence = Fence::new(&config());
        assert!(!fence.holds(), "never acquired");
        fence.renewed(Instant::now());
        assert!(fence.holds());
        assert!(fence.before_expiry());
        let now = Instant::now();
        let Some(base) = now.checked_sub(Duration::from_secs(10)) else {
            return; // the clock started less than 10 s ago: nothing to look back at
        };
        let stale = Fence::since(&config(), base);
        stale.renewed(now - Duration::from_millis(1500));
        assert!(!stale.holds(), "past the renew deadline");
        assert!(
            stale.before_expiry(),
            "but before the lease expires for others"
        );
        assert!(stale.why().contains("renew deadline"));
        fence.revoke("taken by b".into());
        assert!(!fence.holds());
        assert!(!fence.before_expiry());
        assert_eq!(fence.why(), "taken by b");
    }
}
