//! HTTP request helpers shared by the services' routers: who is calling (bearer tokens),
//! whether a browser sent the request for another site's page, and the `/readyz` verdict.

pub mod cross_site;
pub mod ready;

use http::{HeaderMap, header};

use crate::token::{BearerToken, credentials};

pub use cross_site::is_cross_site;

/// The credentials of `Authorization: <scheme> <credentials>` (scheme case-insensitive).
pub fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    credentials(value, scheme)
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "Bearer")
}

impl BearerToken {
    /// Whether the request carries `Authorization: Bearer <this token>`.
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.authorizes_header(value)
    }
}
