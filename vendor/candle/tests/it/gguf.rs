//! The real SmolLM2 GGUF through our GGUF path.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::time::Duration;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use tektra_candle::gguf::{GgufFile, GgufHeader};
use tektra_candle::{LoadOptions, ModelFormat, Weights, load};
use tektra_progress::{Stage, State, Tracker};
use tokio_util::sync::CancellationToken;

use crate::common::{assert_done, assert_terminal_last, collector, last_per_file, shared_memory};

const SMOLLM2_TENSORS: usize = 272;

fn candle_content() -> gguf_file::Content {
    let path = tektra_testdata::smollm2_gguf();
    let mut reader = BufReader::new(File::open(path).unwrap());
    gguf_file::Content::read(&mut reader).unwrap()
}

#[test]
fn smollm2_loads_with_events_ending_at_100_percent() {
    let _guard = shared_memory();
    let path = tektra_testdata::smollm2_gguf();
    let (reporter, events) = collector();
    let model = load(
        &path,
        &LoadOptions::default(),
        reporter,
        &CancellationToken::new(),
    )
    .unwrap();

    assert_eq!(model.report.format, ModelFormat::Gguf);
    assert_eq!(model.report.files, 1);
    assert_eq!(model.report.tensors, SMOLLM2_TENSORS);
    let Weights::Quantized(weights) = &model.weights else {
        panic!("GGUF gives quantized weights");
    };
    // The count matches the file as candle's own reader sees it.
    let reference = candle_content();
    assert_eq!(reference.tensor_infos.len(), SMOLLM2_TENSORS);
    assert_eq!(weights.tensors.len(), reference.tensor_infos.len());
    let expected_bytes: u64 = weights
        .tensors
        .values()
        .map(|t| t.storage_size_in_bytes() as u64)
        .sum();
    assert_eq!(model.report.bytes, expected_bytes);
    if cfg!(target_os = "linux") {
        assert!(model.report.peak_rss.unwrap() > expected_bytes);
    }

    let events = events.lock().unwrap();
    assert_terminal_last(&events);
    assert_eq!(events.first().unwrap().stage, Stage::Loading);
    assert_eq!(events.first().unwrap().state, State::Started);
    let last = last_per_file(&events);
    let file_event = &last["SmolLM2-135M-Instruct.Q4_1.gguf"];
    assert_done(file_event, SMOLLM2_TENSORS as u64);
    assert_eq!(file_event.bytes_total, Some(model.report.bytes));
    assert!(events.iter().all(|e| e.stage == Stage::Loading));
    let end = events.last().unwrap();
    assert_eq!((end.file.as_deref(), end.state), (None, State::Done));
    assert_eq!(end.aggregate.files_done, 1);
}

#[test]
fn smollm2_tensors_equal_candle_direct_reads() {
    let _guard = shared_memory();
    let path = tektra_testdata::smollm2_gguf();
    let (weights, _) = tektra_candle::load_gguf(
        &path,
        &Device::Cpu,
        tektra_progress::silent(),
        &CancellationToken::new(),
    )
    .unwrap();
    let reference = candle_content();
    let mut file = File::open(&path).unwrap();
    for (name, ours) in &weights.tensors {
        let theirs = reference.tensor(&mut file, name, &Device::Cpu).unwrap();
        assert_eq!(ours.dtype(), theirs.dtype(), "{name}");
        assert_eq!(ours.shape(), theirs.shape(), "{name}");
        assert!(
            ours.data().unwrap() == theirs.data().unwrap(),
            "{name}: bytes differ"
        );
    }
}

#[test]
fn header_converts_to_the_content_candle_reads() {
    let bytes = std::fs::read(tektra_testdata::smollm2_gguf()).unwrap();
    let ours = GgufHeader::parse(&bytes).unwrap().to_content();
    let theirs = candle_content();
    assert_eq!(ours.tensor_data_offset, theirs.tensor_data_offset);
    assert_eq!(ours.metadata.len(), theirs.metadata.len());
    for (key, value) in &theirs.metadata {
        assert_eq!(
            format!("{:?}", ours.metadata[key]),
            format!("{value:?}"),
            "{key}"
        );
    }
    for (name, info) in &theirs.tensor_infos {
        let mine = &ours.tensor_infos[name];
        assert_eq!(
            (mine.ggml_dtype, mine.shape.dims(), mine.offset),
            (info.ggml_dtype, info.shape.dims(), info.offset),
            "{name}"
        );
    }
    assert_eq!(
        ours.metadata["general.architecture"].to_string().unwrap(),
        "llama"
    );
}

#[test]
fn quantized_llama_builds_through_the_progress_reader_and_runs() {
    let _guard = shared_memory();
    let gguf = GgufFile::open(&tektra_testdata::smollm2_gguf()).unwrap();
    let (reporter, events) = collector();
    // Every update emitted, so the last event is the reader's true count.
    let tracker = Tracker::with_interval(Stage::Loading, reporter, Duration::ZERO);
    let file = tracker.file("smollm2", None);
    let mut reader = gguf.reader(file, CancellationToken::new()).unwrap();
    let mut model = ModelWeights::from_gguf(gguf.content(), &mut reader, &Device::Cpu).unwrap();

    // quantized_llama reads every tensor of this file (the output layer is
    // the tied embedding, read twice but counted once).
    let before_finish = events.lock().unwrap().last().unwrap().clone();
    assert_eq!(before_finish.tensors_done, Some(SMOLLM2_TENSORS as u64));
    assert_eq!(Some(before_finish.bytes_done), before_finish.bytes_total);
    reader.finish();
    assert_done(
        events.lock().unwrap().last().unwrap(),
        SMOLLM2_TENSORS as u64,
    );
    assert_terminal_last(&events.lock().unwrap());

    // The model works: one token in, one row of vocabulary logits out.
    let input = Tensor::new(&[[1u32, 504, 3060]], &Device::Cpu).unwrap();
    let logits = model.forward(&input, 0).unwrap();
    assert_eq!(logits.dims(), [1, 49152]);
    let row: Vec<f32> = logits.squeeze(0).unwrap().to_vec1().unwrap();
    assert!(row.iter().all(|x| x.is_finite()));
}

#[test]
fn cancelled_reader_stops_the_model_build() {
    let gguf = GgufFile::open(&tektra_testdata::smollm2_gguf()).unwrap();
    let (reporter, events) = collector();
    let tracker = Tracker::new(Stage::Loading, reporter);
    let cancel = CancellationToken::new();
    let mut reader = gguf
        .reader(tracker.file("smollm2", None), cancel.clone())
        .unwrap();
    cancel.cancel();
    let Err(err) = ModelWeights::from_gguf(gguf.content(), &mut reader, &Device::Cpu) else {
        panic!("a cancelled reader must fail the build");
    };
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(reader.was_cancelled());
    let events = events.lock().unwrap();
    assert_eq!(events.last().unwrap().state, State::Cancelled);
    assert_terminal_last(&events);
}

#[test]
fn tensor_offsets_in_smollm2_are_distinct_and_in_file() {
    let path = tektra_testdata::smollm2_gguf();
    let len = std::fs::metadata(&path).unwrap().len();
    let gguf = GgufFile::open(&path).unwrap();
    let header = gguf.header();
    assert_eq!(header.version, 3);
    let offsets: HashSet<u64> = header.tensors.iter().map(|t| t.file_offset).collect();
    assert_eq!(offsets.len(), SMOLLM2_TENSORS);
    assert!(header.tensors.iter().all(|t| t.file_offset + t.len <= len));
    assert!(
        header
            .tensors
            .windows(2)
            .all(|w| w[0].file_offset + w[0].len <= w[1].file_offset)
    );
}
