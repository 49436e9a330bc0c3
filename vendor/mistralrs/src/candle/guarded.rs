//! A `VarBuilder` backend that never lets a model constructor panic.
//!
//! candle-transformers' `llama::Llama::load` unwraps each block's result, so a
//! missing tensor, a wrong shape or a cancelled load deep in the file would
//! panic. Here a failed read hands the constructor a stand-in of the asked
//! shape (a broadcast scalar: no memory) and keeps the first error, which the
//! caller returns once the constructor is done.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::Init;
use candle_nn::var_builder::{SimpleBackend, VarBuilder};
use tektra_candle::SafetensorsBackend;

/// Wraps `inner`, remembering its first failure instead of passing it on.
#[derive(Clone)]
pub(crate) struct Guarded {
    inner: SafetensorsBackend,
    first_error: Arc<Mutex<Option<candle_core::Error>>>,
}

impl Guarded {
    pub(crate) fn new(inner: SafetensorsBackend) -> Guarded {
        Guarded {
            inner,
            first_error: Arc::new(Mutex::new(None)),
        }
    }

    pub(crate) fn var_builder(&self, dtype: DType, device: Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device)
    }

    /// The first read that failed, if any.
    pub(crate) fn take_error(&self) -> Option<candle_core::Error> {
        self.first_error.lock().ok().and_then(|mut e| e.take())
    }

    fn keep(&self, err: candle_core::Error) {
        if let Ok(mut slot) = self.first_error.lock() {
            slot.get_or_insert(err);
        }
    }
}

impl SimpleBackend for Guarded {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        // After a failure the build is lost anyway: stop reading weights.
        let failed = self.first_error.lock().map_or(true, |e| e.is_some());
        if failed {
            return Tensor::zeros((), dtype, dev)?.broadcast_as(shape);
        }
        match self.inner.get(shape.clone(), name, init, dtype, dev) {
            Ok(t) => Ok(t),
            Err(e) => {
                self.keep(e);
                Tensor::zeros((), dtype, dev)?.broadcast_as(shape)
            }
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.inner.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}
