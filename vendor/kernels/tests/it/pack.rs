use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};
use std::borrow::Cow;
use tektra_kernels::{KernelError, PackedMatrix, WeightType, reference};

use crate::common::{Rng, gguf_tensor};

fn candle_type(w: WeightType) -> GgmlDType {
    match w {
        WeightType::F32 => GgmlDType::F32,
        WeightType::F16 => GgmlDType::F16,
        WeightType::BF16 => GgmlDType::BF16,
        WeightType::Q4_0 => GgmlDType::Q4_0,
        WeightType::Q4_1 => GgmlDType::Q4_1,
        WeightType::Q5_0 => GgmlDType::Q5_0,
        WeightType::Q5_1 => GgmlDType::Q5_1,
        WeightType::Q8_0 => GgmlDType::Q8_0,
        WeightType::Q4_K => GgmlDType::Q4K,
        WeightType::Q5_K => GgmlDType::Q5K,
        WeightType::Q6_K => GgmlDType::Q6K,
    }
}

/// candle's dequantization of the same GGUF bytes.
fn candle_dequantize(w: WeightType, rows: usize, cols: usize, bytes: &[u8]) -> Vec<f32> {
    let storage = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, candle_type(w)).unwrap();
    let t = QTensor::new(storage, (rows, cols)).unwrap();
    let d: Tensor = t.dequantize(&Device::Cpu).unwrap();
    d.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn reference_decoders_agree_with_candle() {
    let mut rng = Rng(7);
    for w in WeightType::ALL {
        let cols = if w.block_len() == 256 { 512 } else { 96 };
        let rows = 5;
        let bytes = gguf_tensor(w, rows, cols, &mut rng);
        let theirs = candle_dequantize(w, rows, cols, &bytes);
        let rb = w.row_bytes(cols).unwrap();
        for r in 0..rows {
            let mut ours = vec![0.0; cols];
            reference::dequantize_row(w, &bytes[r * rb..(r + 1) * rb], &mut ours);
            for c in 0..cols {
                let (a, b) = (ours[c], theirs[r * cols + c]);
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                    "{w} row {r} col {c}: ours {a}, candle {b}"
                );
            }
        }
    }
}

#[test]
fn repacked_rows_read_back_exactly() {
    let mut rng = Rng(11);
    for w in WeightType::ALL {
        let cols = if w.block_len() == 256 { 768 } else { 160 };
        for rows in [1, 16, 37] {
            let bytes = gguf_tensor(w, rows, cols, &mut rng);
            let m = PackedMatrix::pack(w, rows, cols, &bytes).unwrap();
            let rb = w.row_bytes(cols).unwrap();
            for r in 0..rows {
                let (mut a, mut b) = (vec![0.0; cols], vec![0.0; cols]);
                m.dequantize_row(r, &mut a);
                reference::dequantize_row(w, &bytes[r * rb..(r + 1) * rb], &mut b);
                assert_eq!(a, b, "{w} {rows}x{cols} row {r}");
            }
        }
    }
}

#[test]
fn wrong_sizes_are_typed_errors() {
    let err = PackedMatrix::pack(WeightType::Q4_1, 4, 64, &[0u8; 159]).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::ByteCount {
                expected: 160,
                got: 159,
                ..
            }
        ),
        "{err}"
    );
    let err = PackedMatrix::pack(WeightType::Q4_K, 4, 64, &[0u8; 0]).unwrap_err();
    assert!(
        matches!(err, KernelError::PartialBlock { block: 256, .. }),
        "{err}"
    );
    let err = PackedMatrix::pack(WeightType::Q8_0, usize::MAX / 2, 64, &[]).unwrap_err();
    assert!(matches!(err, KernelError::TooLarge { .. }), "{err}");
    let err = PackedMatrix::pack(WeightType::F32, 1, 0, &[]).unwrap_err();
    assert!(matches!(err, KernelError::PartialBlock { .. }), "{err}");
}
