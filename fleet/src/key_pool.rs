//! The fleet's keys, obtained before the timed phase: RSA key generation costs ~100 ms of CPU
//! per 2048-bit key and would otherwise dominate what is measured. A key pool directory keeps
//! them across runs (generated once, 0600 files, reused).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use device_agent::error::{Error, Result};
use device_agent::key::{DeviceKey, KeySpec, scrub};
use device_agent::state::DeviceDir;

/// Obtain `n` keys of `spec`: from `pool` (generating and saving the missing ones, 0600), or
/// generated in memory; in parallel on every core either way. Returns the keys and how many
/// had to be generated.
pub async fn keys(spec: KeySpec, n: usize, pool: Option<&Path>) -> Result<(Vec<DeviceKey>, usize)> {
    let workers = std::thread::available_parallelism().map_or(2, |p| p.get());
    let pool_dir = pool.map(|p| p.join(spec.to_string()));
    if let Some(dir) = &pool_dir {
        DeviceDir::open(dir)?;
    }
    let generated = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    let chunk = n.div_ceil(workers.max(1)).max(1);
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let dir = pool_dir.clone();
        let generated = generated.clone();
        handles.push(tokio::task::spawn_blocking(
            move || -> Result<Vec<DeviceKey>> {
                (start..end)
                    .map(|i| pooled_key(spec, dir.as_deref(), i, &generated))
                    .collect()
            },
        ));
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.extend(h.await.map_err(|e| Error::Crypto(e.to_string()))??);
    }
    Ok((out, generated.load(Ordering::Relaxed)))
}

/// Key `i` of the pool: read when it is there and of the right type, else generated (and
/// saved when there is a pool).
fn pooled_key(
    spec: KeySpec,
    dir: Option<&Path>,
    i: usize,
    generated: &AtomicUsize,
) -> Result<DeviceKey> {
    let Some(dir) = dir else {
        generated.fetch_add(1, Ordering::Relaxed);
        return DeviceKey::generate(spec);
    };
    let path = dir.join(format!("key-{i:05}.pem"));
    if let Ok(pem) = std::fs::read(&path) {
        let key = DeviceKey::from_pem(&pem);
        scrub(pem);
        if let Ok(k) = key
            && k.spec().ok() == Some(spec)
        {
            return Ok(k);
        }
    }
    let key = DeviceKey::generate(spec)?;
    generated.fetch_add(1, Ordering::Relaxed);
    let pem = key.pkey().private_key_to_pem_pkcs8()?;
    let written = write_0600(&path, &pem);
    scrub(pem);
    written?;
    Ok(key)
}

/// Write through a temporary file and rename, so a pool never holds half a key.
fn write_0600(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let pool_error = |e: std::io::Error| Error::State(format!("key pool: {e}"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let tmp = path.with_extension("tmp");
    let mut f = opts.open(&tmp).map_err(pool_error)?;
    f.write_all(bytes).map_err(pool_error)?;
    std::fs::rename(&tmp, path).map_err(pool_error)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn a_key_pool_is_filled_once_then_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let (first, made) = keys(KeySpec::EcP256, 5, Some(tmp.path())).await.unwrap();
        assert_eq!((first.len(), made), (5, 5));
        let (again, made) = keys(KeySpec::EcP256, 6, Some(tmp.path())).await.unwrap();
        assert_eq!(made, 1, "only the missing key is generated");
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(a.public_key_der().unwrap(), b.public_key_der().unwrap());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = tmp.path().join("ec256/key-00000.pem");
            assert_eq!(
                std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
