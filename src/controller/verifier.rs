//! Re-checks the log's hash chain while the controller runs, on a read-only connection, every
//! `--verify-every`: an entry edited, removed or moved on disk is counted and logged at once.
//! It only reads and reports; the controller goes on (a restart refuses the damaged log).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin::metrics::ControllerMetrics;
use crate::log::LogReader;

/// Walks the whole chain every `every` (never when zero) until `stop`, reporting to `metrics`:
/// the seq it was found intact up to, or one failure per verification that found damage.
pub async fn run(
    path: PathBuf,
    every: Duration,
    metrics: Arc<ControllerMetrics>,
    stop: CancellationToken,
) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let file = path.clone();
        let checked =
            tokio::task::spawn_blocking(move || LogReader::open(&file)?.verify_from(0)).await;
        match checked {
            Ok(Ok(report)) => match &report.problem {
                None => {
                    metrics.log_verified(report.last_good_seq);
                    tracing::debug!(
                        entries = report.checked,
                        last_seq = report.last_good_seq,
                        "log chain verified"
                    );
                }
                Some(problem) => {
                    metrics.log_verify_failed();
                    tracing::error!(
                        log = %path.display(),
                        seq = problem.seq(),
                        %problem,
                        "the log's hash chain is broken: an entry was edited, removed or moved \
                         on disk since it was written; run `logbook audit verify --log {}` and \
                         restore the log from a backup (the controller will refuse it at its \
                         next start)",
                        path.display()
                    );
                }
            },
            Ok(Err(e)) => tracing::warn!(
                log = %path.display(),
                error = %e,
                "cannot verify the log's hash chain now; trying again in {}s",
                every.as_secs()
            ),
            Err(e) => tracing::warn!(error = %e, "the log verification task failed"),
        }
    }
}
