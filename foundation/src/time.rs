//! Times in the three forms the lab meets: unix seconds (stores, arithmetic), `Asn1Time`
//! (certificates, CRLs) and RFC 3339 text (APIs and everything a person reads,
//! docs/decisions.md #12).

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::error::ErrorStack;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An `Asn1Time` (UTCTime or GeneralizedTime) as unix seconds.
pub fn asn1_to_unix(t: &Asn1TimeRef) -> Result<i64, ErrorStack> {
    let epoch = Asn1Time::from_unix(0)?;
    let d = epoch.diff(t)?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// Unix seconds as an `Asn1Time` (OpenSSL picks UTCTime before 2050, GeneralizedTime after,
/// as RFC 5280 4.1.2.5 asks).
pub fn unix_to_asn1(unix: i64) -> Result<Asn1Time, ErrorStack> {
    Asn1Time::from_unix(unix)
}

/// Unix seconds as RFC 3339 UTC text, `2026-12-07T10:15:00Z`. Out-of-range values (beyond
/// year 9999) are written as the number itself rather than failing.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// RFC 3339 text (any offset) as unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// A serde adapter for fields kept as unix seconds but shown as RFC 3339 text
/// (`#[serde(with = "foundation::time::rfc3339_serde")]`); either form is accepted on input.
pub mod rfc3339_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes RFC 3339 text.
    pub fn serialize<S: Serializer>(unix: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*unix))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Unix(i64),
        Text(String),
    }

    /// Reads RFC 3339 text or unix seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Either::deserialize(d)? {
            Either::Unix(n) => Ok(n),
            Either::Text(t) => super::parse_rfc3339(&t)
                .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time")),
        }
    }

    /// The same for an optional time (`null` when absent): `#[serde(default, with =
    /// "foundation::time::rfc3339_serde::option")]`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes RFC 3339 text, or `null`.
        pub fn serialize<S: Serializer>(unix: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match unix {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        /// Reads RFC 3339 text, unix seconds or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
            match Option::<super::Either>::deserialize(d)? {
                None => Ok(None),
                Some(super::Either::Unix(n)) => Ok(Some(n)),
                Some(super::Either::Text(t)) => super::super::parse_rfc3339(&t)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn asn1_and_unix_round_trip_across_utctime_and_generalizedtime() {
        for unix in [0, 1_796_599_009, 2_524_608_000 + 86_399, 4_102_444_800] {
            let t = unix_to_asn1(unix).unwrap();
            assert_eq!(asn1_to_unix(&t).unwrap(), unix);
        }
    }

    #[test]
    fn rfc3339_text_is_utc_and_parses_back() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_599_009), "2026-12-06T23:16:49Z");
        assert_eq!(parse_rfc3339("2026-12-06T23:16:49Z"), Some(1_796_599_009));
        assert_eq!(
            parse_rfc3339("2026-12-07T00:16:49+01:00"),
            Some(1_796_599_009)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(rfc3339(i64::MAX), i64::MAX.to_string());
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Times {
        #[serde(with = "rfc3339_serde")]
        at: i64,
        #[serde(default, with = "rfc3339_serde::option")]
        maybe: Option<i64>,
    }

    #[test]
    fn serde_adapters_write_rfc3339_and_read_either_form() {
        let t = Times {
            at: 1_796_599_009,
            maybe: Some(0),
        };
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(
            text,
            r#"{"at":"2026-12-06T23:16:49Z","maybe":"1970-01-01T00:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<Times>(&text).unwrap(), t);
        let old: Times = serde_json::from_str(r#"{"at":1796599009,"maybe":null}"#).unwrap();
        assert_eq!((old.at, old.maybe), (1_796_599_009, None));
        let absent: Times = serde_json::from_str(r#"{"at":0}"#).unwrap();
        assert_eq!(absent.maybe, None);
        assert!(serde_json::from_str::<Times>(r#"{"at":"soon"}"#).is_err());
    }
}
