//! Connections for upload lanes: chunks of one file sent at the same time must travel on
//! separate TCP connections (one stream per lane, each with its own window), which one reqwest
//! pool does not promise (over HTTP/2 it multiplexes them on one connection). A lane takes a
//! [`LaneClient`], a [`Client`] with a pool of its own ([`Client::own_connections`]); dropped,
//! it goes back to the spares of the client it came from, so its connection is reused by the
//! next lane (and the next file) instead of a new handshake.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use super::client::Client;
use super::error::ApiError;

/// Idle lane clients of one [`Client`] (shared by its clones).
pub type Spare = Arc<Mutex<Vec<Client>>>;

/// A client for one lane; back to the spares when dropped.
pub struct LaneClient {
    client: Option<Client>,
    home: Spare,
}

impl Client {
    /// A client on connections of its own for one upload lane: an idle one if there is one,
    /// else a new one.
    pub fn lane(&self) -> Result<LaneClient, ApiError> {
        let home = self.spare_lanes().clone();
        let idle = home.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let client = match idle {
            Some(c) => c,
            None => self.own_connections()?,
        };
        Ok(LaneClient {
            client: Some(client),
            home,
        })
    }
}

impl Deref for LaneClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Always Some until drop.
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("lane client used after drop"))
    }
}

impl Drop for LaneClient {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            self.home.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        }
    }
}
