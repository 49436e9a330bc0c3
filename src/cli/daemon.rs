//! `tektra daemon`: the stack as a local service (crate `tektra-daemon`).

use std::net::SocketAddr;
use std::time::Duration;

use tektra_daemon::{Config, Daemon};
use tektra_inference::{BackendKind, EngineOptions};

use super::model_args::HubArgs;
use super::signal::cancel_on_ctrl_c;

/// Serve an OpenAI-compatible API, model jobs with live progress, health,
/// metrics and a web page.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where to listen. An address other machines can reach needs --api-key.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// A model to load at start and keep loaded (repeatable); /health says
    /// 503 until they are in. A Hub reference or a local file or folder.
    #[arg(long)]
    model: Vec<String>,
    /// Clients must send `Authorization: Bearer KEY` to /v1 and /metrics.
    #[arg(long, env = "TEKTRA_API_KEY")]
    api_key: Option<String>,
    /// A browser origin allowed to call (repeatable), besides the daemon's
    /// own page and tauri://localhost.
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Unload a model loaded by a request after this long unused (`0`: never).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Requests queued or running per model before a 429.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Memory (MiB) the loaded models may take together; the least
    /// recently used are unloaded beyond it.
    #[arg(long, value_name = "MIB")]
    memory_budget: Option<u64>,
    /// Backend: auto, native, candle or mistralrs.
    #[arg(long, default_value = "auto")]
    engine: String,
    /// Kernel threads of the native backend [default: every CPU this process may use].
    #[arg(long)]
    threads: Option<usize>,
    /// Longest context (prompt + answer) to plan memory for.
    #[arg(long, default_value_t = 4096)]
    max_context: usize,
    #[command(flatten)]
    hub: HubArgs,
}

/// By hand: the API key must never reach a log or a panic message.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("addr", &self.addr)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("allow_origin", &self.allow_origin)
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl Args {
    fn config(&self) -> Result<Config, String> {
        let backend: BackendKind = self
            .engine
            .parse()
            .map_err(|e: tektra_inference::Error| e.to_string())?;
        if self.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        if self.queue == 0 {
            return Err("--queue must be at least 1".into());
        }
        Ok(Config {
            addr: self.addr,
            models: self.model.clone(),
            api_key: self.api_key.clone().filter(|k| !k.is_empty()),
            allow_origins: self.allow_origin.clone(),
            engine: EngineOptions {
                backend,
                hub: self.hub.options(),
                max_context: self.max_context,
                threads: self.threads,
                ..EngineOptions::default()
            },
            queue: self.queue,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
            memory_budget: self.memory_budget.map(|mib| mib << 20),
            ..Config::default()
        })
    }
}

pub(crate) async fn run(args: Args) -> i32 {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let open = !config.addr.ip().is_loopback();
    let daemon = match Daemon::start(config).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if open {
        eprintln!(
            "tektra daemon: {} is reachable from other machines; every /v1 and /metrics request needs the API key",
            daemon.addr()
        );
    }
    eprintln!(
        "tektra daemon: listening on {} (Ctrl-C stops)",
        daemon.url()
    );
    println!("{}", daemon.url());
    cancel_on_ctrl_c().cancelled().await;
    daemon.shutdown();
    daemon.wait().await;
    0
}
