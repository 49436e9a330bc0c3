//! Any bytes as a whole GGUF file: the header parser must return a header
//! or a typed error, never panic, overflow or allocate without bound. A
//! header it accepts must describe bytes inside the file, and convert to
//! candle's `Content`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tektra_candle::gguf::GgufHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = GgufHeader::parse(data) {
        let len = data.len() as u64;
        let mut end_of_previous = header.data_start;
        for t in &header.tensors {
            assert!(t.file_offset >= header.data_start && t.file_offset + t.len <= len);
            if t.len > 0 {
                assert!(t.file_offset >= end_of_previous, "overlap accepted");
                end_of_previous = t.file_offset + t.len;
            }
        }
        let content = header.into_content();
        assert!(content.tensor_data_offset <= len || content.tensor_infos.is_empty());
    }
});
