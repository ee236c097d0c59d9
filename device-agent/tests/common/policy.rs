//! policy-module's HTTP API on 127.0.0.1:0 over a temporary SQLite store.

use std::sync::Arc;

use foundation::clock::SystemClock;
use foundation::secret::Secret;
use policy_module::api::{ApiState, serve};
use policy_module::model::*;
use policy_module::store::{Assignment, Store};
use policy_module::{PolicyService, ServiceConfig};

pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

pub struct Policy {
    pub svc: PolicyService,
    pub url: String,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Policy {
    pub async fn start() -> Self {
        Self::start_with(ServiceConfig::default()).await
    }

    /// With other settings (e.g. a block that revokes for good instead of holding).
    pub async fn start_with(config: ServiceConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("policy.db"), Arc::new(SystemClock))
            .await
            .unwrap();
        let svc = PolicyService::new(store, config);
        let state = ApiState {
            service: svc.clone(),
            admin_token: Secret::new(ADMIN_TOKEN),
            ndes_token: Secret::new("ndes-token-for-tests-0123456789"),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, state, async {
            let _ = rx.await;
        }));
        Self {
            svc,
            url,
            _dir: dir,
            _shutdown: tx,
        }
    }

    /// A profile targeting `group` (created if needed), pinned to `ca_sha256`.
    pub async fn profile(
        &self,
        id: &str,
        scep_url: &str,
        ca_sha256: &str,
        key: (KeyAlgorithm, u32),
    ) {
        let spec = ProfileSpec {
            name: format!("profile {id}"),
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
            key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
            extended_key_usages: vec!["1.3.6.1.5.5.7.3.2".into()],
            key_algorithm: key.0,
            key_size: key.1,
            hash_algorithm: HashAlgorithm::Sha256,
            validity_days: 30,
            renewal_threshold_percent: 20,
            template: "DeviceAuth".into(),
            scep_server_urls: vec![scep_url.into()],
            ca_thumbprint: ca_sha256.into(),
            retry_count: 2,
            retry_delay_minutes: 0,
        };
        self.svc.create_profile(id, spec).await.unwrap();
        let _ = self
            .svc
            .create_group(Group {
                id: "all".into(),
                name: "all".into(),
            })
            .await;
        self.svc
            .assign(
                id,
                Assignment {
                    kind: "group".into(),
                    id: "all".into(),
                },
            )
            .await
            .unwrap();
    }

    pub async fn add_to_group(&self, device: &str) {
        self.svc.set_membership("all", device, true).await.unwrap();
    }
}
