//! Weight matrices repacked into row panels at load.
//!
//! A matrix of `rows x cols` (rows are outputs) is cut into panels of
//! [`PANEL`] = 16 rows (the last one padded with zero rows). A panel is one
//! contiguous, 64-byte aligned run of bytes holding up to three streams,
//! each read front to back by the kernels:
//!
//! 1. **values**, per block of 32 columns and per group of columns, 64
//!    bytes = one AVX-512 register whose 4-byte lane `r` belongs to row `r`:
//!    - 4-bit types (Q4_0, Q4_1, Q4_K, and the low bits of Q5_*, Q6_K):
//!      4 groups of 8 columns; lane byte `i` holds column `8g + i` in its
//!      low nibble and `8g + 4 + i` in its high nibble;
//!    - Q8_0: 8 groups of 4 columns, byte `i` is column `4g + i` (int8).
//! 2. **high bits**: Q5_*: per block eight `u64` masks, mask `2g + h` has
//!    bit `4r + i` set when column `8g + 4h + i` of row `r` has its fifth bit;
//!    Q6_K: per block two 64-byte registers, register `p` holding columns of
//!    groups `2p` and `2p + 1`: byte `4r + i` has the top two bits of column
//!    `16p + i` in bits 0-1, `16p + 4 + i` in 2-3, `16p + 8 + i` in 4-5 and
//!    `16p + 12 + i` in 6-7.
//! 3. **scales**, as f16 bits or small integers, 16 rows side by side:
//!    - Q4_0, Q5_0, Q8_0: per block `d[16]`;
//!    - Q4_1, Q5_1: per block `d[16]`, `m[16]`;
//!    - Q4_K, Q5_K: per 256 columns `d[16]`, `dmin[16]`, then `sc[8][16]`
//!      and `m[8][16]` as bytes (the 6-bit fields unpacked);
//!    - Q6_K: per 256 columns `d[16]`, then `sc[16][16]` as int8.
//!
//! Values are the GGUF file's own integers and scales its own f16 bits,
//! so a repacked matrix computes exactly what the file holds; the size is
//! the file's (Q4_K and Q5_K grow 2-3% from unpacking the 6-bit scales).
//! F32, F16 and BF16 matrices keep their rows as they are, 16 to a panel.
//!
//! ```
//! use tektra_kernels::{PackedMatrix, WeightType};
//! let w = PackedMatrix::pack(WeightType::F32, 3, 4, &[0u8; 48]).unwrap();
//! assert_eq!((w.rows(), w.cols(), w.panels()), (3, 4, 1));
//! assert!(PackedMatrix::pack(WeightType::Q4_0, 3, 4, &[0u8; 48]).is_err());
//! ```

pub(crate) mod quant;

use crate::reference;
use crate::{AlignedBuf, KernelError, WeightType};

/// Rows per panel: the lanes of one AVX-512 register of i32 sums.
pub const PANEL: usize = 16;

/// A weight matrix in the kernels' layout.
#[derive(Debug)]
pub struct PackedMatrix {
    wtype: WeightType,
    rows: usize,
    cols: usize,
    panels: usize,
    stride: usize,
    high_at: usize,
    scales_at: usize,
    data: AlignedBuf,
}

/// Byte offsets of the streams in a panel of `cols` columns, and its size.
pub(crate) fn layout(wtype: WeightType, cols: usize) -> (usize, usize, usize) {
    let nb = cols / 32;
    let values = match wtype {
        WeightType::F32 => PANEL * cols * 4,
        WeightType::F16 | WeightType::BF16 => PANEL * cols * 2,
        WeightType::Q8_0 => nb * 512,
        _ => nb * 256,
    };
    let high = match wtype {
        WeightType::Q5_0 | WeightType::Q5_1 | WeightType::Q5_K => nb * 64,
        WeightType::Q6_K => nb * 128,
        _ => 0,
    };
    let scales = match wtype {
        WeightType::Q4_0 | WeightType::Q5_0 | WeightType::Q8_0 => nb * 32,
        WeightType::Q4_1 | WeightType::Q5_1 => nb * 64,
        WeightType::Q4_K | WeightType::Q5_K => nb / 8 * 320,
        WeightType::Q6_K => nb / 8 * 288,
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => 0,
    };
    let total = (values + high + scales).div_ceil(64) * 64;
    (values, values + high, total)
}

impl PackedMatrix {
    /// Repacks a GGUF tensor of `rows x cols` (`cols` innermost) from its
    /// file bytes.
    ///
    /// # Errors
    /// [`KernelError::PartialBlock`] when `cols` is not whole blocks,
    /// [`KernelError::ByteCount`] when `gguf` is not exactly the tensor's
    /// bytes, [`KernelError::TooLarge`] when the size overflows.
    pub fn pack(
        wtype: WeightType,
        rows: usize,
        cols: usize,
        gguf: &[u8],
    ) -> Result<Self, KernelError> {
        let block = wtype
            .block_len()
            .max(if wtype.is_quantized() { 32 } else { 1 });
        if cols == 0 || !cols.is_multiple_of(block) {
            return Err(KernelError::PartialBlock { wtype, block, cols });
        }
        let too_large = || KernelError::TooLarge { rows, cols };
        let row_bytes = wtype.row_bytes(cols).ok_or_else(too_large)?;
        let expected = row_bytes.checked_mul(rows).ok_or_else(too_large)?;
        if gguf.len() != expected {
            return Err(KernelError::ByteCount {
                wtype,
                rows,
                cols,
                expected,
                got: gguf.len(),
            });
        }
        let panels = rows.div_ceil(PANEL);
        let (high_at, scales_at, stride) = layout(wtype, cols);
        let size = stride.checked_mul(panels).ok_or_else(too_large)?;
        let mut m = PackedMatrix {
            wtype,
            rows,
            cols,
            panels,
            stride,
            high_at,
            scales_at,
            data: AlignedBuf::zeroed(size),
        };
        let bytes = m.data.as_mut_slice();
        for (p, panel) in bytes.chunks_exact_mut(stride).enumerate() {
            let first = p * PANEL;
            let last = (first + PANEL).min(rows);
            let src = &gguf[first * row_bytes..last * row_bytes];
            if wtype.is_quantized() {
                quant::pack_panel(wtype, cols, src, row_bytes, panel, high_at, scales_at);
            } else {
                panel[..src.len()].copy_from_slice(src);
            }
        }
        Ok(m)
    }

    /// The weight type.
    #[must_use]
    pub fn wtype(&self) -> WeightType {
        self.wtype
    }

    /// Rows (outputs).
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (inputs).
    #[must_use]
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Panels of 16 rows.
    #[must_use]
    pub fn panels(&self) -> usize {
        self.panels
    }

    /// Bytes held.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Panel `p`'s bytes.
    #[must_use]
    pub fn panel(&self, p: usize) -> &[u8] {
        &self.data.as_slice()[p * self.stride..(p + 1) * self.stride]
    }

    /// Offsets of the high-bit and scale streams inside a panel.
    #[must_use]
    pub(crate) fn streams(&self) -> (usize, usize) {
        (self.high_at, self.scales_at)
    }

    /// Dequantizes row `r` into `out` (`cols` values): embedding lookups.
    ///
    /// # Panics
    /// When `r >= rows` or `out` is shorter than `cols`.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows && out.len() >= self.cols);
        let panel = self.panel(r / PANEL);
        let lane = r % PANEL;
        let out = &mut out[..self.cols];
        match self.wtype {
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => {
                let rb = self.wtype.row_bytes(self.cols).unwrap_or(0);
                reference::dequantize_row(self.wtype, &panel[lane * rb..(lane + 1) * rb], out);
            }
            _ => quant::dequantize_lane(self, panel, lane, out),
        }
    }
}
