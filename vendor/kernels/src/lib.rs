//! `tektra-kernels`: the CPU kernels under our forward pass.
//!
//! GGUF weight matrices are repacked at load into [`PackedMatrix`] row
//! panels (16 rows interleaved, see [`pack`]) and multiplied with
//! activations quantized once per product to int8 blocks of 32
//! ([`QuantActs`]). The instruction set is chosen at run time ([`Isa`]):
//! AVX-512 with VNNI, AVX2, or portable scalar code, all on the same
//! layout, so one binary is fast on every x86-64 machine and the scalar
//! path is the reference the others are tested against.
//!
//! A [`Team`] runs one parallel region per forward step: every thread
//! executes the same sequence of ops, each op's work is split in chunks
//! claimed atomically, and ops are separated by barriers. The ops live
//! here too ([`ops`]) so that all `unsafe` (SIMD intrinsics, the shared
//! buffers threads write disjoint parts of) stays inside this crate.
//!
//! ```
//! use tektra_kernels::{Isa, PackedMatrix, QuantActs, WeightType, reference};
//! // A 2 x 32 Q8_0 matrix: per row an f16 scale (1.0) and 32 int8 values.
//! let mut gguf = Vec::new();
//! for row in 0..2i8 {
//!     gguf.extend_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
//!     gguf.extend((0..32).map(|i| (i * (row + 1)) as u8));
//! }
//! let w = PackedMatrix::pack(WeightType::Q8_0, 2, 32, &gguf).unwrap();
//! let x: Vec<f32> = (0..32).map(|i| if i == 3 { 1.0 } else { 0.0 }).collect();
//! let mut acts = QuantActs::new(32, 1);
//! acts.quantize_all(&x, Isa::Scalar);
//! let mut y = [0.0f32; 2];
//! tektra_kernels::matmul::matmul_serial(Isa::Scalar, &w, &acts, &x, &mut y);
//! assert!((y[0] - 3.0).abs() < 1e-3 && (y[1] - 6.0).abs() < 1e-3);
//! # let _ = reference::dequantize_row;
//! ```

#![allow(unsafe_code)] // SIMD intrinsics and the team's shared buffers; each use has a SAFETY note.

mod acts;
mod aligned;
pub mod attention;
mod error;
mod isa;
pub mod math;
pub mod matmul;
pub mod ops;
pub mod pack;
mod pool;
pub mod reference;
mod types;

pub use acts::QuantActs;
pub use aligned::AlignedBuf;
pub use error::KernelError;
pub use isa::{ISA_ENV, Isa};
pub use pack::PackedMatrix;
pub use pool::{Pool, SharedBuf, Team};
pub use types::WeightType;
