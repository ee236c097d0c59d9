//! Time as a value: every service reads "now" through one [`Clock`], so a test (or the lab's
//! clock-skew faults) can move it without waiting.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in unix seconds. On PostgreSQL the stores ask the database
/// instead where several instances must agree (docs/decisions.md #4).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Seconds since the unix epoch.
    fn now(&self) -> i64;
}

/// The operating system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        unix_now()
    }
}

/// Now from the operating system, in unix seconds (0 before 1970, saturating far ahead).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A clock that moves only when told to. Clones share the same time, so a test keeps one
/// handle and gives the others to the services.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `unix` seconds.
    pub fn new(unix: i64) -> Self {
        Self(Arc::new(AtomicI64::new(unix)))
    }

    /// A clock stopped at the system's now.
    pub fn at_system_now() -> Self {
        Self::new(unix_now())
    }

    /// Moves the clock by `secs` (negative: back).
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock to `unix` seconds.
    pub fn set(&self, unix: i64) {
        self.0.store(unix, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system clock plus an offset that can change while a service runs (a server whose
/// clock is ahead of or behind its database, or that jumps).
#[derive(Debug, Default)]
pub struct SkewedClock {
    offset: AtomicI64,
}

impl SkewedClock {
    /// A clock `offset_secs` ahead of the system clock (negative: behind).
    pub fn new(offset_secs: i64) -> Self {
        Self {
            offset: AtomicI64::new(offset_secs),
        }
    }

    /// Sets the offset from the system clock.
    pub fn set_offset(&self, offset_secs: i64) {
        self.offset.store(offset_secs, Ordering::SeqCst);
    }

    /// The offset from the system clock.
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }
}

impl Clock for SkewedClock {
    fn now(&self) -> i64 {
        unix_now().saturating_add(self.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_one_time() {
        let a = ManualClock::new(1_000);
        let b = a.clone();
        a.advance(5);
        assert_eq!(b.now(), 1_005);
        b.set(7);
        assert_eq!(a.now(), 7);
    }

    #[test]
    fn skewed_clock_follows_the_system_clock_with_its_offset() {
        let c = SkewedClock::new(3_600);
        let delta = c.now() - SystemClock.now();
        assert!((3_599..=3_601).contains(&delta), "{delta}");
        c.set_offset(-60);
        assert!(c.now() < SystemClock.now());
    }
}
