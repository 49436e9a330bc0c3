//! The generation benchmark's tables and its verdicts against the targets.

use std::path::Path;

use candle_core::quantized::gguf_file;
use tektra_bench_support::history::{self, Metric};
use tektra_bench_support::{Cost, median, read_bandwidth};

use crate::{Case, Sample, Who};

/// Generation speed against llama.cpp's (same file, same run).
const GEN_VS_CPP: f64 = 1.0;
/// Share of the read-bandwidth bound generation should reach.
const BANDWIDTH_SHARE: f64 = 0.85;
/// Prompt speed against llama.cpp's, standard and long prompts.
const PROMPT_VS_CPP: f64 = 2.0;
const LONG_PROMPT_VS_CPP: f64 = 1.5;
/// Generation with prompt lookup against llama.cpp's on the repeat task.
const LOOKUP_VS_CPP: f64 = 1.5;
/// Cached model, `tektra run`, process start to first token.
const FIRST_TOKEN_SECS: f64 = 0.5;

/// One contender's runs of one case on one file.
pub(crate) struct Result<'a> {
    pub(crate) case: &'static str,
    pub(crate) file: &'a str,
    pub(crate) who: Who,
    pub(crate) samples: Vec<Sample>,
}

/// Weight bytes a token reads, and the machine's read bandwidth over as
/// many bytes, per file.
pub(crate) struct Bandwidth {
    files: Vec<(&'static str, u64, f64)>,
    one_gib: f64,
}

/// Bytes of every tensor a generated token reads: all of them, except the
/// token embedding when a separate output matrix exists (one row of it is
/// read per token).
fn weight_bytes(path: &Path) -> Option<u64> {
    let mut f = std::fs::File::open(path).ok()?;
    let content = gguf_file::Content::read(&mut f).ok()?;
    let size = |t: &gguf_file::TensorInfo| {
        (t.shape.elem_count() / t.ggml_dtype.block_size() * t.ggml_dtype.type_size()) as u64
    };
    let untied = content.tensor_infos.contains_key("output.weight");
    Some(
        content
            .tensor_infos
            .iter()
            .filter(|(name, _)| !(untied && name.as_str() == "token_embd.weight"))
            .map(|(_, t)| size(t))
            .sum(),
    )
}

impl Bandwidth {
    pub(crate) fn measure(q4_1: &Path, q4_k_m: &Path) -> Self {
        let mut files = Vec::new();
        for (name, path) in [("Q4_1", q4_1), ("Q4_K_M", q4_k_m)] {
            if let Some(bytes) = weight_bytes(path) {
                files.push((name, bytes, read_bandwidth(bytes as usize, 2)));
            }
        }
        Bandwidth {
            files,
            one_gib: read_bandwidth(1 << 30, 2),
        }
    }
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Medians of one contender's runs.
#[derive(Clone, Copy)]
struct Row {
    load: f64,
    ttft: f64,
    tps: f64,
    first: f64,
    rss: f64,
    cpu: f64,
}

fn row(samples: &[Sample]) -> Row {
    let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    Row {
        load: m(&|s| s.report.load_secs),
        ttft: m(&|s| s.report.ttft_secs),
        tps: m(&|s| s.report.gen_tokens_per_sec),
        first: m(&|s| s.report.first_token_since_spawn_secs),
        rss: m(&|s| s.cost.peak_rss_mb),
        cpu: m(&|s| s.cost.cpu_secs),
    }
}

/// How a run's text compares with another's.
fn agreement(text: &str, ours: &str) -> String {
    if text == ours {
        return "same".into();
    }
    let same = text
        .chars()
        .zip(ours.chars())
        .take_while(|(a, b)| a == b)
        .count();
    format!("differs after {same} chars")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

#[allow(clippy::cast_precision_loss, clippy::too_many_lines)]
pub(crate) fn print(
    cases: &[Case],
    results: &[Result<'_>],
    cli: Option<&[Cost]>,
    bw: &Bandwidth,
    runs: usize,
    load_before: &str,
    load_after: &str,
) {
    let find = |case: &str, file: &str, who: Who| {
        results
            .iter()
            .find(|r| r.case == case && r.file == file && r.who == who)
            .map(|r| r.samples.as_slice())
    };
    println!(
        "\ngreedy; each contender in its own process; median of {runs} runs; {} cores; \
         load average {load_before} before, {load_after} after",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    );
    for case in cases {
        println!(
            "\n{}: {}-token prompt, up to {} generated tokens\n",
            case.name, case.prompt_tokens, case.generate
        );
        println!(
            "| file | contender | load s | prompt s | prompt tok/s | gen tok/s | gen vs native | prompt vs native | first token s | peak RSS | CPU s | tokens | text vs native |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
        for r in results.iter().filter(|r| r.case == case.name) {
            let x = row(&r.samples);
            let base = find(case.name, r.file, Who::Native).unwrap_or(&r.samples);
            let o = row(base);
            let counts: Vec<String> = r
                .samples
                .iter()
                .map(|s| s.report.generated.to_string())
                .collect();
            let counts = if counts.iter().all(|c| c == &counts[0]) {
                counts[0].clone()
            } else {
                counts.join("/")
            };
            println!(
                "| {} | {} | {:.2} | {:.3} | {:.0} | {:.1} | {:.2}x | {:.2}x | {:.2} | {:.1} MB | {:.2} | {counts} | {} |",
                r.file,
                r.who.label(),
                x.load,
                x.ttft,
                case.prompt_tokens as f64 / x.ttft,
                x.tps,
                x.tps / o.tps,
                o.ttft / x.ttft,
                x.first,
                x.rss,
                x.cpu,
                agreement(&r.samples[0].report.text, &base[0].report.text),
            );
        }
    }
    println!();
    for r in results {
        if let Some(s) = r.samples.first().filter(|s| !s.report.note.is_empty()) {
            println!(
                "  {} {} {}: {}",
                r.case,
                r.file,
                r.who.label(),
                s.report.note
            );
        }
    }
    println!(
        "\nread bandwidth, 2 threads: {:.1} GB/s over 1 GiB; {}",
        bw.one_gib,
        bw.files
            .iter()
            .map(|(f, b, g)| format!(
                "{g:.1} GB/s over {f}'s {:.1} MB of weights",
                *b as f64 / 1e6
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("\ntargets (native against llama.cpp, same run)");
    let mut metrics = Vec::new();
    let key = |file: &str| file.replace(' ', "_");
    let pair = |case: &str, file: &str, who: Who| {
        Some((
            row(find(case, file, who)?),
            row(find(case, file, Who::LlamaCpp)?),
        ))
    };
    for (file, bytes, gbs) in &bw.files {
        if let Some((o, c)) = pair("standard", file, Who::Native) {
            let share = *bytes as f64 * o.tps / 1e9 / gbs;
            let k = key(file);
            metrics.push(Metric::ratio(
                &format!("gen_{k}_vs_llama_cpp"),
                o.tps / c.tps,
            ));
            metrics.push(Metric::ratio(
                &format!("prompt_{k}_vs_llama_cpp"),
                c.ttft / o.ttft,
            ));
            metrics.push(Metric::value(&format!("gen_{k}_tps"), o.tps, "tok/s"));
            metrics.push(Metric::value(
                &format!("gen_{k}_bandwidth_share"),
                share * 100.0,
                "%",
            ));
            metrics.push(Metric::value(&format!("peak_rss_{k}"), o.rss, "MB"));
            println!(
                "  {file:6} generation >= {GEN_VS_CPP}x llama.cpp      {:5.2}x ({:.1} vs {:.1} tok/s)  {}",
                o.tps / c.tps,
                o.tps,
                c.tps,
                verdict(o.tps / c.tps >= GEN_VS_CPP)
            );
            println!(
                "  {file:6} generation >= {:.0}% of the bandwidth bound   {:5.1}% ({:.1} MB x {:.1} tok/s = {:.2} GB/s of {gbs:.1} GB/s)  {}",
                BANDWIDTH_SHARE * 100.0,
                share * 100.0,
                *bytes as f64 / 1e6,
                o.tps,
                *bytes as f64 * o.tps / 1e9,
                verdict(share >= BANDWIDTH_SHARE)
            );
            println!(
                "  {file:6} prompt ({PROMPT} tokens) >= {PROMPT_VS_CPP}x llama.cpp   {:5.2}x ({:.0} vs {:.0} tok/s)  {}",
                c.ttft / o.ttft,
                crate::PROMPT_TOKENS as f64 / o.ttft,
                crate::PROMPT_TOKENS as f64 / c.ttft,
                verdict(c.ttft / o.ttft >= PROMPT_VS_CPP),
                PROMPT = crate::PROMPT_TOKENS
            );
            println!(
                "  {file:6} peak RSS <= llama.cpp's          {:.1} vs {:.1} MB  {}",
                o.rss,
                c.rss,
                verdict(o.rss <= c.rss)
            );
        }
    }
    if let (Some(case), Some((o, c))) = (
        cases.iter().find(|c| c.name == "long"),
        pair("long", "Q4_1", Who::Native),
    ) {
        metrics.push(Metric::ratio("long_prompt_vs_llama_cpp", c.ttft / o.ttft));
        println!(
            "  Q4_1   prompt ({} tokens) >= {LONG_PROMPT_VS_CPP}x llama.cpp  {:5.2}x ({:.0} vs {:.0} tok/s); generation after it {:.2}x ({:.1} vs {:.1} tok/s)  {}",
            case.prompt_tokens,
            c.ttft / o.ttft,
            case.prompt_tokens as f64 / o.ttft,
            case.prompt_tokens as f64 / c.ttft,
            o.tps / c.tps,
            o.tps,
            c.tps,
            verdict(c.ttft / o.ttft >= LONG_PROMPT_VS_CPP)
        );
    }
    if let Some((o, c)) = pair("repeat", "qwen2 Q4_K_M", Who::NativeLookup) {
        let off = find("repeat", "qwen2 Q4_K_M", Who::Native).map(row);
        metrics.push(Metric::ratio("lookup_vs_llama_cpp", o.tps / c.tps));
        println!(
            "  qwen2  repeat task, prompt lookup: generation >= {LOOKUP_VS_CPP}x llama.cpp  {:5.2}x ({:.1} vs {:.1} tok/s; {:.1} without lookup)  {}",
            o.tps / c.tps,
            o.tps,
            c.tps,
            off.map_or(f64::NAN, |r| r.tps),
            verdict(o.tps / c.tps >= LOOKUP_VS_CPP)
        );
    }
    if let Some(cli) = cli {
        let first = median(
            cli.iter()
                .map(|c| c.first_stdout_secs.unwrap_or(f64::INFINITY))
                .collect(),
        );
        let rss = median(cli.iter().map(|c| c.peak_rss_mb).collect());
        metrics.push(Metric::value("run_first_answer", first, "s"));
        println!(
            "  Q4_1   `tektra run`, cached default model, spawn to first answer byte < {FIRST_TOKEN_SECS} s   {first:.2} s (peak RSS {rss:.1} MB)  {}",
            verdict(first < FIRST_TOKEN_SECS),
        );
    }
    for line in history::record("generate", metrics) {
        println!("{line}");
    }
}
