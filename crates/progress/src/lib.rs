//! One progress model for the whole path of a model: resolve, download,
//! verify, load, prefetch and warm-up all report the same [`Event`].
//!
//! Library code takes a [`SharedReporter`] from its caller and reports through
//! a [`Tracker`]; only binaries decide how events are shown (bars, NDJSON).
//! Events are rate-limited at the source and reporters must never block, so a
//! slow UI cannot slow a download.

mod event;
mod reporter;
mod tracker;

pub use event::{Aggregate, Event, Stage, State};
pub use reporter::{
    ChannelReporter, EventReceiver, Fanout, Reporter, SharedReporter, Silent, channel, silent,
};
pub use tracker::{DEFAULT_INTERVAL, FileProgress, Tracker};

#[cfg(test)]
mod tests;
