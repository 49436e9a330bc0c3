//! The server as a network peer sees it: limits on connections, links built
//! from the name the client used, what may leave the served folder, the
//! control routes and the Xet proxy's gate. Everything on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod common;
mod confine;
mod controls;
mod limits;
mod links;
#[cfg(feature = "xet")]
mod xet_proxy;
