//! A scheduled issuing-CA rollover on disk (RFC 8894 §4.7, GetNextCACert).
//!
//! Beside the hierarchy's files, in the CA directory:
//! - `next/issuing.crt.pem`, `next/issuing.key.pem`: the next issuing CA, signed by the same
//!   root with a key of the same type, made once when a rollover is planned and announced
//!   until it takes over;
//! - `retired/<serial>/issuing.crt.pem`, `issuing.key.pem`, `switch_at`: issuing CAs that were
//!   replaced, kept so the certificates they issued stay checkable (OCSP and CRL).
//!
//! Each directory appears whole or not at all (written beside, then renamed). The switch
//! (retire the current CA, copy the next one over it, drop `next/`) reads from the files which
//! of its steps are done, so a switch interrupted by a crash is finished by the next start.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use openssl::nid::Nid;
use openssl::pkey::{Id, Public};
use openssl::x509::{X509, X509Ref};

use crate::error::CaError;
use crate::hierarchy::{
    CaMaterial, ISSUING_CERT, ISSUING_KEY, ROOT_CERT, ROOT_KEY, make_issuing, read_cert,
};
use crate::keys::{KeySpec, Passphrase, read_private_key, write_private_key};
use foundation::Serial;

/// The next issuing CA's directory.
pub const NEXT_DIR: &str = "next";
/// The directory of retired issuing CAs, one sub-directory per CA named by its serial.
pub const RETIRED_DIR: &str = "retired";
/// In a retired CA's directory: the planned switch time (unix seconds) that retired it.
const SWITCH_AT: &str = "switch_at";

/// Where a planned rollover stands after [`prepare`].
#[derive(Debug)]
pub enum Phase {
    /// The next issuing CA exists and is announced (GetNextCACert) until the switch.
    Announced(X509),
    /// The next issuing CA has taken over; the previous one is retired.
    Switched,
}

/// Brings the CA directory in line with a rollover planned for `switch_at` (unix seconds) as
/// seen at `now`: before it, the next issuing CA is created (once) and returned for
/// announcement; from it on, the switch is made (or finished, if a crash interrupted it).
/// Needs the root key in `dir`; keys are read and written with `passphrase`.
pub fn prepare(
    dir: &Path,
    switch_at: i64,
    now: i64,
    passphrase: Option<&Passphrase>,
) -> Result<Phase, CaError> {
    let next_exists = dir.join(NEXT_DIR).exists();
    let done = retired_by(dir, switch_at)?;
    if next_exists && (done || now >= switch_at) {
        switch(dir, switch_at, passphrase)?;
        return Ok(Phase::Switched);
    }
    if done {
        return Ok(Phase::Switched);
    }
    let next = ensure_next(dir, passphrase)?;
    if now >= switch_at {
        switch(dir, switch_at, passphrase)?;
        return Ok(Phase::Switched);
    }
    Ok(Phase::Announced(next))
}

/// The retired issuing CAs of `dir`, checked against `root`, oldest serial order (any order is
/// fine: each answers for its own certificates).
pub fn load_retired(
    dir: &Path,
    root: &X509Ref,
    passphrase: Option<&Passphrase>,
) -> Result<Vec<CaMaterial>, CaError> {
    retired_dirs(dir)?
        .iter()
        .map(|d| load_pair(d, root, passphrase))
        .collect()
}

/// The retired CAs' directories (work directories, named with a leading dot, left out).
fn retired_dirs(dir: &Path) -> Result<Vec<PathBuf>, CaError> {
    let retired = dir.join(RETIRED_DIR);
    if !retired.exists() {
        return Ok(Vec::new());
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(&retired).map_err(|e| CaError::io(&retired, e))? {
        let path = entry.map_err(|e| CaError::io(&retired, e))?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if path.is_dir() && !hidden {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Whether a CA was already retired by the switch planned for `switch_at`.
fn retired_by(dir: &Path, switch_at: i64) -> Result<bool, CaError> {
    for d in retired_dirs(dir)? {
        let file = d.join(SWITCH_AT);
        let text = std::fs::read_to_string(&file).map_err(|e| CaError::io(&file, e))?;
        if text.trim().parse::<i64>().ok() == Some(switch_at) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A CA certificate and key in `sub` (a `next/` or `retired/<serial>/` directory), checked to
/// be whole and to chain to `root`, with an error saying which directory is damaged.
fn load_pair(
    sub: &Path,
    root: &X509Ref,
    passphrase: Option<&Passphrase>,
) -> Result<CaMaterial, CaError> {
    let damaged = |e: CaError| {
        CaError::Config(format!(
            "{} does not hold a usable issuing CA ({e}); restore it, or remove it if it is \
             an unannounced next CA",
            sub.display()
        ))
    };
    let cert = read_cert(&sub.join(ISSUING_CERT)).map_err(damaged)?;
    let key = read_private_key(&sub.join(ISSUING_KEY), passphrase).map_err(damaged)?;
    CaMaterial::new(root.to_owned(), cert, key).map_err(damaged)
}

/// The next issuing CA's certificate, creating the CA first if there is none.
fn ensure_next(dir: &Path, passphrase: Option<&Passphrase>) -> Result<X509, CaError> {
    let root = read_cert(&dir.join(ROOT_CERT))?;
    let next = dir.join(NEXT_DIR);
    if next.exists() {
        return Ok(load_pair(&next, &root, passphrase)?.issuing);
    }
    let root_key_path = dir.join(ROOT_KEY);
    if !root_key_path.exists() {
        return Err(CaError::Config(format!(
            "{} is missing: a rollover needs the root key to sign the next issuing CA",
            root_key_path.display()
        )));
    }
    let root_key = read_private_key(&root_key_path, passphrase)?;
    let current = read_cert(&dir.join(ISSUING_CERT))?;
    let public = current.public_key().map_err(CaError::crypto)?;
    let spec = key_spec(&public)?;
    let lifetime = current
        .not_before()
        .diff(current.not_after())
        .map_err(CaError::crypto)?;
    // The current CA's lifetime, less the day its NotBefore was backdated.
    let days = u32::try_from(lifetime.days.saturating_sub(1).max(1)).unwrap_or(1);
    let (cn, org) = name_parts(&current)?;
    let key = spec.generate()?;
    let cert = make_issuing(
        &root,
        &root_key,
        &key,
        &next_generation(&cn),
        org.as_deref(),
        days,
    )?;
    let tmp = dir.join(format!(".{NEXT_DIR}.tmp-{}", std::process::id()));
    let result = (|| {
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| CaError::io(&tmp, e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| CaError::io(&tmp, e))?;
        let pem = cert.to_pem().map_err(CaError::crypto)?;
        create_file(&tmp.join(ISSUING_CERT), &pem, 0o644)?;
        write_private_key(&tmp.join(ISSUING_KEY), &key, passphrase)?;
        sync_dir(&tmp)?;
        std::fs::rename(&tmp, &next).map_err(|e| CaError::io(&next, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    tracing::info!(next = %dir.join(NEXT_DIR).display(), "next issuing CA created");
    Ok(cert)
}

/// Makes the next issuing CA the current one: (1) the current CA is copied whole into
/// `retired/<serial>/`, (2) the next CA's certificate, then its key, replace the current
/// files, (3) `next/` is dropped. Every step is repeatable, and which are done shows in the
/// files: a retired copy of the current CA means (1), the next CA's certificate in place of the
/// current one means (2) is under way (its key is rewritten).
fn switch(dir: &Path, switch_at: i64, passphrase: Option<&Passphrase>) -> Result<(), CaError> {
    let root = read_cert(&dir.join(ROOT_CERT))?;
    let next = dir.join(NEXT_DIR);
    load_pair(&next, &root, passphrase)?;
    let next_cert = read_bytes(&next.join(ISSUING_CERT))?;
    let next_key = read_bytes(&next.join(ISSUING_KEY))?;
    let current = read_cert(&dir.join(ISSUING_CERT))?;
    let current_pem = current.to_pem().map_err(CaError::crypto)?;
    let next_pem = X509::from_pem(&next_cert)
        .and_then(|c| c.to_pem())
        .map_err(CaError::crypto)?;
    if current_pem != next_pem {
        retire(dir, &current, switch_at)?;
        replace_file(&dir.join(ISSUING_CERT), &next_cert, 0o644)?;
    }
    replace_file(&dir.join(ISSUING_KEY), &next_key, 0o600)?;
    let gone = dir.join(format!(".{NEXT_DIR}.done-{}", std::process::id()));
    std::fs::rename(&next, &gone).map_err(|e| CaError::io(&next, e))?;
    sync_dir(dir)?;
    std::fs::remove_dir_all(&gone).map_err(|e| CaError::io(&gone, e))?;
    tracing::info!(
        switch_at,
        "the next issuing CA took over; the previous one is retired"
    );
    Ok(())
}

/// Copies the current issuing CA (certificate, key, the plan's switch time) into
/// `retired/<serial>/`, unless a copy is already there.
fn retire(dir: &Path, current: &X509Ref, switch_at: i64) -> Result<(), CaError> {
    let serial = Serial::of_certificate(current)
        .map_err(|_| CaError::Config("the issuing CA's serial is not a positive integer".into()))?
        .to_hex();
    let retired = dir.join(RETIRED_DIR);
    let target = retired.join(&serial);
    if target.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&retired).map_err(|e| CaError::io(&retired, e))?;
    let tmp = retired.join(format!(".{serial}.tmp-{}", std::process::id()));
    let result = (|| {
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| CaError::io(&tmp, e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| CaError::io(&tmp, e))?;
        let cert = read_bytes(&dir.join(ISSUING_CERT))?;
        create_file(&tmp.join(ISSUING_CERT), &cert, 0o644)?;
        let key = read_bytes(&dir.join(ISSUING_KEY))?;
        create_file(&tmp.join(ISSUING_KEY), &key, 0o600)?;
        create_file(
            &tmp.join(SWITCH_AT),
            switch_at.to_string().as_bytes(),
            0o644,
        )?;
        sync_dir(&tmp)?;
        std::fs::rename(&tmp, &target).map_err(|e| CaError::io(&target, e))?;
        sync_dir(&retired)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// The key type of a CA's public key, for a successor of the same type.
fn key_spec(key: &openssl::pkey::PKeyRef<Public>) -> Result<KeySpec, CaError> {
    let unsupported = || CaError::Config("the issuing CA's key type cannot be renewed".into());
    match key.id() {
        Id::RSA => match key.bits() {
            2048 => Ok(KeySpec::Rsa2048),
            3072 => Ok(KeySpec::Rsa3072),
            4096 => Ok(KeySpec::Rsa4096),
            _ => Err(unsupported()),
        },
        Id::EC => {
            let ec = key.ec_key().map_err(CaError::crypto)?;
            match ec.group().curve_name() {
                Some(Nid::X9_62_PRIME256V1) => Ok(KeySpec::EcP256),
                Some(Nid::SECP384R1) => Ok(KeySpec::EcP384),
                _ => Err(unsupported()),
            }
        }
        _ => Err(unsupported()),
    }
}

/// The common name and organisation of a CA certificate's subject.
fn name_parts(cert: &X509Ref) -> Result<(String, Option<String>), CaError> {
    let entry = |nid: Nid| {
        cert.subject_name()
            .entries_by_nid(nid)
            .next()
            .and_then(|e| e.data().to_string().ok())
    };
    let cn = entry(Nid::COMMONNAME)
        .ok_or_else(|| CaError::Config("the issuing CA's subject has no common name".into()))?;
    Ok((cn, entry(Nid::ORGANIZATIONNAME)))
}

/// The successor's common name: `X` becomes `X G2`, `X G2` becomes `X G3`. A distinct name
/// keeps the two CAs apart for every client, also those that match issuers by name only.
fn next_generation(cn: &str) -> String {
    if let Some((base, n)) = cn.rsplit_once(" G")
        && let Ok(n) = n.parse::<u32>()
    {
        return format!("{base} G{}", n.saturating_add(1));
    }
    format!("{cn} G2")
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, CaError> {
    std::fs::read(path).map_err(|e| CaError::io(path, e))
}

/// Creates `path` (which must not exist) with `mode`, synced.
fn create_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| CaError::io(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| CaError::io(path, e))
}

/// Replaces `path` atomically (a file beside it with `mode`, renamed over it).
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = create_file(&tmp, bytes, mode)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| CaError::io(path, e)))
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), CaError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CaError::io(dir, e))
}

#[cfg(test)]
#[path = "rollover_tests.rs"]
mod tests;
