//! `tektra chat`: a conversation. Each line you type is a user message;
//! replies stream as they are generated. Ctrl-C stops the current reply; a
//! second Ctrl-C (or one at the prompt) exits. Works with stdin piped: one
//! message per line, until end of input.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tektra_inference::{Message, Prompt, StopReason};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::EXIT_CANCELLED;
use super::model_args::{ModelArgs, SamplingArgs};
use super::report::print_error;
use super::run::{load, print_stats};

/// Chat with a model.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(super) model: ModelArgs,
    /// A system message that starts the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Print the figures of each reply.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// The reply in progress, which Ctrl-C cancels.
struct Turn {
    current: Mutex<Option<CancellationToken>>,
    last_interrupt: std::sync::Mutex<Option<Instant>>,
}

fn watch_ctrl_c(turn: Arc<Turn>, quit: CancellationToken) {
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            let twice = {
                let mut last = turn
                    .last_interrupt
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let twice = last.is_some_and(|t| t.elapsed() < Duration::from_secs(2));
                *last = Some(Instant::now());
                twice
            };
            let replying = turn
                .current
                .lock()
                .await
                .as_ref()
                .map(CancellationToken::cancel)
                .is_some();
            if twice || !replying {
                quit.cancel();
                std::process::exit(EXIT_CANCELLED);
            }
        }
    });
}

pub(crate) async fn run(args: Args) -> i32 {
    let quit = CancellationToken::new();
    let turn = Arc::new(Turn {
        current: Mutex::new(None),
        last_interrupt: std::sync::Mutex::new(None),
    });
    watch_ctrl_c(turn.clone(), quit.clone());
    let runtime = match load(&args.model, &quit).await {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    if !runtime.info().has_chat_template {
        eprintln!(
            "error: {} has no chat template; use `tektra run --raw`",
            runtime.info().reference
        );
        return 1;
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "chatting with {} (Ctrl-C stops a reply, twice exits)",
            runtime.info().reference
        );
    }
    let mut history: Vec<Message> = args
        .system
        .iter()
        .map(|s| Message::system(s.clone()))
        .collect();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = std::io::stdout();
    loop {
        if interactive {
            let _ = write!(stdout, "> ");
            let _ = stdout.flush();
        }
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return 0,
            Err(e) => {
                print_error(args.model.output.json, &format!("reading stdin: {e}"));
                return 1;
            }
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if matches!(text, "/exit" | "/quit") {
            return 0;
        }
        history.push(Message::user(text.to_string()));
        let cancel = CancellationToken::new();
        *turn.current.lock().await = Some(cancel.clone());
        let mut generation = runtime.generate(
            Prompt::Chat(history.clone()),
            args.sampling.sampling(),
            cancel,
        );
        let mut reply = String::new();
        while let Some(piece) = generation.text.recv().await {
            reply.push_str(&piece);
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        }
        let _ = writeln!(stdout);
        *turn.current.lock().await = None;
        match generation.done.await {
            Ok(Ok(stats)) => {
                if stats.stop_reason == StopReason::Cancelled {
                    eprintln!("[stopped]");
                }
                if args.stats {
                    print_stats(&stats, args.model.output.json);
                }
            }
            Ok(Err(e)) => {
                print_error(args.model.output.json, &e);
                history.pop();
                continue;
            }
            Err(e) => {
                print_error(
                    args.model.output.json,
                    &format!("generation task failed: {e}"),
                );
                return 1;
            }
        }
        // A stopped reply stays in the conversation as far as it got.
        history.push(Message::assistant(reply));
    }
}
