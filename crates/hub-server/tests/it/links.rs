//! Links name the host the client used (or the public URL), never the
//! address the server is bound to, and the CDN listens beside the Hub.
//! 127.0.0.2 plays a second host (it is loopback).

use std::net::SocketAddr;

use tektra_hub_server::{PublicUrl, Server, Store};

use crate::common::{header, put, raw_get, repos};

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

async fn get(hub: SocketAddr, path: &str, host: &str) -> (String, Vec<(String, String)>) {
    let (path, host) = (path.to_string(), host.to_string());
    tokio::task::spawn_blocking(move || raw_get(hub, &path, &host))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn links_follow_the_host_the_client_used() {
    let dir = repos();
    put(dir.path(), "org/model/b.txt", b"b");
    let server = Server::builder(Store::open(dir.path()).unwrap())
        .hub_addr("127.0.0.2:0".parse().unwrap())
        .page_size(1)
        .start()
        .await
        .unwrap();
    let hub = server.hub_addr();
    assert_eq!(server.url(), format!("http://{hub}"));
    let cdn = addr(&server.cdn_url());
    assert_eq!(cdn.ip(), hub.ip(), "the CDN listens beside the Hub origin");

    let host = format!("mirror.lan:{}", hub.port());
    let (status, headers) = get(hub, "/org/model/resolve/main/weights.bin", &host).await;
    assert!(status.contains("302"), "{status}");
    let location = header(&headers, "location").unwrap();
    assert!(
        location.starts_with(&format!("http://mirror.lan:{}/cdn/", cdn.port())),
        "{location}"
    );
    let (status, headers) = get(hub, "/api/models/org/model/tree/main?recursive=true", &host).await;
    assert!(status.contains("200"), "{status}");
    let next = header(&headers, "link").unwrap();
    assert!(
        next.starts_with(&format!("<http://{host}/api/models/org/model/tree/main")),
        "{next}"
    );
    // A Host that could smuggle text into a header is refused.
    for bad in ["evil>; rel=\"next\"", "a b", "x/y:1"] {
        let (status, headers) = get(hub, "/org/model/resolve/main/weights.bin", bad).await;
        assert!(status.contains("400"), "{bad}: {status}");
        assert!(header(&headers, "location").is_none());
    }
    // And a real client through the name 127.0.0.2 gets the file via the CDN.
    tektra_hub_server::install_tls_provider();
    let body = reqwest::get(format!(
        "{}/org/model/resolve/main/weights.bin",
        server.url()
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    assert_eq!(&body[..], &[7u8; 4096][..]);
    assert_eq!(server.stats().cdn_requests, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_url_overrides_the_host() {
    let dir = repos();
    let public: PublicUrl = "http://hub.example:9000".parse().unwrap();
    let server = Server::builder(Store::open(dir.path()).unwrap())
        .public_url(public)
        .start()
        .await
        .unwrap();
    assert_eq!(server.url(), "http://hub.example:9000");
    let cdn = addr(&server.cdn_url());
    let (status, headers) = get(
        server.hub_addr(),
        "/org/model/resolve/main/weights.bin",
        "whatever.lan",
    )
    .await;
    assert!(status.contains("302"), "{status}");
    let location = header(&headers, "location").unwrap();
    assert!(
        location.starts_with(&format!("http://hub.example:{}/cdn/", cdn.port())),
        "{location}"
    );
}
