//! The GGML weight types the kernels take, and their block facts.

/// A GGUF tensor type the kernels multiply with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum WeightType {
    /// 32-bit floats.
    F32,
    /// IEEE half floats.
    F16,
    /// bfloat16.
    BF16,
    /// 32 weights: f16 scale, 4-bit values, offset 8.
    Q4_0,
    /// 32 weights: f16 scale and min, 4-bit values.
    Q4_1,
    /// 32 weights: f16 scale, 5-bit values, offset 16.
    Q5_0,
    /// 32 weights: f16 scale and min, 5-bit values.
    Q5_1,
    /// 32 weights: f16 scale, int8 values.
    Q8_0,
    /// 256 weights: f16 scale and min, eight 6-bit sub-scales and mins, 4-bit values.
    Q4_K,
    /// 256 weights: as Q4_K with 5-bit values.
    Q5_K,
    /// 256 weights: f16 scale, sixteen int8 sub-scales, 6-bit values, offset 32.
    Q6_K,
}

impl WeightType {
    /// Every type, for tests.
    pub const ALL: [WeightType; 11] = [
        WeightType::F32,
        WeightType::F16,
        WeightType::BF16,
        WeightType::Q4_0,
        WeightType::Q4_1,
        WeightType::Q5_0,
        WeightType::Q5_1,
        WeightType::Q8_0,
        WeightType::Q4_K,
        WeightType::Q5_K,
        WeightType::Q6_K,
    ];

    /// Weights per block.
    #[must_use]
    pub fn block_len(self) -> usize {
        match self {
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => 1,
            WeightType::Q4_0
            | WeightType::Q4_1
            | WeightType::Q5_0
            | WeightType::Q5_1
            | WeightType::Q8_0 => 32,
            WeightType::Q4_K | WeightType::Q5_K | WeightType::Q6_K => 256,
        }
    }

    /// Bytes per block in a GGUF file.
    #[must_use]
    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::F32 => 4,
            WeightType::F16 | WeightType::BF16 => 2,
            WeightType::Q4_0 => 18,
            WeightType::Q4_1 => 20,
            WeightType::Q5_0 => 22,
            WeightType::Q5_1 => 24,
            WeightType::Q8_0 => 34,
            WeightType::Q4_K => 144,
            WeightType::Q5_K => 176,
            WeightType::Q6_K => 210,
        }
    }

    /// Whether values are quantized integers (else floats).
    #[must_use]
    pub fn is_quantized(self) -> bool {
        self.block_len() > 1
    }

    /// GGUF bytes of one row of `cols` weights, if `cols` is whole blocks.
    #[must_use]
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        cols.is_multiple_of(self.block_len())
            .then(|| (cols / self.block_len()).checked_mul(self.block_bytes()))
            .flatten()
    }

    /// Its GGML name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            WeightType::F32 => "F32",
            WeightType::F16 => "F16",
            WeightType::BF16 => "BF16",
            WeightType::Q4_0 => "Q4_0",
            WeightType::Q4_1 => "Q4_1",
            WeightType::Q5_0 => "Q5_0",
            WeightType::Q5_1 => "Q5_1",
            WeightType::Q8_0 => "Q8_0",
            WeightType::Q4_K => "Q4_K",
            WeightType::Q5_K => "Q5_K",
            WeightType::Q6_K => "Q6_K",
        }
    }
}

impl std::fmt::Display for WeightType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
