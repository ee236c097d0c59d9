//! Per-source token buckets: each source IP address (an IPv6 source by its /64, the unit one
//! host usually gets) may spend `burst` requests at once and regains `per_minute` a minute.
//! Used for challenge minting here and for PKIOperation in ndes-proxy, the two requests an
//! anonymous or barely authenticated client can make expensive.
//!
//! Memory is bounded: at [`MAX_SOURCES`] tracked sources, buckets that have refilled (idle
//! sources) are dropped; if every bucket is still in use, a new source is let through
//! untracked rather than locking out clients that were never seen (fail open, documented in
//! SECURITY.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most sources tracked at once (a bucket is a few dozen bytes).
pub const MAX_SOURCES: usize = 65_536;

/// A per-source limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests regained per minute; 0 turns the limit off.
    pub per_minute: u32,
    /// Requests a source may make at once (the bucket size).
    pub burst: u32,
    /// Whether loopback sources (127.0.0.0/8, ::1) are exempt: the lab, its benchmarks and
    /// local tools talk over loopback, and a reverse proxy on the same host would otherwise
    /// share one bucket for every client.
    pub exempt_loopback: bool,
}

impl RateLimit {
    /// No limit.
    pub const OFF: Self = Self {
        per_minute: 0,
        burst: 0,
        exempt_loopback: true,
    };
}

/// Why a request was not admitted: try again after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds until the source has a token again (at least 1).
    pub retry_after_secs: u32,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by source.
#[derive(Debug)]
pub struct SourceLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl SourceLimiter {
    /// Buckets enforcing `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limit in force.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Take one token for `source` now. An unknown source (no peer address) is not limited.
    pub fn check(&self, source: Option<IpAddr>) -> Result<(), Limited> {
        self.check_at(source, Instant::now())
    }

    /// [`check`](Self::check) at a given instant (tests move time).
    pub fn check_at(&self, source: Option<IpAddr>, now: Instant) -> Result<(), Limited> {
        let l = self.limit;
        let Some(ip) = source else { return Ok(()) };
        if l.per_minute == 0 || (l.exempt_loopback && ip.is_loopback()) {
            return Ok(());
        }
        let key = source_key(ip);
        let burst = f64::from(l.burst.max(1));
        let per_sec = f64::from(l.per_minute) / 60.0;
        // A poisoned lock only means another request panicked mid-update; the map is still a
        // map of buckets, so keep limiting rather than failing every request.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !buckets.contains_key(&key) && buckets.len() >= MAX_SOURCES {
            buckets.retain(|_, b| refilled(b, now, per_sec, burst) < burst);
            if buckets.len() >= MAX_SOURCES {
                return Ok(());
            }
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        b.tokens = refilled(b, now, per_sec, burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - b.tokens) / per_sec)
            .ceil()
            .clamp(1.0, f64::from(u32::MAX));
        Err(Limited {
            // In range by the clamp above.
            retry_after_secs: wait as u32,
        })
    }
}

fn refilled(b: &Bucket, now: Instant, per_sec: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
    (b.tokens + elapsed * per_sec).min(burst)
}

/// IPv4 addresses as they are (IPv4-mapped IPv6 included); IPv6 by its /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_minute: 6,
        burst: 3,
        exempt_loopback: true,
    };

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_source_spends_its_burst_then_waits_for_the_refill() {
        let l = SourceLimiter::new(LIMIT);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check_at(ip("192.0.2.1"), t0), Ok(()));
        }
        // 6 a minute: one token every 10 s.
        assert_eq!(
            l.check_at(ip("192.0.2.1"), t0),
            Err(Limited {
                retry_after_secs: 10
            })
        );
        assert_eq!(
            l.check_at(ip("192.0.2.1"), t0 + Duration::from_secs(4)),
            Err(Limited {
                retry_after_secs: 6
            })
        );
        assert_eq!(
            l.check_at(ip("192.0.2.1"), t0 + Duration::from_secs(10)),
            Ok(())
        );
        // Another source has its own bucket.
        assert_eq!(l.check_at(ip("192.0.2.2"), t0), Ok(()));
    }

    #[test]
    fn loopback_unknown_sources_and_a_zero_rate_are_not_limited() {
        let l = SourceLimiter::new(LIMIT);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.check_at(ip("127.0.0.1"), t0), Ok(()));
            assert_eq!(l.check_at(ip("::1"), t0), Ok(()));
            assert_eq!(l.check_at(None, t0), Ok(()));
        }
        let strict = SourceLimiter::new(RateLimit {
            exempt_loopback: false,
            ..LIMIT
        });
        for _ in 0..3 {
            assert_eq!(strict.check_at(ip("127.0.0.1"), t0), Ok(()));
        }
        assert!(strict.check_at(ip("127.0.0.1"), t0).is_err());
        let off = SourceLimiter::new(RateLimit::OFF);
        for _ in 0..10 {
            assert_eq!(off.check_at(ip("192.0.2.1"), t0), Ok(()));
        }
    }

    #[test]
    fn an_ipv6_64_shares_one_bucket_and_mapped_ipv4_is_ipv4() {
        let l = SourceLimiter::new(LIMIT);
        let t0 = Instant::now();
        for host in ["2001:db8::1", "2001:db8::2", "2001:db8::ffff:1"] {
            assert_eq!(l.check_at(ip(host), t0), Ok(()));
        }
        assert!(l.check_at(ip("2001:db8::3"), t0).is_err());
        assert_eq!(l.check_at(ip("2001:db8:0:1::1"), t0), Ok(()));
        for _ in 0..3 {
            assert_eq!(l.check_at(ip("::ffff:192.0.2.9"), t0), Ok(()));
        }
        assert!(l.check_at(ip("192.0.2.9"), t0).is_err());
    }

    #[test]
    fn the_table_of_sources_is_bounded() {
        let l = SourceLimiter::new(LIMIT);
        let t0 = Instant::now();
        let many = |i: usize| {
            let i = u32::try_from(i).unwrap();
            Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
        };
        for i in 0..MAX_SOURCES {
            assert_eq!(l.check_at(many(i), t0), Ok(()));
        }
        // Every bucket is in use: a new source is let through untracked.
        assert_eq!(l.check_at(many(MAX_SOURCES), t0), Ok(()));
        assert_eq!(l.buckets.lock().unwrap().len(), MAX_SOURCES);
        // Once they have refilled, idle buckets make room.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(l.check_at(many(MAX_SOURCES + 1), later), Ok(()));
        assert_eq!(l.buckets.lock().unwrap().len(), 1);
    }
}
