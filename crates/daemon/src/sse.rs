//! Server-sent events: a response whose body is fed by a channel, so the
//! producer learns the client left when its sends start to fail.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

/// Frames buffered between a producer and a slow client.
const BUFFER: usize = 64;

/// A channel for frames and the response that streams them.
pub(crate) fn channel() -> (mpsc::Sender<Bytes>, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFER);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (tx, response(body))
}

/// The response streaming `frames` as server-sent events.
pub(crate) fn response<S>(frames: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    let mut response = Body::from_stream(frames).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer would hold back every token.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One `data:` frame (with an `id:` when given). `data` is one line of JSON
/// (serde_json never writes a raw newline).
pub(crate) fn frame(id: Option<usize>, data: &str) -> Bytes {
    match id {
        Some(id) => Bytes::from(format!("id: {id}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}
