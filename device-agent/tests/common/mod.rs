#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod fake_scep;
pub mod micromdm;
pub mod policy;
