#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::hierarchy::CaHierarchy;
use ca_mock::keys::KeySpec;
use std::net::{IpAddr, Ipv4Addr};

fn err_of(text: &str) -> String {
    match LabConfig::from_toml(text).and_then(|c| c.resolve(Path::new("."))) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn the_committed_sample_parses_into_serves_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab.sample.toml");
    let (config, base) = LabConfig::load(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), SAMPLE);
    let plan = config.resolve(&base).unwrap();
    let o = &plan.options;
    assert_eq!(
        o.data_dir,
        base.join("scep-lab-data"),
        "relative to the file"
    );
    assert_eq!(o.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(o.ports, [8180, 8280, 8080]);
    assert_eq!(o.console_port, 8380);
    assert_eq!(o.ca, CaHierarchy::default());
    assert_eq!(o.rollover, None);
    assert_eq!(o.tls, None);
    assert!(o.extra_templates.is_empty() && o.name_policies.is_empty());
    assert!(o.ndes_settings.approval_templates.is_empty());
    assert_eq!(
        o.ndes_settings.max_concurrent_pki_operations,
        ndes_proxy::DEFAULT_MAX_CONCURRENT_PKI_OPERATIONS
    );
    assert_eq!(
        o.ndes_settings.pki_workers,
        ndes_proxy::default_pki_workers()
    );
    assert_eq!(
        o.challenge_settings,
        Some(policy_module::ChallengeSettings::default())
    );
    assert_eq!(
        o.challenge_mint_limit,
        policy_module::service::DEFAULT_CHALLENGE_MINT_LIMIT
    );
    assert_eq!(
        o.admin_renewal_window_percent,
        policy_module::service::DEFAULT_ADMIN_RENEWAL_WINDOW_PERCENT
    );
    assert_eq!(o.outbox_poll, std::time::Duration::from_millis(500));
    assert!(matches!(plan.store, StorePlan::Sqlite));
    assert_eq!(plan.log_format, Some(LogFormat::Text));
    assert_eq!(plan.log_level, Some(LogLevel::Warn));
}

#[test]
fn every_section_maps_onto_the_lab_options() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("t")).unwrap();
    let template = ca_mock::template::BUILTIN_TEMPLATES[0].1.replace(
        "name = \"IPSECIntermediateOffline\"",
        "name = \"LabDevice\"",
    );
    assert!(template.contains("LabDevice"));
    std::fs::write(d.join("t/dev.toml"), template).unwrap();
    std::fs::write(d.join("np.json"), policy_module::name_policy::SAMPLE).unwrap();
    std::fs::write(d.join("pg.url"), "postgres://u:pw@127.0.0.1:5/postgres\n").unwrap();
    let text = r#"
data_dir = "state"
approval_templates = ["LabDevice"]
[store]
postgres_url_file = "pg.url"
database_prefix = "lab7"
[listen]
bind = "0.0.0.0"
ca_port = 1
policy_port = 2
scep_port = 3
console_port = 4
[ca]
key_type = "ec-p384"
root_validity_days = 100
issuing_validity_days = 50
root_common_name = "R"
issuing_common_name = "I"
organization = "O"
[ca.rollover]
switch_at = "2027-01-01T00:00:00Z"
[tls]
enabled = true
mutual = true
scep_https_port = 9443
ca_plain_port = 9181
[[templates]]
file = "t/dev.toml"
[name_policies]
LabDevice = "np.json"
[policy]
password_max = 9
admin_renewal_window_percent = 50
challenges_per_minute = 0
outbox_poll_interval_ms = 20
[log]
format = "json"
level = "info"
"#;
    let path = d.join("lab.toml");
    std::fs::write(&path, text).unwrap();
    let (config, base) = LabConfig::load(&path).unwrap();
    let plan = config.resolve(&base).unwrap();
    let o = &plan.options;
    assert_eq!(o.data_dir, d.join("state"));
    assert_eq!(o.bind, "0.0.0.0".parse::<IpAddr>().unwrap());
    assert_eq!((o.ports, o.console_port), ([1, 2, 3], 4));
    assert_eq!(
        o.ca,
        CaHierarchy {
            key: KeySpec::EcP384,
            root_cn: "R".into(),
            issuing_cn: "I".into(),
            org: Some("O".into()),
            root_days: 100,
            issuing_days: 50,
        }
    );
    assert_eq!(
        o.rollover,
        Some(RolloverPlan {
            switch_at_unix: 1_798_761_600
        })
    );
    assert_eq!(
        o.tls,
        Some(TlsOptions {
            mutual: true,
            scep_https_port: 9443
        })
    );
    assert_eq!(o.ca_plain_port, 9181);
    assert_eq!(o.extra_templates.len(), 1);
    assert_eq!(o.extra_templates[0].name, "LabDevice");
    assert_eq!(o.name_policies.len(), 1);
    assert_eq!(o.name_policies[0].0, "LabDevice");
    assert!(o.ndes_settings.approval_templates.contains("LabDevice"));
    let c = o.challenge_settings.unwrap();
    assert_eq!(c.password_max, 9);
    assert_eq!(c.password_validity_minutes, 60, "the others keep defaults");
    assert_eq!(o.admin_renewal_window_percent, 50);
    assert_eq!(o.challenge_mint_limit.per_minute, 0);
    assert_eq!(o.challenge_mint_limit.burst, 30);
    assert_eq!(o.outbox_poll, std::time::Duration::from_millis(20));
    match &plan.store {
        StorePlan::Postgres { url, prefix } => {
            assert_eq!(url.expose(), "postgres://u:pw@127.0.0.1:5/postgres");
            assert_eq!(prefix, "lab7");
        }
        StorePlan::Sqlite => panic!("expected PostgreSQL"),
    }
    assert!(
        !format!("{plan:?}").contains("pw@"),
        "the URL stays out of Debug"
    );
    assert_eq!(plan.log_format, Some(LogFormat::Json));
    assert_eq!(plan.log_level, Some(LogLevel::Info));
}

#[test]
fn mistakes_are_errors_naming_the_key() {
    let e = err_of("[listen]\nscep_prot = 1\n");
    assert!(e.contains("scep_prot"), "{e}");
    let e = err_of("colour = true\n");
    assert!(e.contains("colour"), "{e}");
    let e = err_of("[ca.rollover]\nswitch_at = \"next tuesday\"\n");
    assert!(e.contains("switch_at") && e.contains("RFC 3339"), "{e}");
    let e = err_of("[ca.rollover]\nswitch_at = 1798761600\n");
    assert!(
        e.contains("switch_at"),
        "unix seconds are not a time here: {e}"
    );
    let e = err_of("[ca]\nkey_type = \"rsa1024\"\n");
    assert!(e.contains("key_type") && e.contains("rsa1024"), "{e}");
    let e = err_of("[log]\nformat = \"xml\"\n");
    assert!(e.contains("format"), "{e}");
    let e = err_of("[policy]\npassword_max = 0\n");
    assert!(e.contains("password_max"), "{e}");
    let e = err_of("[store]\npostgres_url = \"mysql://x\"\n");
    assert!(e.contains("postgres_url"), "{e}");
    let e = err_of("[store]\ndatabase_prefix = \"x\"\n");
    assert!(e.contains("database_prefix"), "{e}");
    let e = err_of("[[templates]]\nfile = \"missing.toml\"\n");
    assert!(e.contains("missing.toml"), "{e}");
    let e = err_of("[name_policies]\nX = \"missing.json\"\n");
    assert!(e.contains("name_policies.X"), "{e}");
}

#[test]
fn flags_the_user_gave_override_the_file() {
    let config = LabConfig::from_toml(SAMPLE).unwrap();
    let mut plan = config.resolve(Path::new("/etc/lab")).unwrap();
    plan.override_with(&ServeOverrides::default()).unwrap();
    assert_eq!(plan.options.ports, [8180, 8280, 8080], "no flags: the file");
    assert_eq!(plan.options.data_dir, Path::new("/etc/lab/scep-lab-data"));
    plan.override_with(&ServeOverrides {
        data: Some("elsewhere".into()),
        ports: Some([1, 2, 3]),
        console_port: Some(4),
        postgres_url_file: None,
    })
    .unwrap();
    assert_eq!(plan.options.ports, [1, 2, 3]);
    assert_eq!(plan.options.console_port, 4);
    assert_eq!(
        plan.options.data_dir,
        Path::new("elsewhere"),
        "a flag is the user's path, from the working directory"
    );
    assert!(matches!(plan.store, StorePlan::Sqlite));
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, "postgres://postgres@127.0.0.1:1/postgres\n").unwrap();
    plan.override_with(&ServeOverrides {
        postgres_url_file: Some(url_file),
        ..ServeOverrides::default()
    })
    .unwrap();
    match &plan.store {
        StorePlan::Postgres { url, prefix } => {
            assert_eq!(url.expose(), "postgres://postgres@127.0.0.1:1/postgres");
            assert_eq!(prefix, crate::pg_setup::DEFAULT_PREFIX);
        }
        StorePlan::Sqlite => panic!("the flag names PostgreSQL"),
    }
}

#[test]
fn the_scep_section_sets_ndes_proxys_admission() {
    let plan = LabConfig::from_toml("[scep]\nmax_concurrent_pki_operations = 9\npki_workers = 3\n")
        .and_then(|c| c.resolve(Path::new(".")))
        .unwrap();
    assert_eq!(plan.options.ndes_settings.max_concurrent_pki_operations, 9);
    assert_eq!(plan.options.ndes_settings.pki_workers, 3);
    let e = err_of("[scep]\nmax_concurrent_pki_operations = 0\n");
    assert!(e.contains("scep.max_concurrent_pki_operations"), "{e}");
    let e = err_of("[scep]\nworkers = 3\n");
    assert!(e.contains("workers"), "{e}");
}
