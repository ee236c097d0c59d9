//! The enterprise CA (AD CS role): templates, issuance, revocation, CRL and OCSP.
