//! The standalone console's configuration (`scep-console serve --config console.toml`): the
//! three services' URLs and token files, and who may sign in. Tokens live in files (0600),
//! never in the configuration itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use foundation::secret::read_secret_file;
use foundation::token::BearerToken;
use serde::Deserialize;

use crate::auth::{Credentials, PasswordHash, Role, User};

/// A sample configuration.
pub const SAMPLE: &str = r#"# scep-console: the lab's web console over the services' admin APIs.
listen = "127.0.0.1:8380"
# Set when browsers reach the console over TLS (a TLS-terminating proxy): the cookie is Secure.
secure_cookie = false

[policy]
url = "http://127.0.0.1:8280"
token_file = "secrets/policy-admin.token"

[ca]
url = "http://127.0.0.1:8180"
token_file = "secrets/ca-policy.token"

[ndes]
url = "http://127.0.0.1:8080"
token_file = "secrets/ndes-admin.token"
# Optional: the mscep_admin page's bearer token, for the console's challenge page.
mscep_admin_token_file = "secrets/mscep-admin.token"

# HTTPS (issue 17 item 4): with cert_file and key_file the console serves HTTPS (reloading the
# certificate when its files change); ca_file is the root pinned when calling the services
# (then their urls are https://). `scep-lab services` writes these on.
# [tls]
# cert_file = "tls/scep-console.crt.pem"
# key_file = "tls/scep-console.key.pem"
# ca_file = "tls/root.pem"

[login]
admin_token_file = "secrets/console-admin.token"
read_only_token_file = "secrets/console-readonly.token"
# Users with PBKDF2 password hashes (`scep-console hash-password` prints one):
# [[login.users]]
# name = "alice"
# role = "read-only"
# password_hash = "pbkdf2-sha256$600000$..."
"#;

/// One service: URL and the file holding its bearer token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub url: String,
    pub token_file: PathBuf,
    /// ndes-proxy only: the mscep_admin page's bearer token file.
    #[serde(default)]
    pub mscep_admin_token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserConfig {
    name: String,
    role: String,
    password_hash: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginConfig {
    admin_token_file: Option<PathBuf>,
    read_only_token_file: Option<PathBuf>,
    #[serde(default)]
    users: Vec<UserConfig>,
}

/// The configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    #[serde(default)]
    pub secure_cookie: bool,
    pub policy: ServiceConfig,
    pub ca: ServiceConfig,
    pub ndes: ServiceConfig,
    #[serde(default)]
    login: LoginConfig,
    /// `[tls]` (issue 17 item 4): `cert_file`/`key_file` make `listen` HTTPS (reloaded when
    /// the files change; the cookie is then Secure); `ca_file` is the root pinned when
    /// calling the services.
    #[serde(default)]
    pub tls: foundation::tls_files::TlsFiles,
}

impl Config {
    /// Reads `path`; relative file names are taken from its directory.
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut config: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        config.tls.resolve(&base);
        Ok((config, base))
    }

    /// Who may sign in; at least one credential must be configured.
    pub fn credentials(&self, base: &Path) -> Result<Credentials> {
        let token = |f: &Option<PathBuf>| -> Result<Option<BearerToken>> {
            match f {
                None => Ok(None),
                Some(f) => {
                    let s = read_secret_file(&base.join(f))?;
                    Ok(BearerToken::from_secret(&s))
                }
            }
        };
        let mut users = Vec::new();
        for u in &self.login.users {
            let role = Role::parse(&u.role)
                .with_context(|| format!("user {}: role is admin or read-only", u.name))?;
            let hash = PasswordHash::parse(&u.password_hash).with_context(|| {
                format!(
                    "user {}: password_hash is pbkdf2-sha256$<iterations>$<salt>$<hash>",
                    u.name
                )
            })?;
            users.push(User {
                name: u.name.clone(),
                role,
                hash,
            });
        }
        let c = Credentials {
            admin_token: token(&self.login.admin_token_file)?,
            read_only_token: token(&self.login.read_only_token_file)?,
            users,
        };
        if c.admin_token.is_none() && c.read_only_token.is_none() && c.users.is_empty() {
            bail!("[login] names no credential: nobody could sign in");
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_sample_parses() {
        let c: Config = toml::from_str(SAMPLE).unwrap();
        assert_eq!(c.policy.url, "http://127.0.0.1:8280");
        assert!(c.login.users.is_empty());
    }
}
