use std::sync::{Arc, Mutex};

use tektra_inference::{Engine, EngineOptions, ModelRef};
use tektra_progress::{Event, SharedReporter};
use tokio_util::sync::CancellationToken;

pub const PARAGRAPH: &str = include_str!("../fixtures/paragraph.txt");

pub fn offline_options() -> EngineOptions {
    let mut options = EngineOptions::default();
    options.hub.offline = true;
    options
}

/// Options that reach `endpoint` (no token) and keep the Hub cache in
/// `cache`, whatever the environment says.
pub fn online_options(endpoint: String, cache: &std::path::Path) -> EngineOptions {
    let mut options = EngineOptions::default();
    options.hub.endpoint = endpoint;
    options.hub.cache_dir = cache.to_path_buf();
    options.hub.offline = false;
    options.hub.token = None;
    options
}

pub async fn smollm() -> Engine {
    let model = ModelRef::File(tektra_testdata::smollm2_gguf());
    Engine::load(
        &model,
        &offline_options(),
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

pub fn recorder() -> (SharedReporter, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (
        Arc::new(move |e: &Event| sink.lock().unwrap().push(e.clone())),
        events,
    )
}

/// The paragraph's words in a fixed scrambled order.
pub fn shuffled(text: &str) -> String {
    let mut words: Vec<(u64, &str)> = text
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7, w))
        .collect();
    words.sort_unstable();
    words
        .into_iter()
        .map(|(_, w)| w)
        .collect::<Vec<_>>()
        .join(" ")
}

/// SmolLM2 requantized the way llama.cpp's Q4_K_M does a 576-wide model:
/// Q5_0 where a row is not whole 256-blocks, Q8_0 for every other V
/// projection, Q4_K and (every third layer) Q6_K for the 1536-wide down
/// projection, Q8_0 embeddings. Made once with candle's quantizer under
/// TEKTRA_DATA (renamed into place, so parallel tests can race safely).
pub fn smollm2_q4_k_m() -> std::path::PathBuf {
    use candle_core::Device;
    use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
    let src = tektra_testdata::smollm2_gguf();
    let out = src.with_file_name("SmolLM2-135M-Instruct.Q4_K_M-candle.gguf");
    if out.is_file() {
        return out;
    }
    let mut file = std::fs::File::open(&src).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let mut tensors = Vec::new();
    for (name, info) in &content.tensor_infos {
        let t = content.tensor(&mut file, name, &Device::Cpu).unwrap();
        let dims = info.shape.dims().to_vec();
        let layer: usize = name
            .split('.')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let want = if dims.len() < 2 || name == "token_embd.weight" {
            None
        } else if name.contains("ffn_down") {
            Some(if layer.is_multiple_of(3) {
                GgmlDType::Q6K
            } else {
                GgmlDType::Q4K
            })
        } else if name.contains("attn_v") && layer.is_multiple_of(2) {
            Some(GgmlDType::Q8_0)
        } else {
            Some(GgmlDType::Q5_0)
        };
        let t = match want {
            Some(dt) => QTensor::quantize(&t.dequantize(&Device::Cpu).unwrap(), dt).unwrap(),
            None => t,
        };
        tensors.push((name.clone(), t));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let dir = out.parent().unwrap();
    let mut tmp = tempfile::NamedTempFile::new_in(dir).unwrap();
    gguf_file::write(tmp.as_file_mut(), &metadata, &refs).unwrap();
    tmp.persist(&out).unwrap();
    out
}

/// The instruction-set paths to test: every one this CPU runs; the others
/// are named as not run, so the output says what was not covered.
pub fn isas() -> Vec<tektra_inference::Isa> {
    tektra_inference::Isa::ALL
        .into_iter()
        .filter(|isa| {
            let ok = isa.supported();
            if !ok {
                println!("NOT RUN: the {isa} path (this CPU lacks it)");
            }
            ok
        })
        .collect()
}
