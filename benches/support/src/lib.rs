//! What the benchmarks under `benches/` share: [`run`] a child to the end and
//! read what the kernel accounted for it, and [`Served`], a `tektra serve`
//! for the length of a run.
//!
//! Errors are plain strings: a benchmark prints them and stops.

mod measure;
mod serve;

pub use measure::{Cost, run};
pub use serve::Served;
