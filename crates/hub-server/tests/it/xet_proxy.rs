//! The Xet CAS proxy lets through reads with a valid read token (and the
//! term fetches reconstructions point to), nothing else.

use std::time::Duration;

use tektra_hub_server::{FaultPlan, Server, Store};

use crate::common::repos;

struct Cas {
    server: Server,
    url: String,
    token: String,
    hash: String,
}

async fn read_token(server: &Server) -> (String, String) {
    tektra_hub_server::install_tls_provider();
    let body: serde_json::Value = reqwest::get(format!(
        "{}/api/models/org/model/xet-read-token/main",
        server.url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    (
        body["casUrl"].as_str().unwrap().to_string(),
        body["accessToken"].as_str().unwrap().to_string(),
    )
}

async fn cas() -> (tempfile::TempDir, Cas) {
    let dir = repos();
    let server = Server::builder(Store::open(dir.path()).unwrap())
        .xet(None)
        .start()
        .await
        .unwrap();
    tektra_hub_server::install_tls_provider();
    let head = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .head(format!(
            "{}/org/model/resolve/main/weights.bin",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    let hash = head.headers()["x-xet-hash"].to_str().unwrap().to_string();
    let (url, token) = read_token(&server).await;
    (
        dir,
        Cas {
            server,
            url,
            token,
            hash,
        },
    )
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_reads_with_a_read_token_reach_the_cas() {
    let (_dir, cas) = cas().await;
    tektra_hub_server::install_tls_provider();
    let http = reqwest::Client::new();
    let reconstruction = format!("{}/v1/reconstructions/{}", cas.url, cas.hash);
    assert_eq!(status(http.get(&reconstruction)).await, 401, "no token");
    assert_eq!(
        status(http.get(&reconstruction).bearer_auth("hf_not_a_xet_token")).await,
        401
    );
    let forged = format!("{}0", &cas.token[..cas.token.len() - 1]);
    assert_eq!(
        status(http.get(&reconstruction).bearer_auth(&forged)).await,
        401
    );
    assert_eq!(
        status(http.get(&reconstruction).bearer_auth(&cas.token)).await,
        200,
        "a read with the token"
    );
    // Reads carry no body.
    assert_eq!(
        status(
            http.get(&reconstruction)
                .bearer_auth(&cas.token)
                .body("xxxx")
        )
        .await,
        413
    );
    // Writes and the simulation's own routes, token or not.
    for (method, path) in [
        (reqwest::Method::POST, "/simulation/set_config"),
        (reqwest::Method::GET, "/simulation/xorbs"),
        (reqwest::Method::POST, "/v1/shards"),
        (
            reqwest::Method::POST,
            &*format!("/v1/xorbs/default/{}", cas.hash),
        ),
        (reqwest::Method::PUT, "/simulation/xorb-uploads/1"),
    ] {
        let answer = http
            .request(method.clone(), format!("{}{path}", cas.url))
            .bearer_auth(&cas.token)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{method} {path}");
    }
    let _ = &cas.server;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_read_token_is_refused() {
    let (_dir, cas) = cas().await;
    cas.server.faults().set(FaultPlan {
        xet_token_ttl_secs: Some(0),
        ..FaultPlan::default()
    });
    let (_, token) = read_token(&cas.server).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reconstruction = format!("{}/v1/reconstructions/{}", cas.url, cas.hash);
    tektra_hub_server::install_tls_provider();
    let http = reqwest::Client::new();
    assert_eq!(
        status(http.get(&reconstruction).bearer_auth(&token)).await,
        401
    );
    assert_eq!(
        status(http.get(&reconstruction).bearer_auth(&cas.token)).await,
        200
    );
}
