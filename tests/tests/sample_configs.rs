//! The three committed sample configurations, parsed by the services' own parsers, agree with
//! each other: whoever calls a service uses the port it listens on, and each pair of services
//! that shares a token names the same file (the README tells users to start the three from
//! one directory with one `secrets/`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn the_three_samples_agree_on_ports_and_token_files() {
    let ca = ca_mock::Config::from_toml(ca_mock::config::SAMPLE_CONFIG).unwrap();
    let policy = policy_module::config::Config::from_toml(policy_module::config::SAMPLE).unwrap();
    let ndes = ndes_proxy::config::Config::from_toml(ndes_proxy::config::SAMPLE).unwrap();
    ndes.validate().unwrap();

    // Who calls whom, on which port.
    let ca_url = format!("http://{}", ca.listen);
    assert_eq!(ca.public_base_url, ca_url);
    assert_eq!(policy.ca.url, ca_url, "policy-module -> ca-mock");
    assert_eq!(ndes.ca.url, ca_url, "ndes-proxy -> ca-mock");
    let ndes_policy = ndes.policy.as_ref().unwrap();
    assert_eq!(
        ndes_policy.url,
        format!("http://{}", policy.listen),
        "ndes-proxy -> policy-module"
    );
    let ports = [ca.listen.port(), policy.listen.port(), ndes.listen.port()];
    assert_eq!(ports, [8180, 8280, 8080], "the ports the README names");

    // Shared secrets: the same file on both sides.
    let caller = |name: &str| {
        ca.callers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.token_file.clone())
            .unwrap_or_else(|| panic!("ca-mock sample has no token file for {name}"))
    };
    assert_eq!(caller("ndes"), ndes.ca.token_file, "ca-mock <-> ndes-proxy");
    assert_eq!(
        caller("policy"),
        policy.ca.token_file,
        "ca-mock <-> policy-module"
    );
    assert_eq!(
        ndes_policy.token_file, policy.ndes_token_file,
        "ndes-proxy <-> policy-module"
    );
    // The ndes caller may issue under the template mscep_admin hands challenges out for.
    let ndes_caller = ca.callers.iter().find(|c| c.name == "ndes").unwrap();
    let template = &ndes.mscep_admin.as_ref().unwrap().template;
    assert!(ndes_caller.templates.contains(template), "{template}");
    // Everything secret lives under secrets/, nothing inline.
    for file in [
        caller("ndes"),
        caller("policy"),
        policy.admin_token_file.clone(),
        policy.ndes_token_file,
        ndes.admin.as_ref().unwrap().token_file.clone(),
    ] {
        assert!(file.starts_with(Path::new("secrets")), "{}", file.display());
    }
    assert!(ca.callers.iter().all(|c| c.token_sha256.is_none()));
}
