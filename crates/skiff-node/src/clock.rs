//! The pod worker's clock: what it reads as "now" in engine [`Time`] and how it waits for the
//! engine's next due time. Production reads the wall clock and sleeps on tokio's timer
//! ([`WallClock`]); tests use [`TokioClock`], whose time is tokio's, so a test runtime with
//! paused time (`tokio::time::pause`, `start_paused`) moves it deterministically: tokio
//! advances to the next timer as soon as every task waits.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use skiff_engine::Time;

/// A source of engine time and a way to wait for a point in it.
pub trait Clock: Clone + Send + Sync + 'static {
    fn now(&self) -> Time;
    /// Resolves once [`Clock::now`] has reached `at` (at once if it has already).
    fn sleep_until(&self, at: Time) -> impl Future<Output = ()> + Send + 'static;
}

/// The wall clock, with tokio's timer to sleep.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Time {
        system_time(SystemTime::now())
    }

    fn sleep_until(&self, at: Time) -> impl Future<Output = ()> + Send + 'static {
        let ms = u64::try_from(at.millis_since(self.now())).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms))
    }
}

/// Engine time that follows tokio's clock from `base` on: with tokio's time paused, the
/// clock moves only when tokio advances it.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Time,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `base` now. Must be made inside a tokio runtime.
    pub fn starting_at(base: Time) -> Self {
        TokioClock {
            base,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Time {
        let ms = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.base.add_millis(ms)
    }

    fn sleep_until(&self, at: Time) -> impl Future<Output = ()> + Send + 'static {
        let ms = u64::try_from(at.millis_since(self.base)).unwrap_or(0);
        tokio::time::sleep_until(self.origin + Duration::from_millis(ms))
    }
}

/// A `SystemTime` in engine time (milliseconds since the epoch; earlier times are 0).
pub fn system_time(t: SystemTime) -> Time {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Time::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Engine time as a `SystemTime` (negative times are the epoch).
pub fn to_system_time(t: Time) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(t.millis()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_moves_only_with_tokio_time() {
        let c = TokioClock::starting_at(Time::from_secs(100));
        assert_eq!(c.now(), Time::from_secs(100));
        c.sleep_until(Time::from_millis(102_500)).await;
        assert_eq!(c.now(), Time::from_millis(102_500));
        // A due time in the past resolves at once.
        c.sleep_until(Time::from_secs(1)).await;
        assert_eq!(c.now(), Time::from_millis(102_500));
    }

    #[test]
    fn system_times_round_trip() {
        let t = Time::from_millis(1_700_000_000_123);
        assert_eq!(system_time(to_system_time(t)), t);
        assert_eq!(system_time(UNIX_EPOCH - Duration::from_secs(1)), Time(0));
    }
}
