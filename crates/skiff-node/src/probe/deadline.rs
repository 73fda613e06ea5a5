//! The worker's hard deadline on one probe or hook attempt.
//!
//! A prober's own timeouts are timers in its future: they fire only when that future yields.
//! Code that blocks or spins instead (a decoder looping on hostile input, a blocking call)
//! holds its executor thread, and every timer on it; on `skiff run`'s two worker threads two
//! such probes wedge the whole pod. So each attempt runs on a thread of its own, in a
//! single-threaded runtime, and the caller waits for its result on its own runtime's timer.
//! At the deadline the caller stops waiting and cancels the attempt: one that still yields is
//! dropped at once (an exec command's process group is killed as its future drops), one that
//! never yields is abandoned with its thread, which ends with the process at the latest.
//!
//! A thread per attempt costs tens of microseconds; probes run at most once a second each.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

/// How long past its own timeout an attempt may take before the worker stops waiting: room
/// for the prober to end by itself (an exec probe kills and reaps its command) and report
/// its own, more precise, message.
pub const SLACK: Duration = Duration::from_millis(500);

/// Why an attempt gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// The deadline passed first.
    #[error("the attempt overran its deadline")]
    Overran,
    /// The attempt could not be run, or ended without a result (it panicked).
    #[error("{0}")]
    Failed(String),
}

/// Runs the future `make` returns on a thread of its own and waits for it at most `limit`.
/// Dropping the returned future cancels the attempt too.
pub async fn run_attempt<T, F, Fut>(limit: Duration, make: F) -> Result<T, AttemptError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let (done_tx, done_rx) = oneshot::channel::<Result<T, String>>();
    // Dropped when this function returns or is dropped: that is the cancellation.
    let (_cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("skiff-probe".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = done_tx.send(Err(format!("probe runtime: {e}")));
                    return;
                }
            };
            let out = rt.block_on(async move {
                tokio::select! {
                    biased;
                    _ = cancel_rx => None,
                    v = make() => Some(v),
                }
            });
            if let Some(v) = out {
                let _ = done_tx.send(Ok(v));
            }
            // Tasks the attempt spawned (connections) end here; blocking work it started
            // (a name lookup) is not waited for.
            rt.shutdown_background();
        });
    if let Err(e) = spawned {
        return Err(AttemptError::Failed(format!("probe thread: {e}")));
    }
    match tokio::time::timeout(limit, done_rx).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(AttemptError::Failed(e)),
        Ok(Err(_)) => Err(AttemptError::Failed(
            "the probe ended without a result".into(),
        )),
        Err(_) => Err(AttemptError::Overran),
    }
}
