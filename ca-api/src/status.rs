//! The status vocabulary of the CA contract: RFC 5280 revocation reasons and a certificate's
//! status, with their wire and database spellings.

use serde::{Deserialize, Serialize};

/// RFC 5280 CRLReason values the contract accepts, with their wire spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// unspecified (0)
    Unspecified,
    /// keyCompromise (1)
    KeyCompromise,
    /// cACompromise (2)
    CaCompromise,
    /// affiliationChanged (3)
    AffiliationChanged,
    /// superseded (4)
    Superseded,
    /// cessationOfOperation (5)
    CessationOfOperation,
    /// certificateHold (6): temporary, may be released
    CertificateHold,
    /// privilegeWithdrawn (9)
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The CRLReason enumeration value.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    /// Every reason this contract carries.
    const ALL: [Self; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];

    /// The reason with RFC 5280's CRLReason `code` (as an OCSP answer or a CRL entry carries
    /// it), if it is one of these.
    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|r| i64::from(r.code()) == code)
    }

    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "caCompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A certificate's revocation status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    /// Not revoked.
    Good,
    /// Revoked with a final reason.
    Revoked,
    /// Revoked with certificateHold; may be released.
    Hold,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Revoked => "revoked",
            Self::Hold => "hold",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "good" => Some(Self::Good),
            "revoked" => Some(Self::Revoked),
            "hold" => Some(Self::Hold),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RevocationReason;

    #[test]
    fn a_reason_is_found_again_by_its_code_and_no_other_code_names_one() {
        for name in [
            "unspecified",
            "keyCompromise",
            "caCompromise",
            "affiliationChanged",
            "superseded",
            "cessationOfOperation",
            "certificateHold",
            "privilegeWithdrawn",
        ] {
            let reason = RevocationReason::parse(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(
                RevocationReason::from_code(i64::from(reason.code())),
                Some(reason)
            );
        }
        for code in [-1, 7, 8, 10, 255] {
            assert_eq!(RevocationReason::from_code(code), None, "{code}");
        }
    }
}
