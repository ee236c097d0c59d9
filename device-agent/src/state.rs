//! The per-device state directory. One directory per device; one slot per certificate (a
//! profile id in MDM mode, `default` in plain mode):
//!
//! ```text
//! <device dir>/                0700
//!   registration.json          device id and MDM URL (no secret)
//!   credential                 0600, the MDM check-in credential
//!   reports.json               status not yet delivered to the MDM
//!   certs/<slot>/
//!     config.json              what to enroll/renew with (URL, pin, CSR spec; no challenge)
//!     key.pem                  0600, the key of the installed certificate
//!     cert.pem                 issued certificate, then its CA chain
//!     next-key.pem             0600, key of an enrollment in flight
//!     transport-key.pem        0600, RSA key that signs/decrypts for an EC key in flight
//!     transaction.json         the in-flight transaction, so a restart polls the same one
//! ```
//!
//! Files are written to a temporary name (created 0600 where secret) and renamed, so a crash
//! leaves the old file or the new one, never half of one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use openssl::x509::X509;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};
use crate::key::{DeviceKey, scrub};

/// The default slot name in plain SCEP mode.
pub const DEFAULT_SLOT: &str = "default";

/// A device's state directory.
#[derive(Clone, Debug)]
pub struct DeviceDir {
    root: PathBuf,
}

impl DeviceDir {
    /// Open (and create, 0700) a device directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        create_private_dir(&root)?;
        Ok(Self { root })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A certificate slot; its name must be a plain identifier (profile ids are).
    pub fn slot(&self, name: &str) -> Result<Slot> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(Error::Invalid(format!("slot name {name:?}")));
        }
        Ok(Slot {
            dir: self.root.join("certs").join(name),
            name: name.to_owned(),
        })
    }

    /// Every slot that exists on disk.
    pub fn slots(&self) -> Result<Vec<Slot>> {
        let dir = self.root.join("certs");
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::state("certs directory", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::state("certs directory", e))?;
            if let Some(name) = entry.file_name().to_str()
                && let Ok(slot) = self.slot(name)
            {
                out.push(slot);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Read a JSON file of the device directory, `None` if absent.
    pub fn read_json<T: DeserializeOwned>(&self, file: &str) -> Result<Option<T>> {
        read_json(&self.root.join(file))
    }

    /// Write a JSON file of the device directory atomically (0644: never a secret).
    pub fn write_json<T: Serialize>(&self, file: &str, value: &T) -> Result<()> {
        write_json(&self.root.join(file), value)
    }

    /// Write a secret file (0600) atomically.
    pub fn write_secret(&self, file: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.root.join(file), bytes, true)
    }

    /// Read a secret file, `None` if absent.
    pub fn read_secret(&self, file: &str) -> Result<Option<Vec<u8>>> {
        read_opt(&self.root.join(file))
    }

    /// Remove one file of the device directory (absent is fine).
    pub fn remove(&self, file: &str) -> Result<()> {
        remove_file(&self.root.join(file))
    }

    /// Delete every key and certificate of this device (wipe), keeping the directory.
    pub fn delete_all_slots(&self) -> Result<()> {
        remove_dir(&self.root.join("certs"))
    }
}

/// One certificate's files.
#[derive(Clone, Debug)]
pub struct Slot {
    dir: PathBuf,
    name: String,
}

impl Slot {
    /// The slot name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The slot directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ensure(&self) -> Result<()> {
        create_private_dir(&self.dir)
    }

    /// Read a JSON file of the slot.
    pub fn read_json<T: DeserializeOwned>(&self, file: &str) -> Result<Option<T>> {
        read_json(&self.file(file))
    }

    /// Write a JSON file of the slot (never a secret).
    pub fn write_json<T: Serialize>(&self, file: &str, value: &T) -> Result<()> {
        self.ensure()?;
        write_json(&self.file(file), value)
    }

    /// Remove a file of the slot (absent is fine).
    pub fn remove(&self, file: &str) -> Result<()> {
        remove_file(&self.file(file))
    }

    /// Store a key as 0600 PKCS#8 PEM under `file`.
    pub(crate) fn write_key(&self, file: &str, key: &DeviceKey) -> Result<()> {
        self.ensure()?;
        let pem = key.to_pkcs8_pem()?;
        let result = write_atomic(&self.file(file), &pem, true);
        scrub(pem);
        result
    }

    /// Load a key, `None` if absent.
    pub fn read_key(&self, file: &str) -> Result<Option<DeviceKey>> {
        match read_opt(&self.file(file))? {
            None => Ok(None),
            Some(pem) => {
                let key = DeviceKey::from_pem(&pem);
                scrub(pem);
                key.map(Some)
            }
        }
    }

    /// The installed key and certificate chain (leaf first), `None` before the first
    /// enrollment.
    pub fn installed(&self) -> Result<Option<(DeviceKey, Vec<X509>)>> {
        let (Some(key), Some(pem)) = (self.read_key("key.pem")?, read_opt(&self.file("cert.pem"))?)
        else {
            return Ok(None);
        };
        let chain = X509::stack_from_pem(&pem).map_err(|e| Error::state("cert.pem", e))?;
        if chain.is_empty() {
            return Err(Error::State("cert.pem holds no certificate".into()));
        }
        Ok(Some((key, chain)))
    }

    /// Install a key and its certificate chain: the certificate first, then the key, so a
    /// crash in between leaves a certificate whose key is `next-key.pem` (kept until here).
    pub(crate) fn install(&self, key: &DeviceKey, chain: &[X509]) -> Result<()> {
        self.ensure()?;
        let mut pem = Vec::new();
        for c in chain {
            pem.extend(c.to_pem()?);
        }
        write_atomic(&self.file("cert.pem"), &pem, false)?;
        self.write_key("key.pem", key)
    }

    /// Delete every file of the slot.
    pub fn delete(&self) -> Result<()> {
        remove_dir(&self.dir)
    }

    /// The installed key and chain as PKCS#12 (PBES2/AES-256, HMAC-SHA256 MAC).
    pub fn export_pkcs12(&self, password: &str) -> Result<Vec<u8>> {
        let (key, chain) = self
            .installed()?
            .ok_or(Error::Missing("no certificate installed"))?;
        let mut b = openssl::pkcs12::Pkcs12::builder();
        b.name(&self.name).pkey(key.pkey()).cert(&chain[0]);
        if chain.len() > 1 {
            let mut ca = openssl::stack::Stack::new()?;
            for c in &chain[1..] {
                ca.push(c.clone())?;
            }
            b.ca(ca);
        }
        Ok(b.build2(password)?.to_der()?)
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::state("create directory", e))
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir).map_err(|e| Error::state("create directory", e))
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::state(&display_name(path), e)),
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match read_opt(path)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::state(&display_name(path), e)),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::state("encode", e))?;
    write_atomic(path, &bytes, false)
}

/// Write to `<path>.tmp` (0600 from creation when `secret`), fsync, rename over `path`.
fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let name = display_name(path);
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = secret;
    let mut f = opts.open(&tmp).map_err(|e| Error::state(&name, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::state(&name, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::state(&name, e))
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::state(&display_name(path), e)),
    }
}

fn remove_dir(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::state(&display_name(path), e)),
    }
}

/// Only the file name: errors never carry the machine's paths.
fn display_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::key::KeySpec;

    #[cfg(unix)]
    #[test]
    fn keys_are_0600_and_directories_0700() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dev = DeviceDir::open(tmp.path().join("dev")).unwrap();
        let slot = dev.slot("wifi").unwrap();
        let key = DeviceKey::generate(KeySpec::EcP256).unwrap();
        slot.write_key("key.pem", &key).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&slot.path().join("key.pem")), 0o600);
        assert_eq!(mode(slot.path()), 0o700);
        assert_eq!(mode(dev.path()), 0o700);
        let back = slot.read_key("key.pem").unwrap().unwrap();
        assert_eq!(
            back.public_key_der().unwrap(),
            key.public_key_der().unwrap()
        );
        dev.write_secret("credential", b"tok").unwrap();
        assert_eq!(mode(&dev.path().join("credential")), 0o600);
    }

    #[test]
    fn slot_names_cannot_escape_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = DeviceDir::open(tmp.path()).unwrap();
        for bad in ["", "..", ".", "a/b", "../x", "a b"] {
            assert!(dev.slot(bad).is_err(), "{bad:?}");
        }
        assert_eq!(dev.slot("wifi-1.v2").unwrap().name(), "wifi-1.v2");
    }

    #[test]
    fn delete_all_slots_removes_keys_and_lists_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = DeviceDir::open(tmp.path()).unwrap();
        let key = DeviceKey::generate(KeySpec::EcP256).unwrap();
        for s in ["a", "b"] {
            dev.slot(s).unwrap().write_key("key.pem", &key).unwrap();
        }
        assert_eq!(dev.slots().unwrap().len(), 2);
        dev.delete_all_slots().unwrap();
        assert!(dev.slots().unwrap().is_empty());
        assert!(!tmp.path().join("certs").exists());
    }
}
