//! One harness over both backends: the same tests run on SQLite and on PostgreSQL.

use std::sync::Arc;

use foundation::clock::{Clock, ManualClock, SystemClock};
use policy_module::admin::Registered;
use policy_module::checkin::{CheckinResponse, RenderedProfile, StatusReport};
use policy_module::model::*;
use policy_module::store::{Assignment, Store};
use policy_module::{PolicyService, ServiceConfig};

pub enum Backend {
    Sqlite { dir: tempfile::TempDir },
    Postgres { url: String },
}

pub struct Harness {
    pub svc: PolicyService,
    pub clock: Arc<ManualClock>,
    pub backend: Backend,
}

pub const T0: i64 = 1_800_000_000;

impl Harness {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let store = Store::open_sqlite(&dir.path().join("policy.db"), clock.clone())
            .await
            .unwrap();
        let svc = PolicyService::new(store, ServiceConfig::default());
        Self {
            svc,
            clock,
            backend: Backend::Sqlite { dir },
        }
    }

    /// None when PostgreSQL is unavailable and CI is not set (testkit decides).
    pub async fn postgres() -> Option<Self> {
        let cluster = testkit::pg::shared().expect("PostgreSQL for tests")?;
        let url = cluster.fresh_database().expect("fresh database");
        let clock = Arc::new(ManualClock::new(T0));
        let store = Store::connect_postgres(&url, clock.clone()).await.unwrap();
        let svc = PolicyService::new(store, ServiceConfig::default());
        Some(Self {
            svc,
            clock,
            backend: Backend::Postgres { url },
        })
    }

    /// A second service over the same database (a restart, or another instance).
    pub async fn reopen(&self) -> PolicyService {
        let store = match &self.backend {
            Backend::Sqlite { dir } => Store::open_sqlite(
                &dir.path().join("policy.db"),
                self.clock.clone() as Arc<dyn Clock>,
            )
            .await
            .unwrap(),
            Backend::Postgres { url, .. } => Store::connect_postgres(url, Arc::new(SystemClock))
                .await
                .unwrap(),
        };
        PolicyService::new(store, ServiceConfig::default())
    }

    /// Runs one statement directly on the database (fault injection, time travel on PG).
    pub async fn exec(&self, sql: &'static str, arg: i64) {
        match &self.backend {
            Backend::Sqlite { dir } => {
                let pool = sqlx::SqlitePool::connect(&format!(
                    "sqlite://{}",
                    dir.path().join("policy.db").display()
                ))
                .await
                .unwrap();
                sqlx::query(sql).bind(arg).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres { url, .. } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query(sql).bind(arg).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// Runs one statement without parameters (DDL: fault injection).
    pub async fn ddl(&self, sql: &'static str) {
        match &self.backend {
            Backend::Sqlite { dir } => {
                let pool = sqlx::SqlitePool::connect(&format!(
                    "sqlite://{}",
                    dir.path().join("policy.db").display()
                ))
                .await
                .unwrap();
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Backend::Postgres { url, .. } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// Moves time forward: the manual clock on SQLite; on PostgreSQL (database clock) the
    /// stored times move back instead.
    pub async fn advance(&self, secs: i64) {
        match &self.backend {
            Backend::Sqlite { .. } => self.clock.advance(secs),
            Backend::Postgres { .. } => {
                self.exec(
                    "UPDATE challenges SET expires_at = expires_at - $1, created_at = created_at - $1",
                    secs,
                )
                .await;
                self.exec(
                    "UPDATE certificates SET not_after = not_after - $1, issued_at = issued_at - $1",
                    secs,
                )
                .await;
                self.exec(
                    "UPDATE outbox SET next_attempt_at = next_attempt_at - $1, \
                     lease_until = lease_until - $1",
                    secs,
                )
                .await;
            }
        }
    }
}

/// Lets the admin path serve `template` for CSRs naming CN and O (any value), without SANs:
/// since issue 15 item 2 no mscep_admin challenge is minted for a template without a name
/// policy.
pub async fn allow_admin_template(svc: &PolicyService, template: &str) {
    let policy = serde_json::from_value(serde_json::json!({
        "subject": [{"attr": "CN", "pattern": "*"}, {"attr": "O", "pattern": "*"}],
    }))
    .unwrap();
    svc.set_name_policy(template, &policy, false)
        .await
        .unwrap()
        .unwrap();
}

pub fn profile_spec() -> ProfileSpec {
    ProfileSpec {
        name: "Device Wi-Fi".into(),
        certificate_type: CertificateType::Device,
        subject_name_format: "CN={{DeviceName}},OU=Devices,O=Contoso".into(),
        subject_alternative_names: vec![
            SanTemplate {
                kind: SanKind::Dns,
                value: "{{DeviceName}}.contoso.example".into(),
            },
            SanTemplate {
                kind: SanKind::Upn,
                value: "{{UserPrincipalName}}".into(),
            },
        ],
        key_usage: vec![KeyUsage::DigitalSignature],
        extended_key_usages: vec!["1.3.6.1.5.5.7.3.2".into()],
        key_algorithm: KeyAlgorithm::Ec,
        key_size: 256,
        hash_algorithm: HashAlgorithm::Sha256,
        validity_days: 365,
        renewal_threshold_percent: 20,
        template: "DeviceAuth".into(),
        scep_server_urls: vec!["http://127.0.0.1:8080/certsrv/mscep/mscep.dll".into()],
        ca_thumbprint: "a".repeat(40),
        retry_count: 3,
        retry_delay_minutes: 5,
    }
}

pub fn device_spec(id: &str) -> DeviceSpec {
    DeviceSpec {
        id: Some(id.into()),
        name: format!("LAPTOP-{id}"),
        platform: Platform::Windows,
        serial_number: Some("SN-1".into()),
        owner_upn: Some("alice@contoso.example".into()),
        owner_email: Some("alice@contoso.example".into()),
        aad_device_id: None,
        user_name: Some("alice".into()),
    }
}

/// A registered device with profile `p1` assigned, checked in once.
pub struct Enrolled {
    #[allow(dead_code)]
    pub reg: Registered,
    pub checkin: CheckinResponse,
}

impl Enrolled {
    pub fn profile(&self) -> &RenderedProfile {
        &self.checkin.profiles[0]
    }

    pub fn challenge(&self) -> String {
        self.profile().challenge.expose().to_string()
    }
}

pub async fn enrolled(h: &Harness, id: &str) -> Enrolled {
    let svc = &h.svc;
    if svc.store().get_profile("p1").await.unwrap().is_none() {
        svc.create_profile("p1", profile_spec()).await.unwrap();
    }
    let reg = svc.register_device(device_spec(id)).await.unwrap();
    svc.assign(
        "p1",
        Assignment {
            kind: "device".into(),
            id: id.into(),
        },
    )
    .await
    .unwrap();
    let checkin = svc
        .checkin(&reg.device, &StatusReport::default())
        .await
        .unwrap();
    assert_eq!(checkin.profiles.len(), 1);
    Enrolled { reg, checkin }
}
