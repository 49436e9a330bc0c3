//! Any bytes as a whole safetensors file: the header parser must return
//! a header or a typed error, never panic, overflow or allocate without
//! bound. A header it accepts must describe bytes inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tektra_candle::safetensors::SafetensorsHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = SafetensorsHeader::parse(data) {
        let len = data.len() as u64;
        let mut end_of_previous = header.data_start;
        for t in &header.tensors {
            assert!(t.offset >= header.data_start && t.offset + t.len <= len);
            if t.len > 0 {
                assert!(t.offset >= end_of_previous, "overlap accepted");
                end_of_previous = t.offset + t.len;
            }
            let elements: u64 = t.shape.iter().map(|&d| d as u64).product();
            assert_eq!(elements * t.dtype.size(), t.len);
        }
    }
});
