//! One measured load in its own process, so its peak RSS is its own:
//! ours (tektra-candle) or upstream (candle 0.10.2 called directly).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Memory touched and freed before every measured run (more than either
/// side's peak).
const PREFAULT_BYTES: usize = 7 << 30;

/// Touches and frees `bytes` of anonymous memory with two threads.
///
/// Why: this machine is a nested VM whose host takes freed guest memory
/// back (free page reporting); the first touch of such memory costs
/// 0.5-2 s per GB and varies with whatever ran in the seconds before. That
/// cost would swamp and randomise both loaders. Memory freed just before a
/// run is handed straight back to the next process's page faults, so every
/// run, ours and upstream alike, starts under the same, warm conditions.
/// It runs in the child, just before the clock starts, so the freed memory
/// is reused within milliseconds.
pub(crate) fn prefault(bytes: usize) -> Result<()> {
    let mut map = memmap2::MmapMut::map_anon(bytes)?;
    // Huge pages make the touching itself quick; both sides' page faults
    // can use the freed memory, whatever their page size.
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    let (a, b) = map.split_at_mut(bytes / 2);
    std::thread::scope(|s| {
        for half in [a, b] {
            s.spawn(move || {
                for page in half.chunks_mut(4096) {
                    page[0] = 1;
                }
            });
        }
    });
    Ok(())
}

/// What a child prints as its one line of JSON.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Measure {
    pub(crate) secs: f64,
    pub(crate) peak_rss: u64,
    pub(crate) tensors: usize,
}

pub(crate) fn dtype_of(scenario: &str) -> Result<DType> {
    Ok(match scenario {
        "st-f32" => DType::F32,
        "st-f16" => DType::F16,
        "st-bf16" => DType::BF16,
        other => bail!("unknown scenario {other}"),
    })
}

/// Runs one load and returns its measure. Tensors stay alive until the
/// peak is read, as they would in a model. Upstream needs every tensor's
/// name and shape to call `get`; reading them is done before the clock.
pub(crate) fn run(which: &str, scenario: &str, path: &Path) -> Result<Measure> {
    let shapes = if which == "upstream" && scenario != "gguf" {
        Some(shards_and_shapes(path)?)
    } else {
        None
    };
    if std::env::var_os("TEKTRA_BENCH_COLD_MEMORY").is_none() {
        prefault(PREFAULT_BYTES)?;
        // Start the peak-RSS count (VmHWM) afresh after the warm-up.
        std::fs::write("/proc/self/clear_refs", b"5").context("resetting VmHWM")?;
    }
    let start = Instant::now();
    let tensors = match (which, scenario, shapes) {
        ("ours", "gguf", _) => ours_gguf(path)?,
        ("upstream", "gguf", _) => upstream_gguf(path)?,
        ("ours", s, _) => ours_safetensors(path, dtype_of(s)?, true)?,
        ("ours-4k", s, _) => ours_safetensors(path, dtype_of(s)?, false)?,
        ("upstream", s, Some((files, shapes))) => {
            upstream_safetensors(&files, &shapes, dtype_of(s)?)?
        }
        (other, _, _) => bail!("unknown implementation {other}"),
    };
    let secs = start.elapsed().as_secs_f64();
    let peak_rss = tektra_candle::peak_rss().context("no VmHWM on this OS")?;
    Ok(Measure {
        secs,
        peak_rss,
        tensors,
    })
}

fn ours_gguf(path: &Path) -> Result<usize> {
    let (weights, _) = tektra_candle::load_gguf(
        path,
        &Device::Cpu,
        tektra_progress::silent(),
        &CancellationToken::new(),
    )?;
    Ok(weights.tensors.len())
}

/// candle's documented way: `Content::read`, then `tensor` for each. A
/// buffered reader, so upstream's header parse is not penalised by one
/// system call per field.
fn upstream_gguf(path: &Path) -> Result<usize> {
    let mut reader = BufReader::new(File::open(path)?);
    let content = gguf_file::Content::read(&mut reader)?;
    let mut tensors: HashMap<String, QTensor> = HashMap::new();
    for name in content.tensor_infos.keys() {
        tensors.insert(
            name.clone(),
            content.tensor(&mut reader, name, &Device::Cpu)?,
        );
    }
    Ok(tensors.len())
}

fn ours_safetensors(dir: &Path, dtype: DType, huge_pages: bool) -> Result<usize> {
    let options = tektra_candle::LoadOptions {
        device: Device::Cpu,
        dtype: Some(dtype),
        huge_pages,
    };
    let model = tektra_candle::load(
        dir,
        &options,
        tektra_progress::silent(),
        &CancellationToken::new(),
    )?;
    Ok(model.weights.len())
}

/// Every tensor's name and shape.
type Shapes = Vec<(String, Vec<usize>)>;

/// The shard files and every tensor's name and shape, from the JSON
/// headers alone (the data is not read).
fn shards_and_shapes(dir: &Path) -> Result<(Vec<PathBuf>, Shapes)> {
    #[derive(Deserialize)]
    struct Entry {
        shape: Vec<usize>,
    }
    let files = tektra_candle::ModelFiles::resolve(dir)?.files;
    let mut shapes = Vec::new();
    for f in &files {
        let mut file = File::open(f)?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len)?;
        let mut json = vec![0u8; usize::try_from(u64::from_le_bytes(len))?];
        file.read_exact(&mut json)?;
        let header: HashMap<String, serde_json::Value> = serde_json::from_slice(&json)?;
        for (name, value) in header {
            if name != "__metadata__" {
                let entry: Entry = serde_json::from_value(value)?;
                shapes.push((name, entry.shape));
            }
        }
    }
    Ok((files, shapes))
}

/// `VarBuilder::from_mmaped_safetensors`, then `get` for every tensor with
/// its shape (upstream converts on `get`), keeping them all like a model.
#[allow(unsafe_code)]
fn upstream_safetensors(files: &[PathBuf], shapes: &Shapes, dtype: DType) -> Result<usize> {
    // SAFETY: the benchmark's files are written once and not modified
    // while mapped; that is the contract of candle's mapped loader.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(files, dtype, &Device::Cpu)? };
    let mut tensors: Vec<Tensor> = Vec::with_capacity(shapes.len());
    for (name, shape) in shapes {
        tensors.push(vb.get(shape.as_slice(), name)?);
    }
    Ok(tensors.len())
}
