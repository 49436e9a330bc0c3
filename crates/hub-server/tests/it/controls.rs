//! `/_tektra/faults` and `/_tektra/stats` answer only when opened.

use tektra_hub_server::{FaultPlan, Server, Store};

use crate::common::repos;

async fn post_faults(url: &str) -> reqwest::StatusCode {
    tektra_hub_server::install_tls_provider();
    reqwest::Client::new()
        .post(format!("{url}/_tektra/faults"))
        .body(r#"{"announced_size": 1}"#)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread")]
async fn control_routes_are_closed_unless_opened() {
    let dir = repos();
    let server = Server::builder(Store::open(dir.path()).unwrap())
        .start()
        .await
        .unwrap();
    assert_eq!(post_faults(&server.url()).await, 404);
    assert_eq!(
        server.faults().plan(),
        FaultPlan::default(),
        "the plan changed"
    );
    tektra_hub_server::install_tls_provider();
    let stats = reqwest::get(format!("{}/_tektra/stats", server.url()))
        .await
        .unwrap();
    assert_eq!(stats.status(), 404);

    let open = Server::builder(Store::open(dir.path()).unwrap())
        .test_controls(true)
        .start()
        .await
        .unwrap();
    assert_eq!(post_faults(&open.url()).await, 200);
    assert_eq!(open.faults().plan().announced_size, Some(1));
}
