//! Issuing CAs retired by a rollover (`rollover.rs`): each keeps answering OCSP and
//! publishing a CRL for the certificates it issued, and its profile still lints them. Serials
//! are unique across the CA's store, so a retired CA's CRL is built from the same revoked
//! entries as the current one's: an entry it never issued names no certificate of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::CaError;
use crate::hierarchy::CaMaterial;
use crate::lint::Profile;
use foundation::Serial;

/// One retired issuing CA.
pub(crate) struct Retired {
    pub(crate) material: Arc<CaMaterial>,
    pub(crate) profile: Profile,
    /// Its certificate's serial, hex: names its CRL (`/crl/retired/<serial>.crl`, and
    /// `issuing-<serial>.crl` beside the current CRL file).
    pub(crate) name: String,
}

impl Retired {
    pub(crate) fn new(material: CaMaterial, max_backdate_secs: i64) -> Result<Self, CaError> {
        let profile = Profile::new(&material.issuing, max_backdate_secs)?;
        let name = Serial::of_certificate(&material.issuing)
            .map_err(|_| CaError::Config("a retired CA's serial is not a positive integer".into()))?
            .to_hex();
        Ok(Self {
            material: Arc::new(material),
            profile,
            name,
        })
    }

    /// Where its CRL is written: beside the current CRL file, if that is written.
    pub(crate) fn crl_path(&self, current: Option<&Path>) -> Option<PathBuf> {
        current.map(|p| p.with_file_name(format!("issuing-{}.crl", self.name)))
    }
}
