//! `tektra load MODEL`: fetch and load a model's weights with per-file
//! loading bars, then print tensor count, bytes, time and peak memory.

use candle_core::DType;
use tektra_inference::ModelRef;

use super::EXIT_CANCELLED;
use super::model_args::HubArgs;
use super::report::{Display, OutputArgs, print_error};
use super::signal::cancel_on_ctrl_c;

/// Load a model's weights and report what it took.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A Hub repo (`org/name[@rev][:file]`), a weight file, a shard index or a folder.
    model: String,
    /// auto, cpu, metal, cuda (or metal:N, cuda:N).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Convert safetensors floats to f32, f16 or bf16 while reading (default: as stored).
    #[arg(long, value_parser = ["f32", "f16", "bf16"])]
    dtype: Option<String>,
    /// Don't ask Linux for huge pages for converted tensors: faster in VMs
    /// whose hypervisor reclaims freed memory (see tektra-candle's README).
    #[arg(long)]
    no_huge_pages: bool,
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    pub(super) output: OutputArgs,
}

pub(crate) async fn run(args: Args) -> i32 {
    match load(&args).await {
        Ok(()) => 0,
        Err((reason, code)) => {
            print_error(args.output.json, &reason);
            code
        }
    }
}

async fn load(args: &Args) -> Result<(), (String, i32)> {
    let cancel = cancel_on_ctrl_c();
    let failed = |e: &dyn std::fmt::Display| (e.to_string(), 1);
    let device = args
        .device
        .parse::<tektra_candle::DeviceChoice>()
        .and_then(tektra_candle::DeviceChoice::device)
        .map_err(|e| failed(&e))?;
    let dtype = match args.dtype.as_deref() {
        Some("f32") => Some(DType::F32),
        Some("f16") => Some(DType::F16),
        Some("bf16") => Some(DType::BF16),
        _ => None,
    };
    let reference: ModelRef = args.model.parse().map_err(|e| (format!("{e}"), 2))?;
    let display = Display::start(args.output.mode());
    let fetched =
        tektra_inference::fetch(&reference, &args.hub.options(), display.reporter(), &cancel).await;
    let files = match fetched {
        Ok(files) => files,
        Err(e) => {
            display.finish().await;
            return Err(if e.is_cancelled() {
                ("cancelled".into(), EXIT_CANCELLED)
            } else {
                failed(&e)
            });
        }
    };
    let reporter = display.reporter();
    let path = files.path().to_path_buf();
    let stop = cancel.clone();
    let huge_pages = !args.no_huge_pages;
    let loaded = tokio::task::spawn_blocking(move || {
        let options = tektra_candle::LoadOptions {
            device,
            dtype,
            huge_pages,
        };
        tektra_candle::load(&path, &options, reporter, &stop)
    })
    .await;
    display.finish().await;
    let model = match loaded {
        Ok(Ok(model)) => model,
        Ok(Err(e)) if e.is_cancelled() => return Err(("cancelled".into(), EXIT_CANCELLED)),
        Ok(Err(e)) => return Err(failed(&e)),
        Err(e) => return Err(failed(&e)),
    };
    let r = &model.report;
    if args.output.json {
        let line = serde_json::json!({ "report": {
            "files": r.files, "tensors": r.tensors, "bytes": r.bytes,
            "secs": r.elapsed.as_secs_f64(), "peak_rss": r.peak_rss,
        }});
        eprintln!("{line}");
    }
    #[allow(clippy::cast_precision_loss)]
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "{}: {} tensors, {:.1} MB in {} file(s), loaded in {:.2} s, peak memory {}",
        files.path().display(),
        r.tensors,
        mb(r.bytes),
        r.files,
        r.elapsed.as_secs_f64(),
        r.peak_rss
            .map_or_else(|| "unknown".to_string(), |p| format!("{:.1} MB", mb(p))),
    );
    Ok(())
}
