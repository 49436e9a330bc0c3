//! Float conversion straight from file bytes into a tensor's final buffer.
//!
//! candle converts a tensor by first building it in the file's dtype and
//! then mapping element by element into a second allocation; for bf16 to
//! f32 that is two passes, an extra buffer and a scalar loop. Here each
//! output buffer is allocated once, at its final size, and filled block by
//! block from the mapped file with loops the compiler vectorises (and the
//! F16C instructions where `half` uses them). Rounding matches candle's
//! `to_dtype` bit for bit: round to nearest even, NaNs stay NaN.

use candle_core::{DType, Device, Shape, Tensor};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::mmap::advise_huge_pages;

#[cfg(not(target_endian = "little"))]
compile_error!("tektra-candle reads little-endian files and runs on little-endian targets only");

/// Elements per inner block: small enough that a block of the source and
/// of a temporary f32 copy stay in L1/L2 cache.
const BLOCK: usize = 4096;

/// The float types converted here without going through candle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Float {
    F32,
    F16,
    BF16,
}

impl Float {
    pub(crate) fn of(dtype: DType) -> Option<Self> {
        match dtype {
            DType::F32 => Some(Float::F32),
            DType::F16 => Some(Float::F16),
            DType::BF16 => Some(Float::BF16),
            _ => None,
        }
    }

    pub(crate) fn size(self) -> usize {
        match self {
            Float::F32 => 4,
            Float::F16 | Float::BF16 => 2,
        }
    }
}

/// A tensor's output buffer, allocated once at its final size. Half
/// floats are held as `u16` while filling: `vec![0u16; n]` is a zeroed
/// allocation the OS provides untouched, whereas `vec![f16::ZERO; n]`
/// would write every element once before the conversion writes it again.
pub(crate) enum Out {
    F32(Vec<f32>),
    F16(Vec<u16>),
    BF16(Vec<u16>),
}

impl Out {
    /// A zeroed buffer of `len` elements, with huge pages asked for when
    /// `huge_pages` is set.
    pub(crate) fn zeroed(kind: Float, len: usize, huge_pages: bool) -> Self {
        let mut out = match kind {
            Float::F32 => Out::F32(vec![0.0; len]),
            Float::F16 => Out::F16(vec![0; len]),
            Float::BF16 => Out::BF16(vec![0; len]),
        };
        if huge_pages {
            match &mut out {
                Out::F32(v) => advise_huge_pages(v),
                Out::F16(v) | Out::BF16(v) => advise_huge_pages(v),
            }
        }
        out
    }

    /// Converts `src` (whole elements of `from`) into the buffer starting
    /// at element `at`. Elements that would fall past the end are ignored;
    /// callers size the buffer from the same validated header.
    pub(crate) fn fill(&mut self, at: usize, src: &[u8], from: Float) {
        let count = src.len() / from.size();
        let end = at.saturating_add(count);
        match self {
            Out::F32(v) => {
                if let Some(dst) = v.get_mut(at..end) {
                    to_f32(src, from, dst);
                }
            }
            Out::F16(v) => {
                if let Some(dst) = v.get_mut(at..end) {
                    to_f16(src, from, bytemuck::cast_slice_mut(dst));
                }
            }
            Out::BF16(v) => {
                if let Some(dst) = v.get_mut(at..end) {
                    to_bf16(src, from, bytemuck::cast_slice_mut(dst));
                }
            }
        }
    }

    /// Hands the buffer to candle without copying it (on the CPU).
    pub(crate) fn into_tensor(self, shape: Shape, device: &Device) -> candle_core::Result<Tensor> {
        match self {
            Out::F32(v) => Tensor::from_vec(v, shape, device),
            // Same size and alignment: the allocation is reused as is.
            Out::F16(v) => {
                Tensor::from_vec(bytemuck::allocation::cast_vec::<u16, f16>(v), shape, device)
            }
            Out::BF16(v) => Tensor::from_vec(
                bytemuck::allocation::cast_vec::<u16, bf16>(v),
                shape,
                device,
            ),
        }
    }
}

/// Calls `f(block, index)` for consecutive blocks of `src` read as `T`s.
/// Mapped tensor data is aligned only as the file happens to be (a
/// safetensors header can have any length), so unaligned sources are copied
/// block by block into an aligned scratch buffer first.
fn for_blocks<T: bytemuck::Pod>(src: &[u8], mut f: impl FnMut(&[T], usize)) {
    if let Ok(all) = bytemuck::try_cast_slice::<u8, T>(src) {
        for (i, block) in all.chunks(BLOCK).enumerate() {
            f(block, i);
        }
        return;
    }
    let mut scratch = [T::zeroed(); BLOCK];
    let size = std::mem::size_of::<T>();
    for (i, chunk) in src.chunks(BLOCK * size).enumerate() {
        let n = chunk.len() / size;
        let Some(dst) = scratch.get_mut(..n) else {
            return;
        };
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(dst);
        bytes.copy_from_slice(chunk.get(..n * size).unwrap_or_default());
        f(dst, i);
    }
}

fn block_of<T>(dst: &mut [T], i: usize, len: usize) -> &mut [T] {
    let start = (i * BLOCK).min(dst.len());
    let end = start.saturating_add(len).min(dst.len());
    &mut dst[start..end]
}

/// bf16 to f32: exact, except that signalling NaNs come out quiet, as
/// `bf16::to_f32` (what candle uses) makes them.
fn bf16_bits_to_f32(bits: u16) -> f32 {
    let quiet = if bits & 0x7fff > 0x7f80 {
        bits | 0x0040
    } else {
        bits
    };
    f32::from_bits(u32::from(quiet) << 16)
}

/// f32 to bf16, rounding to nearest even; NaNs keep sign and top payload
/// bits and are made quiet (what `half` and candle do).
fn f32_to_bf16_bits(x: u32) -> u16 {
    let nan = (x >> 16) as u16 | 0x0040;
    let rounded = (x.wrapping_add(0x7fff + ((x >> 16) & 1)) >> 16) as u16;
    if x & 0x7fff_ffff > 0x7f80_0000 {
        nan
    } else {
        rounded
    }
}

fn copy_bytes<T: bytemuck::Pod>(src: &[u8], dst: &mut [T]) {
    let dst: &mut [u8] = bytemuck::cast_slice_mut(dst);
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
}

/// Converts little-endian bf16 bytes to f32, as loading a bf16 tensor
/// into an f32 model does: `dst` takes `src.len() / 2` values (extra
/// elements on either side are left alone).
///
/// ```
/// let bytes = [0x80, 0x3f, 0x00, 0xc0]; // bf16 1.0, -2.0
/// let mut out = [0.0f32; 2];
/// tektra_candle::bf16_to_f32(&bytes, &mut out);
/// assert_eq!(out, [1.0, -2.0]);
/// ```
pub fn bf16_to_f32(src: &[u8], dst: &mut [f32]) {
    let n = (src.len() / 2).min(dst.len());
    if let (Some(src), Some(dst)) = (src.get(..n * 2), dst.get_mut(..n)) {
        to_f32(src, Float::BF16, dst);
    }
}

fn to_f32(src: &[u8], from: Float, dst: &mut [f32]) {
    match from {
        Float::F32 => copy_bytes(src, dst),
        Float::BF16 => for_blocks::<u16>(src, |block, i| {
            for (d, &s) in block_of(dst, i, block.len()).iter_mut().zip(block) {
                *d = bf16_bits_to_f32(s);
            }
        }),
        // Element by element: `half`'s slice routine keeps signalling NaNs
        // signalling, while `f16::to_f32` (what candle uses) quiets them.
        Float::F16 => for_blocks::<f16>(src, |block, i| {
            for (d, s) in block_of(dst, i, block.len()).iter_mut().zip(block) {
                *d = s.to_f32();
            }
        }),
    }
}

fn to_f16(src: &[u8], from: Float, dst: &mut [f16]) {
    match from {
        Float::F16 => copy_bytes(src, dst),
        Float::F32 => for_blocks::<f32>(src, |block, i| {
            let d = block_of(dst, i, block.len());
            if d.len() == block.len() {
                d.convert_from_f32_slice(block);
            }
        }),
        Float::BF16 => {
            let mut wide = [0f32; BLOCK];
            for_blocks::<u16>(src, |block, i| {
                let wide = &mut wide[..block.len()];
                for (w, &s) in wide.iter_mut().zip(block) {
                    *w = bf16_bits_to_f32(s);
                }
                let d = block_of(dst, i, block.len());
                if d.len() == wide.len() {
                    d.convert_from_f32_slice(wide);
                }
            });
        }
    }
}

fn to_bf16(src: &[u8], from: Float, dst: &mut [bf16]) {
    match from {
        Float::BF16 => copy_bytes(src, dst),
        Float::F32 => for_blocks::<u32>(src, |block, i| {
            for (d, &s) in block_of(dst, i, block.len()).iter_mut().zip(block) {
                *d = bf16::from_bits(f32_to_bf16_bits(s));
            }
        }),
        Float::F16 => {
            let mut wide = [0f32; BLOCK];
            for_blocks::<f16>(src, |block, i| {
                let wide = &mut wide[..block.len()];
                for (w, s) in wide.iter_mut().zip(block) {
                    *w = s.to_f32();
                }
                for (d, &w) in block_of(dst, i, block.len()).iter_mut().zip(wide.iter()) {
                    *d = bf16::from_bits(f32_to_bf16_bits(w.to_bits()));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bf16 and f16 bit pattern, and a spread of f32 patterns
    /// including NaNs, infinities, subnormals and rounding ties, converted
    /// here and by `half` one element at a time.
    #[test]
    fn conversions_match_half_for_every_16_bit_pattern() {
        let all16: Vec<u16> = (0..=u16::MAX).collect();
        let bytes16: &[u8] = bytemuck::cast_slice(&all16);
        let mut f32s = vec![0f32; all16.len()];
        to_f32(bytes16, Float::BF16, &mut f32s);
        for (&b, &f) in all16.iter().zip(&f32s) {
            assert_eq!(f.to_bits(), bf16::from_bits(b).to_f32().to_bits());
        }
        to_f32(bytes16, Float::F16, &mut f32s);
        for (&b, &f) in all16.iter().zip(&f32s) {
            assert_eq!(f.to_bits(), f16::from_bits(b).to_f32().to_bits());
        }
        let mut halves = vec![f16::ZERO; all16.len()];
        to_f16(bytes16, Float::BF16, &mut halves);
        for (&b, &h) in all16.iter().zip(&halves) {
            let want = f16::from_f32(bf16::from_bits(b).to_f32());
            assert_eq!(h.to_bits(), want.to_bits(), "bf16 {b:#06x}");
        }
        let mut brains = vec![bf16::ZERO; all16.len()];
        to_bf16(bytes16, Float::F16, &mut brains);
        for (&b, &h) in all16.iter().zip(&brains) {
            let want = bf16::from_f32(f16::from_bits(b).to_f32());
            assert_eq!(h.to_bits(), want.to_bits(), "f16 {b:#06x}");
        }
    }

    #[test]
    fn f32_rounding_matches_half_including_ties_and_nans() {
        // Each 16-bit high half with every interesting low half.
        let lows = [0u32, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0x4000, 0xc000];
        let bits: Vec<u32> = (0..=u32::from(u16::MAX))
            .flat_map(|hi| lows.iter().map(move |&lo| (hi << 16) | lo))
            .collect();
        let bytes: &[u8] = bytemuck::cast_slice(&bits);
        let mut brains = vec![bf16::ZERO; bits.len()];
        to_bf16(bytes, Float::F32, &mut brains);
        let mut halves = vec![f16::ZERO; bits.len()];
        to_f16(bytes, Float::F32, &mut halves);
        for ((&x, b), h) in bits.iter().zip(&brains).zip(&halves) {
            let v = f32::from_bits(x);
            assert_eq!(b.to_bits(), bf16::from_f32(v).to_bits(), "f32 {x:#010x}");
            assert_eq!(h.to_bits(), f16::from_f32(v).to_bits(), "f32 {x:#010x}");
        }
    }

    #[test]
    fn unaligned_sources_convert_like_aligned_ones() {
        let values: Vec<u16> = (0..10_000u16).map(|i| i.wrapping_mul(7919)).collect();
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(bytemuck::cast_slice(&values));
        let unaligned = &shifted[1..];
        assert!(bytemuck::try_cast_slice::<u8, u16>(unaligned).is_err());
        let mut a = vec![0f32; values.len()];
        let mut b = vec![0f32; values.len()];
        to_f32(bytemuck::cast_slice(&values), Float::BF16, &mut a);
        to_f32(unaligned, Float::BF16, &mut b);
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}
