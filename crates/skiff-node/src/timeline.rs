//! A pod's lifecycle timeline while its worker runs: the worker records into a
//! [`TimelineHandle`], which the pod manager shares to answer "what has this pod done so far"
//! (the daemon's `/timeline`) without asking the worker. On disk it is `timeline.json` in the
//! pod's directory (store module), written now and then while the pod runs and at its end.

use std::sync::{Arc, Mutex, PoisonError};

use skiff_engine::Time;
use skiff_timeline::{Recorder, Timeline};

/// The recorder of one pod, shared between its worker and whoever reads it.
#[derive(Clone, Debug, Default)]
pub struct TimelineHandle(Arc<Mutex<Option<Recorder>>>);

impl TimelineHandle {
    pub fn new(rec: Recorder) -> TimelineHandle {
        TimelineHandle(Arc::new(Mutex::new(Some(rec))))
    }

    /// Runs `f` on the recorder (nothing when there is none yet).
    pub fn with<T>(&self, f: impl FnOnce(&mut Recorder) -> T) -> Option<T> {
        // A panic while recording leaves a record that is still data: keep using it.
        let mut g = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        g.as_mut().map(f)
    }

    /// The record so far, covering up to `now`.
    pub fn snapshot(&self, now: Time) -> Option<Timeline> {
        self.with(|r| r.snapshot(now))
    }

    /// Moves the recorder of `from` into this handle: both then share it (the manager hands
    /// its handle to a worker that has been recording since it began).
    pub fn take_over(&self, from: &TimelineHandle) {
        if Arc::ptr_eq(&self.0, &from.0) {
            return;
        }
        let rec = from.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = rec;
    }
}
