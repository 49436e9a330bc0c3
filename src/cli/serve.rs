//! `tektra serve DIR`: a Hub over a folder of repos or a cache.

use std::net::SocketAddr;
use std::path::PathBuf;

use tektra_hub_server::{FaultPlan, Kind, Server, Store};

/// Serve a folder of repos (`org/name/...`) or a hub cache as a Hub.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A folder of repos (`org/name/files`, `datasets/org/name/...`) or a hub cache.
    dir: PathBuf,
    /// Address of the Hub origin (use it as HF_ENDPOINT).
    #[arg(long, default_value = "127.0.0.1:8090")]
    addr: SocketAddr,
    /// Address of the CDN origin that LFS files redirect to.
    #[arg(long, default_value = "127.0.0.1:0")]
    cdn_addr: SocketAddr,
    /// Make REPO private, readable with TOKEN: `--private org/name=TOKEN` (repeatable).
    #[arg(long, value_name = "REPO=TOKEN")]
    private: Vec<String>,
    /// Cap each answer's body at this many bytes per second (testing, benchmarks).
    #[arg(long)]
    rate_limit: Option<u64>,
    /// Also serve LFS files from a Xet CAS on loopback (uploaded with hf-xet
    /// at start): resolve answers carry X-Xet-Hash, and the token endpoint works.
    #[cfg(feature = "xet")]
    #[arg(long)]
    xet: bool,
    /// Keep the CAS's data in this folder instead of in memory.
    #[cfg(feature = "xet")]
    #[arg(long, requires = "xet", value_name = "DIR")]
    xet_dir: Option<PathBuf>,
}

pub(crate) async fn run(args: Args) -> i32 {
    let mut store = match Store::open(&args.dir) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    for spec in &args.private {
        let Some((repo, token)) = spec.split_once('=') else {
            eprintln!("error: --private takes REPO=TOKEN, got {spec:?}");
            return 2;
        };
        store.set_tokens(Kind::Model, repo, vec![token.to_string()]);
    }
    let repos = store.repos.len();
    let plan = FaultPlan {
        rate_limit: args.rate_limit,
        ..FaultPlan::default()
    };
    let builder = Server::builder(store)
        .hub_addr(args.addr)
        .cdn_addr(args.cdn_addr)
        .faults(plan);
    #[cfg(feature = "xet")]
    let builder = if args.xet {
        eprintln!("uploading LFS files to the Xet CAS...");
        builder.xet(args.xet_dir.clone())
    } else {
        builder
    };
    let server = match builder.start().await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot start the server on {}: {e}", args.addr);
            return 1;
        }
    };
    eprintln!("serving {repos} repos from {}", args.dir.display());
    #[cfg(feature = "xet")]
    if let Some(cas) = server.xet_cas_url() {
        eprintln!("Xet CAS at {cas}");
    }
    // The first stdout line is the endpoint, for scripts to read.
    println!("HF_ENDPOINT={}", server.url());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown();
    0
}
