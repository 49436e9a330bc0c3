//! Cancellation in the middle of a load: prompt, and nothing left behind.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::DType;
use tektra_candle::{LoadOptions, load};
use tektra_progress::{Event, SharedReporter, State};
use tokio_util::sync::CancellationToken;

use crate::common::{
    St, assert_terminal_last, exclusive_memory, live_bytes, safetensors_bytes, write,
};

/// What the reporter saw when it pulled the trigger.
#[derive(Default)]
struct Trigger {
    at: Option<Instant>,
    live_at_cancel: isize,
    events: Vec<Event>,
}

#[test]
fn cancellation_mid_load_returns_promptly_and_frees_memory() {
    let _guard = exclusive_memory();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    // Two 64 MiB bf16 tensors: 256 MiB of f32 output once converted.
    let elements = 32 << 20;
    let pattern: Vec<u8> = half::bf16::from_f32(0.5).to_le_bytes().repeat(elements);
    write(
        &path,
        &safetensors_bytes(
            &[
                St {
                    name: "x",
                    dtype: "BF16",
                    shape: vec![elements],
                    data: pattern.clone(),
                },
                St {
                    name: "y",
                    dtype: "BF16",
                    shape: vec![elements],
                    data: pattern,
                },
            ],
            0,
        ),
    );
    let total = 4 * elements as u64;

    let baseline = live_bytes();
    let cancel = CancellationToken::new();
    let trigger = Arc::new(Mutex::new(Trigger::default()));
    let reporter: SharedReporter = {
        let cancel = cancel.clone();
        let trigger = trigger.clone();
        Arc::new(move |e: &Event| {
            let mut t = trigger.lock().unwrap();
            t.events.push(e.clone());
            if t.at.is_none() && e.file.is_some() && e.bytes_done >= total / 4 {
                t.at = Some(Instant::now());
                t.live_at_cancel = live_bytes();
                cancel.cancel();
            }
        })
    };
    let options = LoadOptions {
        dtype: Some(DType::F32),
        ..LoadOptions::default()
    };
    let err = load(&path, &options, reporter, &cancel).unwrap_err();
    let returned = Instant::now();
    assert!(err.is_cancelled(), "{err:?}");

    let t = trigger.lock().unwrap();
    let at =
        t.at.expect("the load got a quarter through before cancelling");
    assert!(
        returned - at < Duration::from_secs(2),
        "took {:?} to stop",
        returned - at
    );
    // A partial output was allocated (so there was memory to free): at
    // least one 128 MiB f32 buffer, both when two workers had started ...
    assert!(
        t.live_at_cancel - baseline > 100 << 20,
        "only {} bytes live",
        t.live_at_cancel - baseline
    );
    // ... and are gone once the call returns.
    let leftover = live_bytes() - baseline;
    assert!(
        leftover < 1 << 20,
        "{leftover} bytes still allocated after cancellation"
    );

    assert_terminal_last(&t.events);
    let last = t.events.iter().rev().find(|e| e.file.is_some()).unwrap();
    assert_eq!(last.state, State::Cancelled);
    assert!(last.bytes_done < total);
}

#[test]
fn cancelled_before_start_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write(
        &path,
        &safetensors_bytes(
            &[St {
                name: "x",
                dtype: "F32",
                shape: vec![4],
                data: vec![0; 16],
            }],
            0,
        ),
    );
    let cancel = CancellationToken::new();
    cancel.cancel();
    let (reporter, events) = crate::common::collector();
    let err = load(&path, &LoadOptions::default(), reporter, &cancel).unwrap_err();
    assert!(err.is_cancelled());
    let events = events.lock().unwrap();
    let last = crate::common::last_per_file(&events);
    assert_eq!(last["m.safetensors"].state, State::Cancelled);
    assert_eq!(last["m.safetensors"].bytes_done, 0);
}
