//! `Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }` (RFC 5280 §4.1.2.5), as
//! used by the signingTime attribute (RFC 5652 §11.3). Times are Unix seconds; `scep` never
//! reads a clock, callers pass the time in.

use crate::asn1::{Asn1Error, Tlv, tag, writer};
use crate::error::BuildError;

/// Encode as UTCTime for 1950..=2049 and GeneralizedTime otherwise (RFC 5652 §11.3).
pub fn encode_time(unix: i64) -> Result<Vec<u8>, BuildError> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if (1950..2050).contains(&y) {
        let s = format!("{:02}{m:02}{d:02}{hh:02}{mm:02}{ss:02}Z", y % 100);
        Ok(writer::tlv(tag::UTC_TIME, s.as_bytes()))
    } else if (0..=9999).contains(&y) {
        let s = format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}Z");
        Ok(writer::tlv(tag::GENERALIZED_TIME, s.as_bytes()))
    } else {
        Err(BuildError::InvalidInput("time out of range"))
    }
}

/// Decode a UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), the only forms
/// RFC 5280 allows, into Unix seconds.
pub fn decode_time(t: Tlv<'_>) -> Result<i64, Asn1Error> {
    let bad = Asn1Error::new("malformed time");
    let s = t.content;
    let (year, rest) = match (t.tag, s.len()) {
        (tag::UTC_TIME, 13) => {
            let yy = digits(&s[..2]).ok_or(bad)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        (tag::GENERALIZED_TIME, 15) => (digits(&s[..4]).ok_or(bad)?, &s[4..]),
        _ => return Err(bad),
    };
    if rest[10] != b'Z' {
        return Err(bad);
    }
    let f = |i: usize| digits(&rest[i..i + 2]).ok_or(bad);
    let (mo, d, h, mi, se) = (f(0)?, f(2)?, f(4)?, f(6)?, f(8)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
        return Err(bad);
    }
    if d > days_in_month(year, mo) {
        return Err(bad);
    }
    Ok(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::asn1::parse_single;

    #[test]
    fn round_trips_utc_and_generalized_time() {
        for t in [
            0i64,
            951_782_400,
            1_700_000_000,
            2_524_607_999,
            2_524_608_000,
            -631_152_000,
        ] {
            let enc = encode_time(t).unwrap();
            assert_eq!(decode_time(parse_single(&enc).unwrap()).unwrap(), t, "{t}");
        }
        let enc = encode_time(1_700_000_000).unwrap();
        assert_eq!(&enc[2..], b"231114221320Z");
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            &b"991301000000Z"[..],
            b"990101000000",
            b"990230000000Z",
            b"9901010000000",
        ] {
            let t = writer::tlv(tag::UTC_TIME, bad);
            assert!(decode_time(parse_single(&t).unwrap()).is_err(), "{bad:?}");
        }
    }
}
