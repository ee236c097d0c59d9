//! `ca-mock init`: the hierarchy plus a ready-to-serve config, templates and API tokens.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ca_mock::keys::Passphrase;
use ca_mock::template::BUILTIN_TEMPLATES;
use ca_mock::{Config, InitSource};

use crate::{InitArgs, read_passphrase};

pub(crate) fn random_token() -> Result<String> {
    let mut b = [0u8; 32];
    openssl::rand::rand_bytes(&mut b)?;
    Ok(hex::encode(b))
}

fn write_new(path: &Path, data: &[u8], private: bool) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

pub(crate) fn init(a: &InitArgs) -> Result<()> {
    let passphrase = read_passphrase(a.passphrase_file.as_ref(), a.passphrase_env.as_ref())?;
    let source = if let Some(p12) = &a.import_p12 {
        let pw_file = a
            .import_p12_password_file
            .as_ref()
            .context("--import-p12-password-file is required")?;
        InitSource::Pkcs12 {
            file: p12.clone(),
            password: Passphrase::from_file(pw_file)?,
        }
    } else if let (Some(r), Some(c), Some(k)) = (
        &a.import_root_cert,
        &a.import_issuing_cert,
        &a.import_issuing_key,
    ) {
        InitSource::Pem {
            root_cert: r.clone(),
            issuing_cert: c.clone(),
            issuing_key: k.clone(),
            key_passphrase: read_passphrase(a.import_key_passphrase_file.as_ref(), None)?,
        }
    } else {
        InitSource::Generate {
            key: a.key,
            root_cn: a.root_cn.clone(),
            issuing_cn: a.issuing_cn.clone(),
            org: a.org.clone(),
            root_days: a.root_days,
            issuing_days: a.issuing_days,
        }
    };
    let config_path = a.dir.join("ca-mock.toml");
    if config_path.exists() {
        bail!("{} exists; refusing to overwrite", config_path.display());
    }
    let report = ca_mock::init(&a.dir, &source, passphrase.as_ref())?;
    let mut written = report.written;

    let templates = a.dir.join("templates");
    std::fs::create_dir_all(&templates)?;
    for (name, text) in BUILTIN_TEMPLATES {
        let p = templates.join(name);
        write_new(&p, text.as_bytes(), false)?;
        written.push(p);
    }
    // The names the ndes-proxy and policy-module samples read, so one secrets/ serves all three.
    let tokens = a.dir.join("secrets");
    std::fs::create_dir_all(&tokens)?;
    for name in ["ca-ndes.token", "ca-policy.token"] {
        let p = tokens.join(name);
        write_new(&p, format!("{}\n", random_token()?).as_bytes(), true)?;
        written.push(p);
    }
    let base = a
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", a.listen));
    let mut config = ca_mock::config::SAMPLE_CONFIG
        .replace(
            "listen = \"127.0.0.1:8180\"",
            &format!("listen = {:?}", a.listen),
        )
        .replace(
            "public_base_url = \"http://127.0.0.1:8180\"",
            &format!("public_base_url = {base:?}"),
        );
    if let Some(f) = &a.passphrase_file {
        let abs = std::fs::canonicalize(f)?;
        config = config.replace(
            "# key_passphrase_file = \"passphrase.txt\"",
            &format!("key_passphrase_file = {:?}", abs.display().to_string()),
        );
    } else if let Some(v) = &a.passphrase_env {
        config = config.replace(
            "# key_passphrase_env = \"CA_MOCK_KEY_PASSPHRASE\"",
            &format!("key_passphrase_env = {v:?}"),
        );
    }
    Config::from_toml(&config)?;
    write_new(&config_path, config.as_bytes(), false)?;
    written.push(config_path.clone());

    for p in &written {
        println!("wrote {}", p.display());
    }
    println!("root fingerprint (SHA-256): {}", report.root_fingerprint);
    println!(
        "start it with: ca-mock serve --config {}",
        config_path.display()
    );
    Ok(())
}
