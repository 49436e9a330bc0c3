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
