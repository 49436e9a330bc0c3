//! `tektra run`: one prompt in, a streamed answer out.

use std::io::Write;

use tektra::runtime::Runtime;
use tektra_inference::{GenerationStats, Message, ModelRef, Prompt, StopReason};

use super::EXIT_CANCELLED;
use super::model_args::{ModelArgs, SamplingArgs};
use super::report::{Display, print_error};
use super::signal::cancel_on_ctrl_c;

/// Run a model on one prompt: the answer on stdout, the stages on stderr.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(super) model: ModelArgs,
    /// The prompt.
    #[arg(long, short)]
    prompt: String,
    /// A system message (chat models).
    #[arg(long)]
    system: Option<String>,
    /// Send the prompt as is, without the model's chat template.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// Loads `model` with its stages shown on stderr (as `--json`/`--quiet` say);
/// on failure prints the one-line reason and gives the exit code.
pub(crate) async fn load(
    model: &ModelArgs,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Runtime, i32> {
    let display = Display::start(model.output.mode());
    let loaded = load_reporting_to(model, &display, cancel).await;
    display.finish().await;
    loaded.map_err(|(reason, code)| {
        print_error(model.output.json, &reason);
        code
    })
}

/// The load itself, its events to `display`; the reason and exit code on failure.
async fn load_reporting_to(
    model: &ModelArgs,
    display: &Display,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Runtime, (String, i32)> {
    let options = model.engine_options().map_err(|e| (e, 2))?;
    let reference: ModelRef = model
        .model
        .parse()
        .map_err(|e: tektra_inference::Error| (e.to_string(), 2))?;
    match Runtime::load(&reference, &options, display.reporter(), cancel).await {
        Ok(rt) => Ok(rt),
        Err(e) if e.is_cancelled() => Err(("cancelled".into(), EXIT_CANCELLED)),
        Err(e) => Err((e.to_string(), 1)),
    }
}

/// One line (or one JSON object) of figures on stderr.
pub(crate) fn print_stats(stats: &GenerationStats, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(&serde_json::json!({ "stats": stats })) {
            eprintln!("{line}");
        }
        return;
    }
    let reason = match stats.stop_reason {
        StopReason::Eos => "end of answer",
        StopReason::StopString => "stop string",
        StopReason::MaxTokens => "max tokens",
        StopReason::Cancelled => "cancelled",
    };
    eprintln!(
        "[{} prompt tokens, {} generated; first token after {:.2} s; {:.1} tokens/s; prompt {:.0} tokens/s; {reason}]",
        stats.prompt_tokens,
        stats.generated_tokens,
        stats.time_to_first_token.as_secs_f64(),
        stats.tokens_per_sec,
        stats.prompt_tokens_per_sec,
    );
}

pub(crate) async fn run(args: Args) -> i32 {
    let cancel = cancel_on_ctrl_c();
    let runtime = match load(&args.model, &cancel).await {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let chat = !args.raw && runtime.info().has_chat_template;
    let prompt = if chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::system(system.clone()));
        }
        messages.push(Message::user(args.prompt.clone()));
        Prompt::Chat(messages)
    } else {
        Prompt::Text(args.prompt.clone())
    };
    let mut generation = runtime.generate(prompt, args.sampling.sampling(), cancel.clone());
    let mut stdout = std::io::stdout();
    while let Some(piece) = generation.text.recv().await {
        let _ = stdout.write_all(piece.as_bytes());
        let _ = stdout.flush();
    }
    let _ = writeln!(stdout);
    match generation.done.await {
        Ok(Ok(stats)) => {
            print_stats(&stats, args.model.output.json);
            if stats.stop_reason == StopReason::Cancelled {
                EXIT_CANCELLED
            } else {
                0
            }
        }
        Ok(Err(e)) => {
            print_error(args.model.output.json, &e);
            1
        }
        Err(e) => {
            print_error(
                args.model.output.json,
                &format!("generation task failed: {e}"),
            );
            1
        }
    }
}
