//! The device list a page at a time (issue 18: the console pages 10,000 devices through the
//! API instead of reading them all): by id, with a case-insensitive search of id, name, serial
//! number and owner, deleted devices left out, and the total in `X-Total-Count`.

use policy_module::admin::Lifecycle;
use policy_module::model::DeviceSpec;
use policy_module::store::DeviceSearch;
use serde_json::Value;

use crate::api::{ADMIN, start};
use crate::both;
use crate::harness::{Harness, device_spec};

both!(devices_are_paged_searched_and_counted);

fn spec(i: usize) -> DeviceSpec {
    DeviceSpec {
        name: format!("Laptop-{i:02}"),
        serial_number: Some(format!("SN-{i:02}")),
        owner_upn: Some(format!("user{i:02}@contoso.example")),
        ..device_spec(&format!("dev-{i:02}"))
    }
}

async fn ids(h: &Harness, needle: Option<&str>, offset: i64, limit: i64) -> (Vec<String>, i64) {
    let q = DeviceSearch {
        needle: needle.map(Into::into),
        offset,
        limit,
    };
    let (devices, total) = h.svc.store().search_devices(&q).await.unwrap();
    (devices.into_iter().map(|d| d.id).collect(), total)
}

async fn devices_are_paged_searched_and_counted(h: Harness) {
    for i in 1..=12 {
        h.svc.register_device(spec(i)).await.unwrap();
    }
    h.svc.lifecycle("dev-12", Lifecycle::Delete).await.unwrap();
    // Pages by id, the deleted one left out of pages and count.
    let (first, total) = ids(&h, None, 0, 5).await;
    assert_eq!(total, 11);
    assert_eq!(first, ["dev-01", "dev-02", "dev-03", "dev-04", "dev-05"]);
    let (last, _) = ids(&h, None, 10, 5).await;
    assert_eq!(last, ["dev-11"]);
    // Search: any of the four fields, any case; wildcards are literal.
    assert_eq!(
        ids(&h, Some("USER07@"), 0, 5).await,
        (vec!["dev-07".into()], 1)
    );
    assert_eq!(ids(&h, Some("laptop-1"), 0, 5).await.1, 2);
    assert_eq!(ids(&h, Some("sn-03"), 0, 5).await.0, ["dev-03"]);
    assert_eq!(ids(&h, Some("DEV-04"), 0, 5).await.0, ["dev-04"]);
    assert_eq!(ids(&h, Some("dev-12"), 0, 5).await.1, 0);
    for literal in ["%", "_", "dev-0_"] {
        assert_eq!(ids(&h, Some(literal), 0, 5).await.1, 0, "{literal}");
    }

    // Over HTTP: the header, the default (every device), the 400s.
    let s = start(&h).await;
    let get = |q: &str| s.req("get", &format!("/api/v1/devices{q}"), Some(ADMIN));
    let r = get("?offset=5&limit=5&q=laptop").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-total-count"], "11");
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page.len(), 5);
    assert_eq!(page[0]["id"], "dev-06");
    let r = get("").send().await.unwrap();
    assert_eq!(r.headers()["x-total-count"], "11");
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 11);
    for bad in ["?limit=0", "?limit=1001", "?offset=-1"] {
        assert_eq!(get(bad).send().await.unwrap().status(), 400, "{bad}");
    }
    let long = format!("?q={}", "x".repeat(257));
    assert_eq!(get(&long).send().await.unwrap().status(), 400);
}
