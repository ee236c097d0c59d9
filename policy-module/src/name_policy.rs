//! The admin path's name policy: per CA template, which subject and SANs a CSR presented with
//! an mscep_admin challenge may name (docs/decisions.md #7: the template decides, the CSR
//! proposes). Without a policy the admin path does not serve the template at all.
//!
//! Patterns are globs, not regular expressions, so every match is bounded: `*` stands for any
//! run of characters (also none), every other character stands for itself. Subject values are
//! compared exactly; DNS, email and UPN values ignore ASCII case, as those names do. A name
//! that itself holds a `*` (a wildcard certificate) matches no pattern. A URI SAN that looks
//! like a Windows SID (`tag:microsoft.com,2022-09-14:sid:S-1-5-…`, KB5014754's strong mapping)
//! is of kind `sid`, never `uri`, so `uri` patterns cannot admit it. otherName SANs other than
//! UPN never get this far: reading the CSR refuses them (`policy_api::csr`).
//!
//! `enrollee_supplies_subject` is AD CS's `CT_FLAG_ENROLLEE_SUPPLIES_SUBJECT`: the CSR's names
//! pass as they are, which is ESC1. It exists to reproduce that exposure in security tests,
//! off unless an administrator sets it; every grant and issuance under it is marked
//! `esc1_exposed` in the audit.

use foundation::names::{NameAttr, San, SanKind, SubjectAttr};
use serde::{Deserialize, Serialize};

/// The lab's name policy for the template its mscep_admin page serves: what the plain SCEP
/// clients it is driven with put in their CSRs (micromdm `scepclient` writes `C=US, O=scep-client,
/// OU=MDM, CN=<name>`; other clients a CN alone), no SANs, the flag off. `scep-lab serve` sets
/// it unless an administrator already set one; `scep-lab services` writes it beside the
/// configurations for `policy-module admin set-name-policy`.
pub const SAMPLE: &str = include_str!("../name-policy.sample.json");

/// At most this many subject rules and this many SAN rules.
pub const MAX_RULES: usize = 16;
/// Longest pattern, in characters.
pub const MAX_PATTERN_LEN: usize = 256;
/// Most `*` in one pattern.
pub const MAX_STARS: usize = 8;
/// Highest `max_sans`.
pub const MAX_SANS_LIMIT: u32 = 32;
/// How much of a refused name the audit repeats.
const SHOWN_CHARS: usize = 128;

/// The kinds a SAN rule names: the SAN kinds, with SID-like URIs as a kind of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameKind {
    Dns,
    Email,
    Uri,
    Ip,
    Upn,
    /// A URI SAN naming a Windows security identifier.
    Sid,
}

impl NameKind {
    /// The kind a CSR's SAN counts as.
    pub fn of(san: &San) -> Self {
        match san.kind {
            SanKind::Dns => Self::Dns,
            SanKind::Email => Self::Email,
            SanKind::Ip => Self::Ip,
            SanKind::Upn => Self::Upn,
            SanKind::Uri if looks_like_sid(&san.value) => Self::Sid,
            SanKind::Uri => Self::Uri,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Email => "email",
            Self::Uri => "uri",
            Self::Ip => "ip",
            Self::Upn => "upn",
            Self::Sid => "sid",
        }
    }

    fn ignores_case(self) -> bool {
        matches!(self, Self::Dns | Self::Email | Self::Upn)
    }

    /// Characters a pattern of this kind may hold besides `*`.
    fn pattern_char_ok(self, c: char) -> bool {
        match self {
            Self::Dns => c.is_ascii_alphanumeric() || c == '-' || c == '.',
            Self::Ip => c.is_ascii_hexdigit() || c == '.' || c == ':',
            _ => !c.is_whitespace() && !c.is_control(),
        }
    }
}

/// KB5014754's SID URL, and anything else naming a SID in a URI (case-insensitive).
fn looks_like_sid(uri: &str) -> bool {
    let lower = uri.to_ascii_lowercase();
    lower.starts_with("tag:microsoft.com,") || lower.contains(":sid:") || lower.contains("s-1-5-")
}

/// One allowed subject attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRule {
    pub attr: SubjectAttr,
    pub pattern: String,
    /// The CSR must name this attribute.
    #[serde(default)]
    pub required: bool,
}

/// One allowed SAN kind with a value pattern (several rules may name one kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanRule {
    pub kind: NameKind,
    pub pattern: String,
}

fn default_max_sans() -> u32 {
    8
}

/// What a template lets the admin path issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamePolicy {
    /// Allowed subject attributes, each at most once in a CSR; any other is refused.
    #[serde(default)]
    pub subject: Vec<SubjectRule>,
    /// Allowed SANs; a kind without a rule is refused.
    #[serde(default)]
    pub sans: Vec<SanRule>,
    #[serde(default = "default_max_sans")]
    pub max_sans: u32,
    /// AD CS "supply in the request" (ESC1): names pass unchecked. For security tests only.
    #[serde(default)]
    pub enrollee_supplies_subject: bool,
}

/// Why a CSR's name was refused: which name, and why (for the log and the audit; the values
/// come from the CSR and hold no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRefusal {
    pub name: String,
    pub why: &'static str,
}

impl std::fmt::Display for NameRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.why)
    }
}

/// A name for the audit: at most [`SHOWN_CHARS`] characters, control characters escaped.
fn shown(label: &str, value: &str) -> String {
    let mut v: String = value.chars().take(SHOWN_CHARS).collect();
    if v.chars().any(char::is_control) {
        v = v.escape_default().to_string();
    }
    if value.chars().count() > SHOWN_CHARS {
        v.push('…');
    }
    format!("{label}{v}")
}

impl NamePolicy {
    /// Bounds and syntax, checked before a policy is stored (the message says which field).
    pub fn validate(&self) -> Result<(), String> {
        if self.subject.len() > MAX_RULES || self.sans.len() > MAX_RULES {
            return Err(format!(
                "at most {MAX_RULES} subject and {MAX_RULES} SAN rules"
            ));
        }
        for (i, r) in self.subject.iter().enumerate() {
            if self.subject[..i].iter().any(|o| o.attr == r.attr) {
                return Err(format!("subject: {} appears twice", r.attr));
            }
            check_pattern(&format!("subject {}", r.attr), &r.pattern, |c| {
                !c.is_control()
            })?;
        }
        for r in &self.sans {
            check_pattern(&format!("sans {}", r.kind.name()), &r.pattern, |c| {
                r.kind.pattern_char_ok(c)
            })?;
        }
        if self.max_sans > MAX_SANS_LIMIT {
            return Err(format!("max_sans: 0..={MAX_SANS_LIMIT}"));
        }
        if self.max_sans == 0 && !self.sans.is_empty() {
            return Err("max_sans: 0 with SAN rules allows none of them".into());
        }
        Ok(())
    }

    /// Every subject attribute and every SAN of a CSR against the policy (unless the
    /// enrollee supplies the subject).
    pub fn check(&self, subject: &[NameAttr], sans: &[San]) -> Result<(), NameRefusal> {
        if self.enrollee_supplies_subject {
            return Ok(());
        }
        for (i, a) in subject.iter().enumerate() {
            let refuse = |why| NameRefusal {
                name: shown(&format!("subject {}=", a.attr), &a.value),
                why,
            };
            if subject[..i].iter().any(|o| o.attr == a.attr) {
                return Err(refuse("the attribute appears more than once"));
            }
            let rule = self
                .subject
                .iter()
                .find(|r| r.attr == a.attr)
                .ok_or_else(|| {
                    refuse("the template's name policy does not permit this attribute")
                })?;
            if !glob_match(&rule.pattern, &a.value, false) {
                return Err(refuse("the value does not match the permitted pattern"));
            }
        }
        if let Some(r) = self
            .subject
            .iter()
            .find(|r| r.required && !subject.iter().any(|a| a.attr == r.attr))
        {
            return Err(NameRefusal {
                name: format!("subject {}", r.attr),
                why: "the template's name policy requires this attribute",
            });
        }
        if sans.len() > self.max_sans as usize {
            return Err(NameRefusal {
                name: format!("{} SANs", sans.len()),
                why: "more SANs than the template's name policy permits",
            });
        }
        for san in sans {
            let kind = NameKind::of(san);
            let refuse = |why| NameRefusal {
                name: shown(&format!("SAN {}:", kind.name()), &san.value),
                why,
            };
            let mut rules = self.sans.iter().filter(|r| r.kind == kind).peekable();
            if rules.peek().is_none() {
                return Err(refuse(
                    "the template's name policy does not permit this kind",
                ));
            }
            if !rules.any(|r| glob_match(&r.pattern, &san.value, kind.ignores_case())) {
                return Err(refuse("the value matches no permitted pattern"));
            }
        }
        Ok(())
    }
}

fn check_pattern(field: &str, p: &str, char_ok: impl Fn(char) -> bool) -> Result<(), String> {
    let len = p.chars().count();
    if len == 0 || len > MAX_PATTERN_LEN {
        return Err(format!(
            "{field}: pattern of 1-{MAX_PATTERN_LEN} characters"
        ));
    }
    if p.chars().filter(|c| *c == '*').count() > MAX_STARS {
        return Err(format!("{field}: at most {MAX_STARS} '*' in a pattern"));
    }
    if let Some(c) = p.chars().find(|c| *c != '*' && !char_ok(*c)) {
        return Err(format!("{field}: {:?} is not allowed in this pattern", c));
    }
    Ok(())
}

/// Glob match: `*` is any run of characters; a value holding `*` never matches.
pub fn glob_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    if value.contains('*') {
        return false;
    }
    let fold = |s: &str| -> Vec<char> {
        if ignore_case {
            s.chars().map(|c| c.to_ascii_lowercase()).collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, v) = (fold(pattern), fold(value));
    // Backtracking to the last star only: O(len(p) * len(v)) at worst.
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if p.get(pi) == Some(&'*') {
            star = Some((pi, vi));
            pi += 1;
        } else if p.get(pi) == Some(&v[vi]) {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn globs_match_runs_and_nothing_else() {
        assert!(glob_match("*", "anything", false));
        assert!(glob_match("*", "", false));
        assert!(glob_match("*.corp.test", "host.corp.test", true));
        assert!(glob_match("*.corp.test", "HOST.Corp.TEST", true));
        assert!(!glob_match("*.corp.test", "HOST.Corp.TEST", false));
        assert!(!glob_match("*.corp.test", "login.microsoft.com", true));
        assert!(!glob_match("*.corp.test", "corp.test", true));
        assert!(glob_match("a*b*c", "aXbYbZc", false));
        assert!(!glob_match("a*b*c", "aXbYbZ", false));
        assert!(!glob_match("scep-client", "scep-client2", false));
        assert!(
            !glob_match("*", "*.corp.test", true),
            "wildcard names never match"
        );
        // Worst case stays bounded (backtracking to the last star only).
        let long = "a".repeat(1024);
        assert!(!glob_match(&"*a".repeat(8), &format!("{long}b"), false));
    }

    #[test]
    fn the_sample_admits_the_lab_clients_and_none_of_the_observed_attacks() {
        let p: NamePolicy = serde_json::from_str(SAMPLE).unwrap();
        p.validate().unwrap();
        assert!(!p.enrollee_supplies_subject);
        let subject = |attrs: &[(SubjectAttr, &str)]| -> Vec<NameAttr> {
            attrs.iter().map(|(a, v)| NameAttr::new(*a, *v)).collect()
        };
        use SubjectAttr::{C, CN, O, OU};
        let scepclient = subject(&[(C, "US"), (O, "scep-client"), (OU, "MDM"), (CN, "dev-1")]);
        assert_eq!(p.check(&scepclient, &[]), Ok(()));
        assert_eq!(p.check(&subject(&[(CN, "real-client-01")]), &[]), Ok(()));
        let cn = subject(&[(CN, "dev-1")]);
        for san in [
            San::new(SanKind::Upn, "admin@corp.test"),
            San::new(SanKind::Dns, "login.microsoft.com"),
            San::new(
                SanKind::Uri,
                "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-500",
            ),
        ] {
            assert!(p.check(&cn, std::slice::from_ref(&san)).is_err(), "{san:?}");
        }
        assert!(
            p.check(&subject(&[(O, "Attacker"), (CN, "evil")]), &[])
                .is_err()
        );
        assert!(
            p.check(&subject(&[(O, "scep-client")]), &[]).is_err(),
            "CN is required"
        );
    }

    #[test]
    fn sid_uris_are_their_own_kind() {
        let uri = |v: &str| NameKind::of(&San::new(SanKind::Uri, v));
        assert_eq!(
            uri("tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-500"),
            NameKind::Sid
        );
        assert_eq!(uri("TAG:Microsoft.com,2023-01-01:x"), NameKind::Sid);
        assert_eq!(uri("urn:x:sid:S-1-5-18"), NameKind::Sid);
        assert_eq!(uri("https://device.corp.test/id"), NameKind::Uri);
    }
}
