//! `tektra.Engine`: a loaded model; `generate` returns the text, or with
//! `stream=True` an iterator of pieces as they are decoded.

use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use tektra_inference::{EngineOptions, Message, ModelRef, Prompt, Sampling};
use tokio_util::sync::CancellationToken;

use crate::errors::{BadInputError, TektraError, engine_error};

/// A model loaded for generation (fetched through the cache first).
#[pyclass(module = "tektra")]
pub struct Engine {
    engine: Arc<Mutex<tektra_inference::Engine>>,
    chat: bool,
}

enum Piece {
    Text(String),
    Done(Result<(), tektra_inference::Error>),
}

/// The pieces of a streamed generation. Dropping it (or Ctrl-C while
/// iterating) stops the generation at its next token.
#[pyclass(module = "tektra")]
pub struct Stream {
    rx: Mutex<Receiver<Piece>>,
    cancel: CancellationToken,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[pymethods]
impl Stream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        loop {
            let next = py.detach(|| {
                self.rx
                    .lock()
                    .map(|rx| rx.recv_timeout(Duration::from_millis(50)))
                    .map_err(|_| ())
            });
            let next = next.map_err(|()| TektraError::new_err("the stream's lock is poisoned"))?;
            match next {
                Ok(Piece::Text(t)) => return Ok(Some(t)),
                Ok(Piece::Done(Ok(()))) | Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Ok(Piece::Done(Err(e))) => return Err(engine_error(e)),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = py.check_signals() {
                        self.cancel.cancel();
                        return Err(e);
                    }
                }
            }
        }
    }
}

#[pymethods]
impl Engine {
    /// Loads `model`: `org/name[@rev][:file.gguf]`, or a local file or folder.
    #[new]
    #[pyo3(signature = (model, cache_dir=None, endpoint=None, token=None, threads=None, max_context=4096))]
    fn new(
        py: Python<'_>,
        model: &str,
        cache_dir: Option<std::path::PathBuf>,
        endpoint: Option<String>,
        token: Option<String>,
        threads: Option<usize>,
        max_context: usize,
    ) -> PyResult<Self> {
        let reference: ModelRef = model.parse().map_err(engine_error)?;
        if threads == Some(0) {
            return Err(BadInputError::new_err("threads must be at least 1"));
        }
        let options = EngineOptions {
            hub: crate::options(cache_dir, endpoint, token),
            threads,
            max_context,
            ..EngineOptions::default()
        };
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let engine = crate::run_interruptible(py, &cancel, async move {
            tektra_inference::Engine::load(&reference, &options, tektra_progress::silent(), &token)
                .await
        })?
        .map_err(engine_error)?;
        let chat = engine.info().has_chat_template;
        Ok(Engine {
            engine: Arc::new(Mutex::new(engine)),
            chat,
        })
    }

    /// Generates after `prompt` (sent as a user message when the model has
    /// a chat template, unless `raw`). Returns the text, or with
    /// `stream=True` an iterator of pieces.
    #[pyo3(signature = (prompt, stream=false, max_tokens=256, temperature=0.7, top_k=40, top_p=0.9, seed=42, stop=None, raw=false))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: String,
        stream: bool,
        max_tokens: usize,
        temperature: f32,
        top_k: usize,
        top_p: f32,
        seed: u64,
        stop: Option<Vec<String>>,
        raw: bool,
    ) -> PyResult<Py<PyAny>> {
        let sampling = Sampling {
            temperature,
            top_k,
            top_p,
            seed,
            max_tokens,
            stop: stop.unwrap_or_default(),
            ..Sampling::default()
        };
        sampling.validate().map_err(engine_error)?;
        let prompt = if self.chat && !raw {
            Prompt::Chat(vec![Message::new("user", prompt)])
        } else {
            Prompt::Text(prompt)
        };
        let (tx, rx) = channel();
        let cancel = CancellationToken::new();
        let (engine, stop_token) = (self.engine.clone(), cancel.clone());
        std::thread::Builder::new()
            .name("tektra generate".into())
            .spawn(move || {
                let mut engine = engine
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let result = engine.generate(
                    &prompt,
                    &sampling,
                    &mut |piece| {
                        if tx.send(Piece::Text(piece.to_string())).is_err() {
                            stop_token.cancel();
                        }
                    },
                    &stop_token,
                );
                let _ = tx.send(Piece::Done(result.map(|_| ())));
            })
            .map_err(|e| TektraError::new_err(format!("cannot start generating: {e}")))?;
        let stream_obj = Stream {
            rx: Mutex::new(rx),
            cancel,
        };
        if stream {
            return Ok(Py::new(py, stream_obj)?.into_any());
        }
        let mut text = String::new();
        while let Some(piece) = stream_obj.__next__(py)? {
            text.push_str(&piece);
        }
        Ok(text.into_pyobject(py)?.into_any().unbind())
    }
}
