//! Connection limits: a header deadline, an idle timeout and a cap, each
//! checked by a client that breaks the rule (and the figure printed).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tektra_hub_server::{Limits, Server, Store};

use crate::common::{header, put, raw_get, repos};

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// Reads until the server closes; how long that took and how many bytes
/// came. Gives up after `limit` (a server that never closes).
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Duration, usize) {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) if start.elapsed() >= limit => {
                panic!("the server kept the connection open for {limit:?}")
            }
            Ok(0) => return (start.elapsed(), total),
            Ok(n) => total += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (start.elapsed(), total),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_sent_too_slowly_end_the_connection() {
    let dir = repos();
    let server = Server::builder(Store::open(dir.path()).unwrap())
        .limits(Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let hub = addr(&server.url());
    let took = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(hub).unwrap();
        // Half a request, then silence (a slowloris client).
        stream
            .write_all(b"GET /api/models/org/model/revision/main HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        read_until_closed(&mut stream, Duration::from_secs(20)).0
    })
    .await
    .unwrap();
    eprintln!("closed {took:?} after the half request (deadline 300 ms)");
    assert!(
        took >= Duration::from_millis(250),
        "closed before the deadline: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_dropped_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let size = 64 << 20;
    put(dir.path(), "org/model/big.txt", &vec![b'x'; size]);
    let server = Server::builder(Store::open(dir.path()).unwrap())
        .limits(Limits {
            idle_timeout: Duration::from_millis(500),
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let hub = addr(&server.url());
    let (took, got) = tokio::task::spawn_blocking(move || {
        // An LFS-sized file: the Hub sends it to the CDN origin.
        let (status, headers) = raw_get(hub, "/org/model/resolve/main/big.txt", &hub.to_string());
        assert!(status.contains("302"), "{status}");
        let location = header(&headers, "location").unwrap().to_string();
        let rest = location.trim_start_matches("http://");
        let (cdn, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = TcpStream::connect(cdn).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {cdn}\r\n\r\n").unwrap();
        // Not reading: the socket buffers fill and the server cannot write.
        std::thread::sleep(Duration::from_secs(3));
        read_until_closed(&mut stream, Duration::from_secs(20))
    })
    .await
    .unwrap();
    eprintln!("got {got} of {size} B; closed {took:?} after reading resumed");
    assert!(
        got < size,
        "the whole body arrived: the stalled connection was kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let dir = repos();
    let server = Server::builder(Store::open(dir.path()).unwrap())
        .limits(Limits {
            max_connections: 2,
            ..Limits::default()
        })
        .start()
        .await
        .unwrap();
    let hub = addr(&server.url());
    let url = format!("{}/api/models/org/model/revision/main", server.url());
    tektra_hub_server::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // Two idle connections hold both slots (each within its header deadline).
    let a = TcpStream::connect(hub).unwrap();
    let b = TcpStream::connect(hub).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = client.get(&url).send().await;
    assert!(
        refused.is_err(),
        "a third connection was served: {:?}",
        refused.map(|r| r.status())
    );
    drop(a);
    let served = client.get(&url).send().await.unwrap();
    assert_eq!(served.status(), 200, "a freed slot was not taken");
    drop(b);
}
