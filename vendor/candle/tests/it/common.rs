//! Test helpers: file writers that can also write malformed files, an
//! event collector, a counting allocator and a lock for memory tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tektra_progress::{Event, SharedReporter, State};

/// Live heap bytes of the whole test process.
pub(crate) static LIVE: AtomicIsize = AtomicIsize::new(0);

pub(crate) struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is only bookkeeping.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

pub(crate) fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Tests that load much data hold this shared; the test that measures
/// memory holds it exclusively, so nothing else allocates meanwhile.
static MEMORY: RwLock<()> = RwLock::new(());

pub(crate) fn shared_memory() -> RwLockReadGuard<'static, ()> {
    MEMORY
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn exclusive_memory() -> RwLockWriteGuard<'static, ()> {
    MEMORY
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A reporter that keeps every event.
pub(crate) fn collector() -> (SharedReporter, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let reporter: SharedReporter = Arc::new(move |e: &Event| sink.lock().unwrap().push(e.clone()));
    (reporter, events)
}

/// The last event of each file, by file name.
pub(crate) fn last_per_file(events: &[Event]) -> std::collections::BTreeMap<String, Event> {
    let mut out = std::collections::BTreeMap::new();
    for e in events {
        if let Some(f) = &e.file {
            out.insert(f.clone(), e.clone());
        }
    }
    out
}

/// Checks the event-order contract: nothing after a file's terminal state.
pub(crate) fn assert_terminal_last(events: &[Event]) {
    let mut ended = std::collections::HashSet::new();
    for e in events {
        if let Some(f) = &e.file {
            assert!(
                !ended.contains(f),
                "event for {f} after its terminal state: {e:?}"
            );
            if e.state.is_terminal() {
                ended.insert(f.clone());
            }
        }
    }
}

pub(crate) fn assert_done(event: &Event, tensors: u64) {
    assert_eq!(event.state, State::Done, "{event:?}");
    assert_eq!(Some(event.bytes_done), event.bytes_total, "{event:?}");
    assert_eq!(event.tensors_done, Some(tensors), "{event:?}");
    assert_eq!(event.tensors_total, Some(tensors), "{event:?}");
    assert_eq!(event.fraction(), Some(1.0));
}

/// A tensor to write into a safetensors file.
pub(crate) struct St<'a> {
    pub(crate) name: &'a str,
    pub(crate) dtype: &'a str,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<u8>,
}

/// A safetensors file with the header padded by `pad` spaces: odd padding
/// leaves the data unaligned, as real files may.
pub(crate) fn safetensors_bytes(tensors: &[St<'_>], pad: usize) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0;
    for t in tensors {
        header.insert(
            t.name.into(),
            serde_json::json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.data.len()]}),
        );
        offset += t.data.len();
    }
    let mut json = serde_json::to_string(&header).unwrap();
    json.push_str(&" ".repeat(pad));
    raw_safetensors(
        &json,
        &tensors
            .iter()
            .flat_map(|t| t.data.clone())
            .collect::<Vec<_>>(),
    )
}

/// A safetensors file from header text and data, valid or not.
pub(crate) fn raw_safetensors(json: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(data);
    out
}

pub(crate) fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Deterministic pseudo-random bytes.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// GGUF metadata value for [`gguf_bytes`].
pub(crate) enum Kv {
    U32(u32),
    Str(String),
    /// Raw: type id and payload bytes as they should appear.
    Raw(u32, Vec<u8>),
}

/// A GGUF tensor info for [`gguf_bytes`]: dims innermost first, as stored.
pub(crate) struct Ti<'a> {
    pub(crate) name: &'a str,
    pub(crate) dims: Vec<u64>,
    pub(crate) ggml_type: u32,
    pub(crate) offset: u64,
}

pub(crate) fn gguf_string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

/// A GGUF v3 file: header, padding to 32, then `data`.
pub(crate) fn gguf_bytes(kvs: &[(&str, Kv)], tensors: &[Ti<'_>], data: &[u8]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (key, value) in kvs {
        out.extend_from_slice(&gguf_string(key));
        match value {
            Kv::U32(v) => {
                out.extend_from_slice(&4u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Kv::Str(s) => {
                out.extend_from_slice(&8u32.to_le_bytes());
                out.extend_from_slice(&gguf_string(s));
            }
            Kv::Raw(t, payload) => {
                out.extend_from_slice(&t.to_le_bytes());
                out.extend_from_slice(payload);
            }
        }
    }
    for t in tensors {
        out.extend_from_slice(&gguf_string(t.name));
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.to_le_bytes());
        out.extend_from_slice(&t.offset.to_le_bytes());
    }
    while !out.len().is_multiple_of(32) {
        out.push(0);
    }
    out.extend_from_slice(data);
    out
}
