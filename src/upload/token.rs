//! The upload token shared by all workers, and the pause that a rejected token puts on them.
//!
//! A 401 on `/upload` means the token is invalid, expired or deleted: retrying with the same token
//! only burns requests, so the whole pool pauses (one log line) until the token changes — the
//! token file is rewritten, or SIGHUP re-reads it (which always resumes, so an operator can say
//! "try again").

use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::secret::Secret;

/// What `status` shows as `"token"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// Not used yet since it was loaded.
    Unknown,
    /// The last upload with it was accepted.
    Ok,
    /// api.video answered 401; uploads are paused.
    Rejected { reason: String },
    /// api.video refused the API key: paused until SIGHUP ([`TokenGate::replace`] with `force`);
    /// neither a new token nor a successful chunk lifts it.
    ApiKeyRejected { reason: String },
}

impl TokenState {
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenState::Unknown => "unknown",
            TokenState::Ok => "ok",
            TokenState::Rejected { .. } => "rejected",
            TokenState::ApiKeyRejected { .. } => "api_key_rejected",
        }
    }
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct TokenGate {
    token: Arc<RwLock<Secret>>,
    state: Arc<watch::Sender<TokenState>>,
}

impl TokenGate {
    pub fn new(token: Secret) -> TokenGate {
        TokenGate {
            token: Arc::new(RwLock::new(token)),
            state: Arc::new(watch::channel(TokenState::Unknown).0),
        }
    }

    /// The token to send now.
    pub fn current(&self) -> Secret {
        match self.token.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn state(&self) -> TokenState {
        self.state.borrow().clone()
    }

    /// Records a successful upload request.
    pub fn accepted(&self) {
        self.state.send_if_modified(|s| {
            if matches!(s, TokenState::Ok | TokenState::ApiKeyRejected { .. }) {
                false
            } else {
                *s = TokenState::Ok;
                true
            }
        });
    }

    /// Pauses the pool. Returns true the first time (so the caller logs exactly one line).
    pub fn reject(&self, reason: &str) -> bool {
        self.state.send_if_modified(|s| {
            if matches!(s, TokenState::Rejected { .. }) {
                false
            } else {
                *s = TokenState::Rejected {
                    reason: reason.to_owned(),
                };
                true
            }
        })
    }

    /// api.video refused the API key: pause until SIGHUP or a rewritten key file. True if this
    /// paused the pool now.
    pub fn reject_api_key(&self, reason: &str) -> bool {
        self.state.send_if_modified(|s| {
            if matches!(s, TokenState::ApiKeyRejected { .. }) {
                false
            } else {
                *s = TokenState::ApiKeyRejected {
                    reason: reason.to_owned(),
                };
                true
            }
        })
    }

    /// A new API key was taken (its file rewritten): lifts an API-key pause. True if it did.
    pub fn api_key_replaced(&self) -> bool {
        self.state.send_if_modified(|s| {
            if matches!(s, TokenState::ApiKeyRejected { .. }) {
                *s = TokenState::Unknown;
                true
            } else {
                false
            }
        })
    }

    /// A token was (re)loaded. Resumes the pool if the token differs from the current one, or
    /// always when `force` (SIGHUP). Returns true when the pool was resumed.
    pub fn replace(&self, token: Secret, force: bool) -> bool {
        let changed = {
            let mut cur = match self.token.write() {
                Ok(t) => t,
                Err(p) => p.into_inner(),
            };
            let changed = *cur != token;
            *cur = token;
            changed
        };
        if changed || force {
            self.state.send_if_modified(|s| {
                let lifts = match s {
                    TokenState::Rejected { .. } => true,
                    TokenState::ApiKeyRejected { .. } => force,
                    _ => false,
                };
                if lifts {
                    *s = TokenState::Unknown;
                    true
                } else {
                    false
                }
            })
        } else {
            false
        }
    }

    /// Waits while the token is rejected. Returns false if `shutdown` came first.
    pub async fn wait_usable(&self, shutdown: &CancellationToken) -> bool {
        let mut rx = self.state.subscribe();
        loop {
            if shutdown.is_cancelled() {
                return false;
            }
            if !matches!(
                *rx.borrow_and_update(),
                TokenState::Rejected { .. } | TokenState::ApiKeyRejected { .. }
            ) {
                return true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                r = rx.changed() => if r.is_err() { return false },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rejected API key pauses until SIGHUP (`replace` with `force`): a successful chunk or a
    /// new token does not lift it.
    #[tokio::test]
    async fn an_api_key_pause_lifts_only_on_sighup() {
        let gate = TokenGate::new(Secret::new("to1".to_owned()));
        assert!(gate.reject_api_key("401 on POST /videos"));
        assert!(!gate.reject_api_key("again"), "one pause, one log line");
        gate.accepted();
        assert!(matches!(gate.state(), TokenState::ApiKeyRejected { .. }));
        gate.replace(Secret::new("to2".to_owned()), false);
        assert!(matches!(gate.state(), TokenState::ApiKeyRejected { .. }));
        let stop = CancellationToken::new();
        let waiting = tokio::spawn({
            let (gate, stop) = (gate.clone(), stop.clone());
            async move { gate.wait_usable(&stop).await }
        });
        assert!(gate.replace(Secret::new("to2".to_owned()), true), "SIGHUP");
        assert!(waiting.await.unwrap());
        assert_eq!(gate.state(), TokenState::Unknown);
    }

    #[tokio::test]
    async fn reject_pauses_until_replaced() {
        let gate = TokenGate::new(Secret::new("to1111111111111111111111"));
        let shutdown = CancellationToken::new();
        assert!(gate.wait_usable(&shutdown).await);
        assert!(gate.reject("401"));
        assert!(!gate.reject("401"), "only the first rejection is reported");
        let g2 = gate.clone();
        let waiter = tokio::spawn(async move { g2.wait_usable(&CancellationToken::new()).await });
        assert!(!gate.replace(Secret::new("to1111111111111111111111"), false));
        assert!(!waiter.is_finished());
        assert!(gate.replace(Secret::new("to2222222222222222222222"), false));
        assert!(waiter.await.unwrap());
        assert_eq!(gate.current().expose(), "to2222222222222222222222");
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait() {
        let gate = TokenGate::new(Secret::new("to1111111111111111111111"));
        gate.reject("401");
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(!gate.wait_usable(&shutdown).await);
    }
}
