//! Scale-out on PostgreSQL: one ca-mock, two policy-module and two ndes-proxy processes, each
//! started from its configuration file, sharing one PostgreSQL server started by the test
//! (one database per service). NDES keeps challenges per server, so a load balancer that
//! sends the next call elsewhere breaks it; here every instance sees the same challenges,
//! pending requests and certificates.
//!
//! - a challenge minted through one policy-module is redeemed through the other instance pair,
//!   with requests alternating between the ndes-proxy instances;
//! - one challenge raced through both instances at once yields exactly one certificate;
//! - `kill -9` of an ndes-proxy, then of a policy-module, then of ca-mock under load loses
//!   nothing (and the reconciler, `scep-lab audit`, finds nothing afterwards): every
//!   client retries its identical request (same transactionID, same CSR) elsewhere and gets a
//!   certificate, each one recorded in the CA's store, no serial twice, none issued twice.
//!
//! Under `CI=true` a missing PostgreSQL is a failure (testkit).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use openssl::x509::X509;
use scep::client::CertRep;
use scep_lab_tests::load::{RetryingLoad, issued_to};
use scep_lab_tests::processes::{Cluster, ClusterOptions, Role, ServiceId};
use scep_lab_tests::remote::{Admin, Enrollment, RemoteDevice};
use scep_lab_tests::{PROFILE, RawScep, serial_of, standard_profile_spec};

/// Two of each front-end service on one PostgreSQL, the profile created, both SCEP endpoints
/// discovered (pinned to the root).
struct Farm {
    cluster: Cluster,
    admin: [Admin; 2],
    scep: [Arc<RawScep>; 2],
    devices: tempfile::TempDir,
}

async fn farm() -> Option<Farm> {
    let pg = testkit::pg::shared().unwrap()?;
    let options = ClusterOptions::postgres(pg, 2, 2).unwrap();
    let cluster = Cluster::start(options).await.unwrap();
    let token = cluster.layout().secret("policy-admin.token").unwrap();
    let admin = [0, 1].map(|i| Admin::new(&cluster.policy_url(i), token.expose()).unwrap());
    let root = cluster.layout().root_fingerprint.clone();
    let mut spec = profile_spec(&cluster, &root);
    spec.retry_count = 3;
    admin[0].create_profile(PROFILE, &spec).await.unwrap();
    let scep0 = RawScep::discover(&cluster.scep_url(0), &root)
        .await
        .unwrap();
    let scep1 = RawScep::discover(&cluster.scep_url(1), &root)
        .await
        .unwrap();
    Some(Farm {
        cluster,
        admin,
        scep: [Arc::new(scep0), Arc::new(scep1)],
        devices: tempfile::tempdir().unwrap(),
    })
}

fn profile_spec(cluster: &Cluster, root: &str) -> policy_module::model::ProfileSpec {
    let urls = vec![cluster.scep_url(0), cluster.scep_url(1)];
    standard_profile_spec("Scale-out device certificate", urls, root)
}

impl Farm {
    fn token(&self) -> String {
        self.cluster
            .layout()
            .secret("policy-admin.token")
            .unwrap()
            .expose()
            .to_owned()
    }

    /// Registers `name` through policy instance `via` and assigns it the profile there.
    async fn device(&self, name: &str, via: usize) -> RemoteDevice {
        let d = RemoteDevice::register(
            &self.cluster.policy_url(via),
            &self.token(),
            name,
            self.devices.path(),
        )
        .await
        .unwrap();
        self.admin[via].assign_device(PROFILE, &d.id).await.unwrap();
        d
    }

    /// Every certificate in the CA's store, by serial (normalized hex).
    async fn ca_store(&self) -> HashMap<String, Vec<u8>> {
        self.cluster.ca_certificates().await.unwrap()
    }

    /// The serials the policy module's inventory holds for a device, read through `via`.
    async fn inventory(&self, device_id: &str, via: usize) -> BTreeSet<String> {
        let view = self.admin[via].device(device_id).await.unwrap();
        view["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| scep_lab_tests::normalize_serial(c["serial_hex"].as_str().unwrap()))
            .collect()
    }
}

fn subject_cn(cert: &X509) -> String {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_challenge_minted_on_one_instance_is_redeemed_through_the_other() {
    let Some(f) = farm().await else { return };
    let mut serials = BTreeSet::new();
    for i in 0..8usize {
        let name = format!("XI-{i:02}");
        // Registered and challenged through policy instance `minted`; the request goes to
        // ndes-proxy `served`, which verifies with the other policy instance.
        let minted = i % 2;
        let served = 1 - minted;
        let device = f.device(&name, minted).await;
        let profile = device
            .rendered(&f.cluster.policy_url(minted), PROFILE)
            .await
            .unwrap();
        let enrollment = Enrollment::new(&profile).unwrap();
        let rep = enrollment.send(&f.scep[served]).await.unwrap();
        let cert = issued_to(&rep, &enrollment).unwrap();
        assert_eq!(subject_cn(&cert), name);
        let serial = serial_of(&cert).unwrap();
        assert!(
            serials.insert(serial.clone()),
            "serial {serial} issued twice"
        );
        // Notify went through the serving pair; the minting instance sees it too.
        assert!(
            f.inventory(&device.id, minted).await.contains(&serial),
            "policy instance {minted} does not list {serial} for {name}"
        );
    }
    let store = f.ca_store().await;
    for s in &serials {
        assert!(store.contains_key(s), "serial {s} not in the CA store");
    }
    // Both ndes-proxy instances issued (requests alternated), each through its own policy pair.
    for i in 0..2 {
        let log = f.cluster.log(ServiceId::new(Role::Ndes, i));
        let issued = log.matches("issued transaction_id=").count();
        assert!(issued >= 4, "ndes-proxy {i} issued {issued}, not 4:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_challenge_raced_through_both_instances_yields_exactly_one_certificate() {
    let Some(f) = farm().await else { return };
    for round in 0..6usize {
        let name = format!("RACE-{round:02}");
        let device = f.device(&name, round % 2).await;
        let profile = device
            .rendered(&f.cluster.policy_url(round % 2), PROFILE)
            .await
            .unwrap();
        // Two requests (two keys, two transactionIDs) carrying the same one-time challenge.
        let a = Enrollment::new(&profile).unwrap();
        let b = Enrollment::new(&profile).unwrap();
        let (ra, rb) = tokio::join!(a.send(&f.scep[0]), b.send(&f.scep[1]));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let wins = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, CertRep::Success(_)))
            .count();
        assert_eq!(wins, 1, "round {round}: {ra:?} / {rb:?}");
        let loser = if matches!(ra, CertRep::Success(_)) {
            &rb
        } else {
            &ra
        };
        assert!(
            matches!(loser, CertRep::Failure { .. }),
            "round {round}: the loser got {loser:?}"
        );
        let inventory = f.inventory(&device.id, 0).await;
        assert_eq!(inventory.len(), 1, "round {round}: {inventory:?}");
    }
    // Six devices, six certificates (plus the two RA certificates).
    let store = f.ca_store().await;
    let device_certs = store
        .values()
        .filter(|der| subject_cn(&X509::from_der(der).unwrap()).starts_with("RACE-"))
        .count();
    assert_eq!(device_certs, 6);
    // I3 across instances: no challenge has two certificates (the reconciler checks it).
    scep_lab_tests::ensure_clean(&f.cluster.reconcile().await.unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_an_ndes_proxy_a_policy_module_and_the_ca_under_load_loses_nothing() {
    const DEVICES: usize = 60;
    const CONCURRENCY: usize = 8;
    let Some(mut f) = farm().await else { return };

    // Every client prepared up front: registered, challenged, key and CSR fixed.
    let mut enrollments = Vec::new();
    let mut device_ids = Vec::new();
    for i in 0..DEVICES {
        let name = format!("LOAD-{i:03}");
        let device = f.device(&name, i % 2).await;
        let profile = device
            .rendered(&f.cluster.policy_url(i % 2), PROFILE)
            .await
            .unwrap();
        enrollments.push(Enrollment::new(&profile).unwrap());
        device_ids.push(device.id);
    }

    // A client whose server died or answered 503 resends the identical request, alternating
    // instances: bounded, and never with a new transactionID.
    let load = RetryingLoad::start(enrollments, f.scep.to_vec(), CONCURRENCY);

    // The faults, each once a share of the clients has finished (or all have).
    let ndes0 = ServiceId::new(Role::Ndes, 0);
    let policy1 = ServiceId::new(Role::Policy, 1);
    load.wait_for(DEVICES / 6).await;
    f.cluster.kill(ndes0).unwrap();
    load.wait_for(DEVICES / 3).await;
    f.cluster.restart(ndes0).await.unwrap();
    f.cluster.kill(policy1).unwrap();
    load.wait_for(DEVICES / 2).await;
    f.cluster.restart(policy1).await.unwrap();
    // And the CA itself (F1): granted requests queue durably (PENDING) or get 503 meanwhile.
    let ca = ServiceId::new(Role::Ca, 0);
    load.wait_for(DEVICES * 2 / 3).await;
    f.cluster.kill(ca).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.cluster.restart(ca).await.unwrap();

    let outcomes: Vec<_> = load
        .finish()
        .await
        .unwrap()
        .into_iter()
        .enumerate()
        .collect();
    assert_eq!(outcomes.len(), DEVICES);
    let retried = outcomes.iter().filter(|(_, o)| o.attempts > 1).count();
    assert!(retried > 0, "no client ever met a dead instance");

    // Every certificate a client holds is in the CA's store, byte for byte; no serial twice;
    // nothing issued twice for a retried transaction.
    let store = f.ca_store().await;
    let mut serials = BTreeSet::new();
    for (i, o) in &outcomes {
        assert!(
            serials.insert(o.serial.clone()),
            "serial {} twice",
            o.serial
        );
        assert_eq!(
            store.get(&o.serial),
            Some(&o.der),
            "client {i}'s certificate {} is not in the CA store",
            o.serial
        );
    }
    let load_certs = store
        .values()
        .filter(|der| subject_cn(&X509::from_der(der).unwrap()).starts_with("LOAD-"))
        .count();
    assert_eq!(
        load_certs, DEVICES,
        "a retried transaction was issued twice"
    );
    // And the policy module learned of every one (Notify, resent with the retries).
    for (i, o) in &outcomes {
        let inventory = f.inventory(&device_ids[*i], i % 2).await;
        assert!(
            inventory.contains(&o.serial),
            "device {i}'s serial {} missing from the inventory {inventory:?}",
            o.serial
        );
    }
    // The reconciler (scep-lab audit) finds nothing across the stores, the CRL and OCSP.
    scep_lab_tests::ensure_clean(&f.cluster.reconcile().await.unwrap()).unwrap();
}
