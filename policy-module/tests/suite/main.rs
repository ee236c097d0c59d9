//! policy-module test suite: one binary, every store test on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod admin_renewal;
mod api;
mod certificates;
mod cross_site;
mod device_pages;
use testkit::der;
mod fake_ca;
mod harness;
mod intune;
mod key_reuse;
mod lifecycle;
mod lifecycle_hold;
mod lifecycle_race;
mod metrics;
mod names;
mod payloads;
mod pki;
mod profile_warnings;
mod readiness;
mod secrets;
mod times;
mod trace;
mod verify;

/// Runs `async fn $name(h: Harness)` on both backends as `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::harness::Harness::sqlite().await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(h) = $crate::harness::Harness::postgres().await {
                        super::$name(h).await;
                    }
                }
            }
        )*
    };
}
