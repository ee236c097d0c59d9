//! How long to wait between polls and after a 503: the profile's retry count and delay, with
//! exponential backoff, a cap, `Retry-After` when the server sends one, and jitter so a fleet
//! that was refused together does not come back together.

use std::time::Duration;

/// Polling and backoff settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// How many times to poll a PENDING request (the profile's retry count) and to retry a
    /// 503 before giving up for this run.
    pub attempts: u32,
    /// First delay (the profile's retry delay).
    pub delay: Duration,
    /// Multiplier per attempt (1.0 = constant delay, as Intune's retry delay).
    pub backoff: f64,
    /// Upper bound of one delay, `Retry-After` included.
    pub max_delay: Duration,
    /// Spread each delay uniformly by +/- this share (0.0 to 0.5).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// Intune's defaults: 3 retries, 5 minutes apart.
    fn default() -> Self {
        Self {
            attempts: 3,
            delay: Duration::from_secs(300),
            backoff: 1.0,
            max_delay: Duration::from_secs(3600),
            jitter: 0.1,
        }
    }
}

impl RetryPolicy {
    /// The profile's retry count and delay in minutes, constant delay.
    pub fn from_profile(retry_count: u32, retry_delay_minutes: u32) -> Self {
        Self {
            attempts: retry_count,
            delay: Duration::from_secs(u64::from(retry_delay_minutes) * 60),
            ..Self::default()
        }
    }

    /// No waiting at all (tests, and servers known to answer at once).
    pub fn immediate(attempts: u32) -> Self {
        Self {
            attempts,
            delay: Duration::ZERO,
            backoff: 1.0,
            max_delay: Duration::ZERO,
            jitter: 0.0,
        }
    }

    /// The wait before attempt `n` (0-based, after the first failure), honouring a server's
    /// `Retry-After` when it asks for longer, capped at `max_delay`.
    pub fn delay_for(&self, n: u32, retry_after: Option<u64>) -> Duration {
        let base = self.delay.as_secs_f64() * self.backoff.max(1.0).powi(n.min(30) as i32);
        let server = retry_after.map_or(0.0, |s| s as f64);
        let wanted = base.max(server).min(self.max_delay.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 0.5);
        let factor = 1.0 + jitter * (2.0 * unit_random() - 1.0);
        Duration::from_secs_f64((wanted * factor).clamp(0.0, self.max_delay.as_secs_f64()))
    }
}

/// A uniform number in [0, 1) from OpenSSL's CSPRNG (0.5 if it fails: no jitter then).
pub(crate) fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    if openssl::rand::rand_bytes(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            delay: Duration::from_secs(10),
            backoff: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: 0.0,
        };
        assert_eq!(p.delay_for(0, None), Duration::from_secs(10));
        assert_eq!(p.delay_for(2, None), Duration::from_secs(40));
        assert_eq!(p.delay_for(5, None), Duration::from_secs(60));
    }

    #[test]
    fn retry_after_wins_when_longer_but_not_past_the_cap() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::from_profile(3, 1)
        };
        assert_eq!(p.delay_for(0, Some(120)), Duration::from_secs(120));
        assert_eq!(p.delay_for(0, Some(5)), Duration::from_secs(60));
        assert_eq!(p.delay_for(0, Some(999_999)), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = RetryPolicy {
            jitter: 0.2,
            ..RetryPolicy::from_profile(3, 1)
        };
        for _ in 0..200 {
            let d = p.delay_for(0, None).as_secs_f64();
            assert!((48.0..=72.0).contains(&d), "{d}");
        }
    }
}
