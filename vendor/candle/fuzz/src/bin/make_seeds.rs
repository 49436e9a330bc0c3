//! Writes the seed corpora: small valid safetensors files, and GGUF files
//! rebuilt from the real SmolLM2 header (every metadata key, arrays cut
//! short, all 272 tensor infos with one block of data each), plus a raw
//! prefix of the real file.
//!
//! `cargo run --bin make_seeds -- path/to/SmolLM2-135M-Instruct.Q4_1.gguf`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;

use tektra_candle::gguf::{GgmlDType, GgufHeader, Value};

fn safetensors(json: &str, data_len: usize) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend((0..data_len).map(|i| (i * 37) as u8));
    out
}

fn gguf_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => gguf_string(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(items) => {
            let items = &items[..items.len().min(16)];
            out.extend_from_slice(&items.first().map_or(4, type_id).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(out, item);
            }
        }
    }
}

/// The real header, shrunk: arrays cut to 16 items, each tensor one block.
fn mini_smollm2(real: &GgufHeader, tensors: usize) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    let tensors = &real.tensors[..tensors.min(real.tensors.len())];
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(real.metadata.len() as u64).to_le_bytes());
    let mut keys: Vec<_> = real.metadata.keys().collect();
    keys.sort();
    for key in keys {
        let value = &real.metadata[key];
        gguf_string(&mut out, key);
        out.extend_from_slice(&type_id(value).to_le_bytes());
        write_value(&mut out, value);
    }
    let mut offset = 0u64;
    let mut data_len = 0u64;
    for t in tensors {
        gguf_string(&mut out, &t.name);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(t.dtype.block_size() as u64).to_le_bytes());
        out.extend_from_slice(&ggml_id(t.dtype).to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        let size = t.dtype.type_size() as u64;
        data_len = offset + size;
        offset = (offset + size).div_ceil(32) * 32;
    }
    while out.len() % 32 != 0 {
        out.push(0);
    }
    out.extend((0..data_len).map(|i| (i * 13) as u8));
    out
}

fn ggml_id(dtype: GgmlDType) -> u32 {
    use GgmlDType as G;
    match dtype {
        G::F32 => 0,
        G::F16 => 1,
        G::Q4_0 => 2,
        G::Q4_1 => 3,
        G::Q5_0 => 6,
        G::Q5_1 => 7,
        G::Q8_0 => 8,
        G::Q8_1 => 9,
        G::Q2K => 10,
        G::Q3K => 11,
        G::Q4K => 12,
        G::Q5K => 13,
        G::Q6K => 14,
        G::Q8K => 15,
        G::BF16 => 30,
    }
}

fn main() {
    let real_path = std::env::args().nth(1).expect("path to SmolLM2-135M-Instruct.Q4_1.gguf");
    let st_dir = Path::new("corpus/safetensors_header");
    let gg_dir = Path::new("corpus/gguf_header");
    std::fs::create_dir_all(st_dir).unwrap();
    std::fs::create_dir_all(gg_dir).unwrap();

    let seeds = [
        (r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#, 24),
        (
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"e":{"dtype":"F16","shape":[0,3],"data_offsets":[16,16]}}"#,
            16,
        ),
        (
            r#"{"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"y":{"dtype":"F8_E4M3","shape":[1,1],"data_offsets":[3,4]},"z":{"dtype":"BOOL","shape":[],"data_offsets":[4,5]}}   "#,
            5,
        ),
    ];
    for (i, (json, len)) in seeds.iter().enumerate() {
        let bytes = safetensors(json, *len);
        tektra_candle::safetensors::SafetensorsHeader::parse(&bytes).expect("seed is valid");
        std::fs::write(st_dir.join(format!("seed-{i}")), bytes).unwrap();
    }

    let real_bytes = std::fs::read(real_path).unwrap();
    let real = GgufHeader::parse(&real_bytes).unwrap();
    for tensors in [272, 8] {
        let bytes = mini_smollm2(&real, tensors);
        let parsed = GgufHeader::parse(&bytes).expect("seed is valid");
        assert_eq!(parsed.tensors.len(), tensors);
        eprintln!("gguf seed with {tensors} tensors: {} bytes", bytes.len());
        std::fs::write(gg_dir.join(format!("smollm2-mini-{tensors}")), bytes).unwrap();
    }
    std::fs::write(gg_dir.join("smollm2-prefix"), &real_bytes[..4096]).unwrap();
}
