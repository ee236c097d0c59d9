//! GetCACaps (RFC 8894 §3.5.2): the capability keywords, one per line, case-insensitive.

use std::fmt;

use crate::alg::{ContentCipher, DigestAlgorithm};

/// A capability keyword (RFC 8894 §3.5.2, IANA "SCEP CA Capabilities").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `AES`: AES-128-CBC content encryption.
    Aes,
    /// `DES3`: triple DES content encryption.
    Des3,
    /// `GetNextCACert`: CA rollover certificates are available.
    GetNextCaCert,
    /// `POSTPKIOperation`: PKIOperation by HTTP POST.
    PostPkiOperation,
    /// `Renewal`: RenewalReq is supported.
    Renewal,
    /// `SHA-1`.
    Sha1,
    /// `SHA-256`.
    Sha256,
    /// `SHA-512`.
    Sha512,
    /// `SCEPStandard`: implies AES, POSTPKIOperation and SHA-256 (§3.5.2).
    ScepStandard,
}

impl Capability {
    /// Every keyword in canonical spelling.
    pub const ALL: [Self; 9] = [
        Self::Aes,
        Self::Des3,
        Self::GetNextCaCert,
        Self::PostPkiOperation,
        Self::Renewal,
        Self::Sha1,
        Self::Sha256,
        Self::Sha512,
        Self::ScepStandard,
    ];

    /// The keyword as RFC 8894 spells it.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Aes => "AES",
            Self::Des3 => "DES3",
            Self::GetNextCaCert => "GetNextCACert",
            Self::PostPkiOperation => "POSTPKIOperation",
            Self::Renewal => "Renewal",
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
            Self::Sha512 => "SHA-512",
            Self::ScepStandard => "SCEPStandard",
        }
    }

    /// "The client SHOULD use case-insensitive comparisons" (§3.5.2).
    pub fn from_keyword(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.keyword().eq_ignore_ascii_case(word))
    }
}

/// A set of capabilities, as a server advertises or a client reads them. Unknown keywords
/// (e.g. `SHA-224`, `Update`) are kept so callers can log them, and otherwise ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    known: Vec<Capability>,
    unknown: Vec<String>,
}

impl Capabilities {
    /// A set of known capabilities.
    pub fn new(caps: impl IntoIterator<Item = Capability>) -> Self {
        let mut known: Vec<Capability> = caps.into_iter().collect();
        known.sort();
        known.dedup();
        Self {
            known,
            unknown: Vec::new(),
        }
    }

    /// Parse a GetCACaps body: keywords separated by LF or CRLF, surrounding whitespace ignored.
    /// At most 64 lines of at most 64 characters are looked at.
    pub fn parse(body: &str) -> Self {
        let mut caps = Self::default();
        for line in body.lines().take(64) {
            let word = line.trim();
            if word.is_empty() {
                continue;
            }
            match Capability::from_keyword(word) {
                Some(c) if !caps.known.contains(&c) => caps.known.push(c),
                Some(_) => {}
                None => caps.unknown.push(word.chars().take(64).collect()),
            }
        }
        caps.known.sort();
        caps
    }

    /// Whether a capability is present, directly or implied by `SCEPStandard`.
    pub fn has(&self, c: Capability) -> bool {
        self.known.contains(&c)
            || (self.known.contains(&Capability::ScepStandard)
                && matches!(
                    c,
                    Capability::Aes | Capability::PostPkiOperation | Capability::Sha256
                ))
    }

    /// The capabilities, sorted.
    pub fn iter(&self) -> impl Iterator<Item = Capability> + '_ {
        self.known.iter().copied()
    }

    /// Keywords that were not recognised.
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }

    /// The strongest digest both sides support. A server that advertises none of the SHA
    /// keywords supports only MD5 per the RFC; `None` then, since MD5 is never used here.
    pub fn strongest_digest(&self) -> Option<DigestAlgorithm> {
        if self.has(Capability::Sha512) {
            Some(DigestAlgorithm::Sha512)
        } else if self.has(Capability::Sha256) {
            Some(DigestAlgorithm::Sha256)
        } else if self.has(Capability::Sha1) {
            Some(DigestAlgorithm::Sha1)
        } else {
            None
        }
    }

    /// The strongest content cipher both sides support. Without `AES` or `DES3` the RFC's
    /// default is single DES, which is refused here (`None`).
    pub fn strongest_cipher(&self) -> Option<ContentCipher> {
        if self.has(Capability::Aes) {
            Some(ContentCipher::Aes128Cbc)
        } else if self.has(Capability::Des3) {
            Some(ContentCipher::DesEde3Cbc)
        } else {
            None
        }
    }
}

/// The GetCACaps body: one keyword per line, LF-terminated (`text/plain`).
impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.known {
            writeln!(f, "{}", c.keyword())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_with_crlf_and_unknown_words() {
        let c =
            Capabilities::parse("aes\r\nDES3\r\n  sha-256 \r\nSHA-224\r\n\r\npostpkioperation\n");
        assert!(c.has(Capability::Aes) && c.has(Capability::Des3) && c.has(Capability::Sha256));
        assert!(c.has(Capability::PostPkiOperation));
        assert!(!c.has(Capability::Renewal));
        assert_eq!(c.unknown(), ["SHA-224"]);
        assert_eq!(c.strongest_digest(), Some(DigestAlgorithm::Sha256));
        assert_eq!(c.strongest_cipher(), Some(ContentCipher::Aes128Cbc));
    }

    #[test]
    fn scep_standard_implies_aes_post_and_sha256() {
        let c = Capabilities::parse("SCEPStandard");
        assert!(
            c.has(Capability::Aes)
                && c.has(Capability::PostPkiOperation)
                && c.has(Capability::Sha256)
        );
        assert!(!c.has(Capability::Sha512));
    }

    #[test]
    fn formats_one_keyword_per_line_and_round_trips() {
        let c = Capabilities::new(Capability::ALL);
        let text = c.to_string();
        assert_eq!(text.lines().count(), Capability::ALL.len());
        assert_eq!(Capabilities::parse(&text), c);
    }

    #[test]
    fn refuses_md5_and_des_defaults() {
        let c = Capabilities::parse("Renewal\nGetNextCACert\n");
        assert_eq!(c.strongest_digest(), None);
        assert_eq!(c.strongest_cipher(), None);
    }
}
