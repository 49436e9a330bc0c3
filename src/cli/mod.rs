//! Command-line parsing and dispatch. One file per subcommand.

mod cache;
mod chat;
mod daemon;
mod download;
mod load;
mod model_args;
mod rate;
mod report;
mod run;
mod serve;
mod signal;
mod store_args;

use clap::{Parser, Subcommand};

/// Local models from the Hub to tokens.
#[derive(Debug, Parser)]
#[command(name = "tektra", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Download files of a Hub repo into the cache (verified, resumable).
    Download(download::Args),
    /// Serve a folder of repos, or a cache, as a Hub (a mirror for HF_ENDPOINT).
    Serve(serve::Args),
    /// Load a model's weights with per-file progress and report what it took.
    Load(load::Args),
    /// Run a model on one prompt, streaming the answer.
    Run(run::Args),
    /// Chat with a model.
    Chat(chat::Args),
    /// Serve an OpenAI-compatible API, model jobs with live progress, and a web page.
    Daemon(daemon::Args),
    /// List, verify, remove and prune what the Hub cache holds.
    Cache(cache::Args),
}

/// Exit status for a run stopped by Ctrl-C.
pub(crate) const EXIT_CANCELLED: i32 = 130;

/// Log filter without TEKTRA_LOG. hf-xet logs every retry of its own; what
/// matters reaches the user as our error or fallback note, so its crates stay
/// quiet unless asked for (e.g. `TEKTRA_LOG=warn,xet_client=warn`).
const DEFAULT_LOG: &str =
    "warn,xet=off,xet_client=off,xet_data=off,xet_runtime=off,xet_core_structures=off";

impl Command {
    /// Whether stderr carries NDJSON for a UI rather than text for a person.
    fn json_output(&self) -> bool {
        match self {
            Command::Download(args) => args.output.json,
            Command::Load(args) => args.output.json,
            Command::Run(args) => args.model.output.json,
            Command::Chat(args) => args.model.output.json,
            Command::Cache(args) => args.json_output(),
            Command::Serve(_) | Command::Daemon(_) => false,
        }
    }
}

/// Log records go to stderr; under `--json` they are JSON objects too (with a
/// `level` key), so that a dependency's warning cannot break the NDJSON a UI
/// parses.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TEKTRA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init();
    } else {
        logs.init();
    }
}

/// Runs the command line; returns the process exit code.
pub(crate) fn main() -> i32 {
    let cli = Cli::parse();
    let json = cli.command.json_output();
    init_logging(json);
    if json {
        report::install_json_panic_hook();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Download(args) => download::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Load(args) => load::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Chat(args) => chat::run(args).await,
            Command::Daemon(args) => daemon::run(args).await,
            Command::Cache(args) => cache::run(args).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// Every subcommand that takes `--token`: the token is not in `{:?}`.
    #[test]
    fn tokens_never_appear_in_debug_output() {
        for args in [
            &["tektra", "download", "org/m", "--token", "hf_secret_value"][..],
            &["tektra", "load", "org/m", "--token", "hf_secret_value"],
            &[
                "tektra",
                "run",
                "--prompt",
                "hi",
                "--token",
                "hf_secret_value",
            ],
            &["tektra", "chat", "--token", "hf_secret_value"],
            &["tektra", "daemon", "--api-key", "hf_secret_value"],
            &[
                "tektra",
                "serve",
                "/srv",
                "--private",
                "org/m=hf_secret_value",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let text = format!("{cli:?} {cli:#?}");
            assert!(!text.contains("hf_secret_value"), "{args:?}: {text}");
            assert!(text.contains("<redacted>"), "{args:?}: {text}");
        }
    }
}
