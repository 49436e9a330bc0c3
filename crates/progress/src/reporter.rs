//! Where events go: a trait the caller implements or one of the sinks here.

use std::sync::Arc;

use crate::Event;

/// Receives progress events. Handed in by the caller; library code never
/// decides how progress is shown.
///
/// Contract for implementors:
/// - `report` is called from the worker doing the work, often an async task:
///   it must return quickly and never block (queue, or drop, instead).
/// - It must not call back into the [`Tracker`](crate::Tracker) that emitted
///   the event.
/// - Events of one file arrive in order; see [`State`](crate::State) for the
///   order of states.
pub trait Reporter: Send + Sync {
    /// Called once per event.
    fn report(&self, event: &Event);
}

impl<F> Reporter for F
where
    F: Fn(&Event) + Send + Sync,
{
    fn report(&self, event: &Event) {
        self(event);
    }
}

/// A reporter that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: &Event) {}
}

/// A shared, type-erased reporter; what the stages pass around.
pub type SharedReporter = Arc<dyn Reporter>;

/// The silent reporter as a [`SharedReporter`].
#[must_use]
pub fn silent() -> SharedReporter {
    Arc::new(Silent)
}

/// Sends every event into an unbounded channel, never blocking the worker.
/// Events are rate-limited at the source, so the queue stays short.
#[derive(Debug, Clone)]
pub struct ChannelReporter {
    tx: tokio::sync::mpsc::UnboundedSender<Event>,
}

impl Reporter for ChannelReporter {
    fn report(&self, event: &Event) {
        // A closed receiver means nobody is listening any more: not an error.
        let _ = self.tx.send(event.clone());
    }
}

/// The receiving end of [`channel`]: `recv().await` from async code,
/// `blocking_recv()` from a plain thread.
pub type EventReceiver = tokio::sync::mpsc::UnboundedReceiver<Event>;

/// A reporter and the stream of its events.
///
/// ```
/// use tektra_progress::{channel, Reporter, Event, Stage, State};
/// let (reporter, mut events) = channel();
/// reporter.report(&Event::new(Stage::Loading, State::Started));
/// drop(reporter);
/// assert_eq!(events.blocking_recv().unwrap().stage, Stage::Loading);
/// assert!(events.blocking_recv().is_none());
/// ```
#[must_use]
pub fn channel() -> (ChannelReporter, EventReceiver) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (ChannelReporter { tx }, rx)
}

/// Sends each event to several reporters in turn.
pub struct Fanout(pub Vec<SharedReporter>);

impl Reporter for Fanout {
    fn report(&self, event: &Event) {
        for reporter in &self.0 {
            reporter.report(event);
        }
    }
}
