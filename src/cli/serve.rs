//! `tektra serve DIR`: a Hub over a folder of repos or a cache, or a
//! pull-through mirror of another Hub (`--upstream`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tektra_hub_server::{FaultPlan, Limits, PublicUrl, Server, Store, StoreError, parse_repo_id};

/// Serve a folder of repos (`org/name/...`) or a hub cache as a Hub.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// A folder of repos (`org/name/files`, `datasets/org/name/...`) or a hub cache.
    dir: PathBuf,
    /// Address of the Hub origin (use it as HF_ENDPOINT).
    #[arg(long, default_value = "127.0.0.1:8090")]
    addr: SocketAddr,
    /// Address of the CDN origin that LFS files redirect to [default: the
    /// --addr address, any free port].
    #[arg(long)]
    cdn_addr: Option<SocketAddr>,
    /// The URL clients reach this server by (`http://HOST[:PORT]`): links
    /// (LFS redirects, next pages, Xet) name it [default: the Host each
    /// request names].
    #[arg(long, value_name = "URL")]
    public_url: Option<PublicUrl>,
    /// Make REPO private, readable with TOKEN (repeatable):
    /// `--private org/name=TOKEN`, `--private datasets/org/name=TOKEN`.
    #[arg(long, value_name = "REPO=TOKEN")]
    private: Vec<String>,
    /// Cap each answer's body at this many bytes per second (testing, benchmarks).
    #[arg(long)]
    rate_limit: Option<u64>,
    /// Send at most this much to all clients together (e.g. 50MB/s).
    #[arg(long, value_name = "RATE", value_parser = super::rate::parse_rate)]
    max_rate: Option<u64>,
    /// Send at most this much to each client address (e.g. 10MB/s).
    #[arg(long, value_name = "RATE", value_parser = super::rate::parse_rate)]
    max_rate_per_client: Option<u64>,
    /// Most connections open at once (more wait until one closes).
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Serve the files that symlinks in DIR point to wherever they are
    /// (a mirror assembled from links) [default: only links to files inside
    /// DIR; a hub cache is always read that way].
    #[arg(long)]
    follow_links: bool,
    /// Open the test controls: `POST /_tektra/faults` lets ANY client make
    /// the server lie (flipped bytes, wrong sizes), `GET /_tektra/stats`
    /// counts what it served. For tests and benchmarks on loopback only.
    #[arg(long)]
    test_controls: bool,
    /// Be a pull-through mirror of this Hub: DIR is the mirror's hub cache
    /// (made if missing); what it lacks is fetched from URL once, verified,
    /// and streamed to every client asking meanwhile.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// The mirror's own token for the upstream, used only for the
    /// --allow-repo repos (better given by the environment: it is then not
    /// in the process list).
    #[arg(
        long,
        env = "TEKTRA_UPSTREAM_TOKEN",
        hide_env_values = true,
        requires = "upstream",
        value_name = "TOKEN"
    )]
    upstream_token: Option<String>,
    /// A repo the mirror reads with its own token and serves to every
    /// client (repeatable; other private repos are served only to clients
    /// whose own token the upstream accepts).
    #[arg(long, requires = "upstream_token", value_name = "REPO")]
    allow_repo: Vec<String>,
    /// How long a branch's commit and an accepted client token are trusted
    /// before the upstream is asked again (a commit hash never expires).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, requires = "upstream")]
    upstream_ttl: Duration,
    /// Share a blob tier with other mirrors in this object store
    /// (`s3://bucket/prefix` or `file:///dir`): files the cache lacks are
    /// read from it (hashed) before the upstream is asked, and what the
    /// upstream sends is written to it. S3 credentials come from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    #[arg(long, value_name = "URL", requires = "upstream")]
    store: Option<String>,
    #[command(flatten)]
    store_args: super::store_args::StoreArgs,
    /// Also serve LFS files from a Xet CAS (uploaded with hf-xet at start):
    /// resolve answers carry X-Xet-Hash, and the token endpoint works.
    #[cfg(feature = "xet")]
    #[arg(long)]
    xet: bool,
    /// Keep the CAS's data in this folder instead of in memory.
    #[cfg(feature = "xet")]
    #[arg(long, requires = "xet", value_name = "DIR")]
    xet_dir: Option<PathBuf>,
}

/// By hand: the `--private` tokens must never reach a log or a panic message.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let private: Vec<String> = self
            .private
            .iter()
            .map(|spec| match spec.split_once('=') {
                Some((repo, _)) => format!("{repo}=<redacted>"),
                None => "<redacted>".to_string(),
            })
            .collect();
        let mut s = f.debug_struct("Args");
        s.field("dir", &self.dir)
            .field("addr", &self.addr)
            .field("cdn_addr", &self.cdn_addr)
            .field("public_url", &self.public_url)
            .field("private", &private)
            .field("rate_limit", &self.rate_limit)
            .field("max_rate", &self.max_rate)
            .field("max_rate_per_client", &self.max_rate_per_client)
            .field("max_connections", &self.max_connections)
            .field("follow_links", &self.follow_links)
            .field("test_controls", &self.test_controls)
            .field("upstream", &self.upstream)
            .field(
                "upstream_token",
                &self.upstream_token.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_repo", &self.allow_repo)
            .field("upstream_ttl", &self.upstream_ttl)
            .field("store", &self.store)
            .field("store_args", &self.store_args);
        #[cfg(feature = "xet")]
        s.field("xet", &self.xet).field("xet_dir", &self.xet_dir);
        s.finish()
    }
}

/// Applies every `--private REPO=TOKEN` to `store`; an error names the
/// first that is malformed or names no served repo (a typo must not leave
/// a repo public).
fn make_private(store: &mut Store, specs: &[String]) -> Result<(), String> {
    for spec in specs {
        let Some((repo, token)) = spec.split_once('=') else {
            return Err("--private takes REPO=TOKEN".to_string());
        };
        if token.is_empty() {
            return Err(format!("--private {repo}=: the token is empty"));
        }
        let Some((kind, id)) = parse_repo_id(repo) else {
            return Err(format!(
                "--private {repo:?}: not a repo id (org/name, datasets/org/name, spaces/org/name)"
            ));
        };
        if !store.set_tokens(kind, &id, vec![token.to_string()]) {
            let mut known: Vec<String> = store
                .repos
                .keys()
                .map(|(k, id)| match k.plural() {
                    "models" => id.clone(),
                    plural => format!("{plural}/{id}"),
                })
                .collect();
            known.sort();
            return Err(format!(
                "--private {repo:?}: no such repo is served (served: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

pub(crate) async fn run(args: Args) -> i32 {
    let opened = if args.follow_links {
        Store::open(&args.dir)
    } else {
        Store::open_confined(&args.dir)
    };
    let mut store = match opened {
        Ok(store) => store,
        // A new mirror starts empty.
        Err(StoreError::Empty(_)) if args.upstream.is_some() => Store::default(),
        Err(StoreError::Io { source, .. })
            if args.upstream.is_some() && source.kind() == std::io::ErrorKind::NotFound =>
        {
            if let Err(e) = std::fs::create_dir_all(&args.dir) {
                eprintln!(
                    "error: cannot make the mirror's cache {}: {e}",
                    args.dir.display()
                );
                return 1;
            }
            Store::default()
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if let Err(e) = make_private(&mut store, &args.private) {
        eprintln!("error: {e}");
        return 2;
    }
    let repos = store.repos.len();
    let plan = FaultPlan {
        rate_limit: args.rate_limit,
        ..FaultPlan::default()
    };
    let limits = Limits {
        max_connections: args.max_connections.max(1),
        ..Limits::default()
    };
    let mut builder = Server::builder(store)
        .hub_addr(args.addr)
        .faults(plan)
        .limits(limits)
        .max_rate(tektra_hub_server::RateLimits {
            total: args.max_rate,
            per_client: args.max_rate_per_client,
        })
        .test_controls(args.test_controls);
    if let Some(addr) = args.cdn_addr {
        builder = builder.cdn_addr(addr);
    }
    if let Some(url) = args.public_url.clone() {
        builder = builder.public_url(url);
    }
    if let Some(upstream) = &args.upstream {
        let mut options = tektra_mirror::MirrorOptions::new(upstream, args.dir.clone());
        options.token.clone_from(&args.upstream_token);
        options.allow.clone_from(&args.allow_repo);
        options.ttl = args.upstream_ttl;
        if let Some(url) = &args.store {
            match args.store_args.open(url) {
                Ok(store) => options.store = Some(store),
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            }
            eprintln!("sharing blobs through {url}");
        }
        match tektra_mirror::Mirror::new(options) {
            Ok(mirror) => builder = builder.upstream(Arc::new(mirror)),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
        eprintln!("mirroring {upstream} into {}", args.dir.display());
    }
    if args.test_controls {
        eprintln!(
            "WARNING: --test-controls: any client that reaches this server can inject faults \
             (POST /_tektra/faults) and read its counters; use on loopback for tests only"
        );
    }
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
    if server.hub_addr().ip().is_unspecified() && args.public_url.is_none() {
        eprintln!(
            "listening on every address, port {}: other machines use http://<this machine>:{} \
             (links follow the name they use)",
            server.hub_addr().port(),
            server.hub_addr().port()
        );
    }
    // The first stdout line is the endpoint, for scripts to read.
    println!("HF_ENDPOINT={}", server.url());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown();
    0
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn tokens_never_appear_in_debug_output() {
        let cli = Cli::try_parse_from([
            "serve",
            "/srv",
            "--private",
            "org/a=hf_secret_one",
            "--private",
            "datasets/org/b=hf_secret_two",
            "--private",
            "malformed_secret",
            "--upstream",
            "http://127.0.0.1:9",
            "--upstream-token",
            "hf_secret_three",
            "--allow-repo",
            "org/c",
        ])
        .unwrap();
        let text = format!("{cli:?} {cli:#?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("org/a=<redacted>"), "{text}");
        assert!(text.contains("datasets/org/b=<redacted>"), "{text}");
        assert!(
            text.contains("upstream_token: Some(\"<redacted>\")"),
            "{text}"
        );
    }
}
