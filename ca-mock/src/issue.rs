//! Building one end-entity certificate: the CSR contributes its public key only; subject and SANs
//! are the granted ones; usages, validity and URLs come from the template and the CA.

use der::Encode;
use der::asn1::{Ia5String, ObjectIdentifier};
use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::pkey::{PKey, Public};
use openssl::x509::extension::{AuthorityKeyIdentifier, BasicConstraints, SubjectKeyIdentifier};
use openssl::x509::{X509, X509Builder, X509Extension, X509Req};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax, CrlDistributionPoints};

use crate::error::CaError;
use crate::hierarchy::CaMaterial;
use foundation::names::{KeyUsage, NameAttr, San};
use foundation::secret::sha256_hex;

use crate::names::{build_subject, san_extension_der};
use crate::template::Template;
use foundation::Serial;

/// Largest CSR accepted, in DER bytes (an RSA-16384 CSR is about 4.5 KiB).
pub(crate) const MAX_CSR_LEN: usize = 16 * 1024;

/// The public URLs this CA puts into certificates, derived from one base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// AIA caIssuers: the issuing CA certificate (DER).
    pub ca_issuers: String,
    /// AIA OCSP responder.
    pub ocsp: String,
    /// CRL distribution point (DER CRL).
    pub crl: String,
}

impl Urls {
    /// URLs under `base` (for example `http://ca.lab.example:8080`).
    pub fn from_base(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            ca_issuers: format!("{base}/ca/issuing.crt"),
            ocsp: format!("{base}/ocsp"),
            crl: format!("{base}/crl/issuing.crl"),
        }
    }
}

/// A CSR whose self-signature verified; only its public key is used.
pub(crate) struct CheckedCsr {
    pub(crate) public_key: PKey<Public>,
    pub(crate) der_sha256: String,
    pub(crate) public_key_sha256: String,
}

/// Decodes a DER PKCS#10 request and verifies its self-signature.
pub(crate) fn check_csr(der: &[u8]) -> Result<CheckedCsr, CaError> {
    if der.is_empty() || der.len() > MAX_CSR_LEN {
        return Err(CaError::InvalidCsr("empty or too large"));
    }
    let req =
        X509Req::from_der(der).map_err(|_| CaError::InvalidCsr("not a DER PKCS#10 request"))?;
    // Trailing bytes after the request would make two encodings of "the same CSR".
    if req.to_der().map_err(CaError::crypto)? != der {
        return Err(CaError::InvalidCsr("not DER or trailing data"));
    }
    let public_key = req
        .public_key()
        .map_err(|_| CaError::InvalidCsr("unreadable public key"))?;
    if !req.verify(&public_key).unwrap_or(false) {
        return Err(CaError::InvalidCsr("self-signature does not verify"));
    }
    let spki = public_key.public_key_to_der().map_err(CaError::crypto)?;
    Ok(CheckedCsr {
        public_key,
        der_sha256: sha256_hex(der),
        public_key_sha256: sha256_hex(&spki),
    })
}

/// Everything that goes into one certificate.
pub(crate) struct CertSpec<'a> {
    pub(crate) template: &'a Template,
    pub(crate) public_key: &'a PKey<Public>,
    pub(crate) subject: &'a [NameAttr],
    pub(crate) sans: &'a [San],
    pub(crate) serial: &'a Serial,
    /// Key usage bits and EKU OIDs, as [`Template::issued_usages`] decided.
    pub(crate) key_usage: &'a [KeyUsage],
    pub(crate) extended_key_usage: &'a [String],
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
}

fn der_extension(oid: &str, critical: bool, der: &[u8]) -> Result<X509Extension, CaError> {
    let oid = Asn1Object::from_str(oid).map_err(CaError::crypto)?;
    let value = Asn1OctetString::new_from_bytes(der).map_err(CaError::crypto)?;
    X509Extension::new_from_der(&oid, critical, &value).map_err(CaError::crypto)
}

fn uri(s: &str) -> Result<GeneralName, CaError> {
    Ok(GeneralName::UniformResourceIdentifier(
        Ia5String::new(s).map_err(CaError::crypto)?,
    ))
}

fn aia_der(urls: &Urls) -> Result<Vec<u8>, CaError> {
    AuthorityInfoAccessSyntax(vec![
        AccessDescription {
            access_method: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2"),
            access_location: uri(&urls.ca_issuers)?,
        },
        AccessDescription {
            access_method: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1"),
            access_location: uri(&urls.ocsp)?,
        },
    ])
    .to_der()
    .map_err(CaError::crypto)
}

fn cdp_der(urls: &Urls) -> Result<Vec<u8>, CaError> {
    CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(&urls.crl)?])),
        reasons: None,
        crl_issuer: None,
    }])
    .to_der()
    .map_err(CaError::crypto)
}

fn asn1_time(unix: i64) -> Result<Asn1Time, CaError> {
    Asn1Time::from_unix(unix).map_err(CaError::crypto)
}

/// Builds and signs the certificate.
pub(crate) fn build_certificate(
    ca: &CaMaterial,
    spec: &CertSpec<'_>,
    urls: &Urls,
) -> Result<X509, CaError> {
    let c = CaError::crypto;
    let mut b = X509Builder::new().map_err(c)?;
    b.set_version(2).map_err(c)?;
    let serial = spec.serial.to_bn()?.to_asn1_integer().map_err(c)?;
    b.set_serial_number(&serial).map_err(c)?;
    b.set_issuer_name(ca.issuing.subject_name()).map_err(c)?;
    b.set_subject_name(&*build_subject(spec.subject)?)
        .map_err(c)?;
    b.set_pubkey(spec.public_key).map_err(c)?;
    b.set_not_before(&*asn1_time(spec.not_before)?).map_err(c)?;
    b.set_not_after(&*asn1_time(spec.not_after)?).map_err(c)?;

    b.append_extension(BasicConstraints::new().critical().build().map_err(c)?)
        .map_err(c)?;
    b.append_extension(spec.template.key_usage_extension(spec.key_usage)?)
        .map_err(c)?;
    if let Some(eku) = Template::eku_extension(spec.extended_key_usage)? {
        b.append_extension(eku).map_err(c)?;
    }
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&ca.issuing), None));
    b.append_extension(ski.map_err(c)?).map_err(c)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(&ca.issuing), None));
    b.append_extension(aki.map_err(c)?).map_err(c)?;
    if let Some(san) = san_extension_der(spec.sans)? {
        // RFC 5280 4.2.1.6: with an empty subject the SAN extension must be critical.
        b.append_extension(der_extension("2.5.29.17", spec.subject.is_empty(), &san)?)
            .map_err(c)?;
    }
    // AD CS marks v1-template certificates with the template name (szOID_ENROLL_CERTTYPE,
    // a BMPString); Windows and MDM reporting show it as "Certificate Template Name".
    let template_name = der::asn1::BmpString::from_utf8(&spec.template.name)
        .and_then(|n| n.to_der())
        .map_err(CaError::crypto)?;
    b.append_extension(der_extension(
        "1.3.6.1.4.1.311.20.2",
        false,
        &template_name,
    )?)
    .map_err(c)?;
    b.append_extension(der_extension("1.3.6.1.5.5.7.1.1", false, &aia_der(urls)?)?)
        .map_err(c)?;
    b.append_extension(der_extension("2.5.29.31", false, &cdp_der(urls)?)?)
        .map_err(c)?;

    let alg = ca.signing.with_hash(spec.template.hash);
    b.sign(&ca.key, alg.hash().digest()).map_err(c)?;
    Ok(b.build())
}
