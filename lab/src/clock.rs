//! One injectable clock for the whole lab. ca-mock, policy-module and ndes-proxy each read time
//! through their own small `Clock` trait; [`LabClock`] adapts one source to all three, so a test
//! can move the lab's time (clock-skew faults, expiry) without waiting for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in unix seconds.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Seconds since the unix epoch.
    fn now(&self) -> i64;
}

/// The operating system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// The system clock plus an offset that can change while the lab runs (a server whose clock
/// is ahead of or behind its database, or that jumps).
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
}

impl Clock for SkewedClock {
    fn now(&self) -> i64 {
        SystemClock
            .now()
            .saturating_add(self.offset.load(Ordering::SeqCst))
    }
}

/// Adapts a [`Clock`] to each service's clock trait.
#[derive(Debug, Clone)]
pub(crate) struct LabClock(pub(crate) Arc<dyn Clock>);

impl ca_mock::clock::Clock for LabClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}

impl policy_module::clock::Clock for LabClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}

impl ndes_proxy::Clock for LabClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}
