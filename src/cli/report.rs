//! How progress is shown: indicatif bars on a terminal, NDJSON for a UI,
//! or nothing. Events arrive on a channel and are drawn on their own task,
//! so drawing never slows the work.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tektra_progress::{Event, SharedReporter, State};
use tokio::task::JoinHandle;

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Bars on stderr (when it is a terminal).
    Bars,
    /// One JSON object per line on stderr.
    Json,
    /// Nothing.
    Quiet,
}

/// How a command reports on stderr: the `--quiet` and `--json` flags every
/// command that does work shares.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct OutputArgs {
    /// No progress output.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Progress, figures and errors as NDJSON on stderr (one JSON object per line).
    #[arg(long)]
    pub(crate) json: bool,
}

impl OutputArgs {
    /// The display mode these flags ask for: `--json` wins, then `--quiet`;
    /// bars only on a terminal.
    pub(crate) fn mode(self) -> Mode {
        if self.json {
            Mode::Json
        } else if self.quiet || !std::io::stderr().is_terminal() {
            Mode::Quiet
        } else {
            Mode::Bars
        }
    }
}

/// A running display; `finish` waits until every event is drawn.
pub(crate) struct Display {
    reporter: SharedReporter,
    task: JoinHandle<()>,
}

impl Display {
    pub(crate) fn start(mode: Mode) -> Display {
        let (reporter, mut events) = tektra_progress::channel();
        let task = tokio::spawn(async move {
            let mut bars = (mode == Mode::Bars).then(Bars::new);
            let mut stderr = std::io::stderr();
            while let Some(event) = events.recv().await {
                match mode {
                    Mode::Json => {
                        if let Ok(line) = serde_json::to_string(&event) {
                            let _ = writeln!(stderr, "{line}");
                        }
                    }
                    Mode::Bars => {
                        if let Some(bars) = bars.as_mut() {
                            bars.on_event(&event);
                        }
                    }
                    Mode::Quiet => {}
                }
            }
            if let Some(bars) = bars {
                bars.done();
            }
        });
        Display {
            reporter: Arc::new(reporter),
            task,
        }
    }

    pub(crate) fn reporter(&self) -> SharedReporter {
        self.reporter.clone()
    }

    /// Drops our sender and waits for the drawing task to drain.
    pub(crate) async fn finish(self) {
        drop(self.reporter);
        let _ = self.task.await;
    }
}

struct Bars {
    multi: MultiProgress,
    files: HashMap<String, ProgressBar>,
    total: Option<ProgressBar>,
}

fn file_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:32!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn rate_eta(rate: f64, eta: Option<f64>) -> String {
    if rate <= 0.0 {
        return String::new();
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let per_sec = HumanBytes(rate as u64);
    match eta {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(secs) => format!("{per_sec}/s, {}s left", secs.ceil() as u64),
        None => format!("{per_sec}/s"),
    }
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            files: HashMap::new(),
            total: None,
        }
    }

    fn bar_for(&mut self, name: &str) -> ProgressBar {
        if let Some(bar) = self.files.get(name) {
            return bar.clone();
        }
        let bar = match &self.total {
            Some(total) => self.multi.insert_before(total, ProgressBar::new(0)),
            None => self.multi.add(ProgressBar::new(0)),
        };
        bar.set_style(file_style());
        let shown: String = {
            let chars: Vec<char> = name.chars().collect();
            if chars.len() > 32 {
                format!("…{}", chars[chars.len() - 31..].iter().collect::<String>())
            } else {
                name.to_string()
            }
        };
        bar.set_prefix(shown);
        self.files.insert(name.to_string(), bar.clone());
        bar
    }

    fn on_event(&mut self, event: &Event) {
        let Some(name) = &event.file else {
            if let Some(message) = &event.message
                && event.state == State::Started
            {
                let _ = self
                    .multi
                    .println(format!("{:?}: {message}", event.stage).to_lowercase());
            }
            return;
        };
        let bar = self.bar_for(name);
        if let Some(total) = event.bytes_total {
            bar.set_length(total);
        }
        bar.set_position(event.bytes_done);
        let note = event.message.clone().unwrap_or_default();
        match event.state {
            State::Queued => bar.set_message("queued"),
            State::Started | State::Downloading => match event.bytes_written {
                // Xet: the bar follows the network; say so when the disk trails.
                Some(written) if written < event.bytes_done => bar.set_message(format!(
                    "{}, {} written",
                    rate_eta(event.rate, event.eta_secs),
                    HumanBytes(written)
                )),
                _ => bar.set_message(rate_eta(event.rate, event.eta_secs)),
            },
            State::Loading => {
                let tensors = match (event.tensors_done, event.tensors_total) {
                    (Some(d), Some(t)) => format!("{d}/{t} tensors "),
                    _ => String::new(),
                };
                bar.set_message(format!("{tensors}{}", rate_eta(event.rate, event.eta_secs)));
            }
            State::Verifying => bar.set_message("verifying"),
            State::Done => bar.finish_with_message(match event.tensors_total {
                Some(t) => format!("{t} tensors, done"),
                None => "done".to_string(),
            }),
            State::Cached => bar.finish_with_message("cached"),
            State::Failed => bar.abandon_with_message(format!("failed: {note}")),
            State::Cancelled => bar.abandon_with_message("cancelled"),
        }
        if !note.is_empty() && !event.state.is_terminal() {
            let _ = self.multi.println(format!("{name}: {note}"));
        }
        self.update_total(event);
    }

    fn update_total(&mut self, event: &Event) {
        let agg = &event.aggregate;
        if agg.files_total < 2 {
            return;
        }
        let total = self.total.get_or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(file_style());
            bar
        });
        total.set_prefix(format!(
            "total ({}/{} files)",
            agg.files_done, agg.files_total
        ));
        if let Some(bytes) = agg.bytes_total {
            total.set_length(bytes);
        }
        total.set_position(agg.bytes_done);
        total.set_message(rate_eta(agg.rate, agg.eta_secs));
    }

    fn done(self) {
        if let Some(total) = self.total {
            total.finish();
        }
    }
}

/// Prints why a command failed, as one line on stderr: `error: REASON`, or
/// under `--json` a JSON object (`{"error": "REASON"}`), so that a UI parsing
/// stderr as NDJSON can read it like every line before it.
pub(crate) fn print_error(json: bool, reason: &dyn std::fmt::Display) {
    if json {
        eprintln!("{}", serde_json::json!({ "error": reason.to_string() }));
    } else {
        eprintln!("error: {reason}");
    }
}

/// Under `--json`, a panic (a bug: none should be reachable) still ends in
/// one JSON line on stderr, `{"error": "internal error: ..."}`, instead of
/// the runtime's text, so a UI reading NDJSON gets a reason it can show.
pub(crate) fn install_json_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = serde_json::json!({
            "error": format!("internal error (a bug in tektra): {message}{place}"),
        });
        // The lock keeps the line whole if other threads write meanwhile.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }));
}
