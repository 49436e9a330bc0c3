//! Bandwidth limits of a server: a total every answer shares, and one per
//! client address, for people sharing a slow link.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tektra_rate::RateLimiter;

/// Bytes per second a server sends at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Over every client together.
    pub total: Option<u64>,
    /// To each client address.
    pub per_client: Option<u64>,
}

/// Client addresses remembered at most; past it the table starts over.
const MAX_CLIENTS: usize = 4096;

/// The limiters an answer's body draws from.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    total: Option<Arc<RateLimiter>>,
    per_client: Option<u64>,
    clients: Mutex<HashMap<IpAddr, Arc<RateLimiter>>>,
}

impl Pacer {
    pub(crate) fn new(limits: RateLimits) -> Pacer {
        Pacer {
            total: limits.total.map(|r| Arc::new(RateLimiter::new(r))),
            per_client: limits.per_client,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// What an answer to `client` waits on for each block it sends.
    pub(crate) fn for_client(&self, client: Option<IpAddr>) -> Vec<Arc<RateLimiter>> {
        let mut out: Vec<Arc<RateLimiter>> = self.total.iter().cloned().collect();
        if let (Some(rate), Some(ip)) = (self.per_client, client) {
            let mut clients = self
                .clients
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
                clients.clear();
            }
            out.push(
                clients
                    .entry(ip)
                    .or_insert_with(|| Arc::new(RateLimiter::new(rate)))
                    .clone(),
            );
        }
        out
    }
}
