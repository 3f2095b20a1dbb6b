//! Daemon-wide state shared with other processes through the `kv` table: the upload token's
//! verdict (shown by `status`, read by `explain`), the running daemon's heartbeat, and the
//! upload rate in force (`[upload] max_rate`, its timetable and SIGUSR2; `status`, metrics).

use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};

use super::row::{from_unix_ms, now_ms};
use super::{Journal, JournalError, owner};

const TOKEN_KEY: &str = "token_state";
const HEARTBEAT_KEY: &str = "daemon";
const RATE_KEY: &str = "rate";

/// The daemon's verdict on the upload token, shared with `status` through the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// The last upload request was accepted.
    Ok,
    /// api.video answered 401: uploads are paused until the token changes.
    Rejected,
    /// Not known yet (no request since start or since the token changed).
    Unknown,
    /// api.video refused the API key (401 on `POST /videos`): uploads are paused until SIGHUP
    /// (which re-reads `api.api_key_file`); a successful chunk does not lift it.
    ApiKeyRejected,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Ok => "ok",
            TokenState::Rejected => "rejected",
            TokenState::Unknown => "unknown",
            TokenState::ApiKeyRejected => "api_key_rejected",
        }
    }

    /// `status --json`'s `token` (`ok`, `rejected`, `unknown`): an API-key pause says nothing
    /// about the token.
    pub fn token_str(self) -> &'static str {
        match self {
            TokenState::ApiKeyRejected => "unknown",
            s => s.as_str(),
        }
    }

    /// Why uploads are paused, if they are.
    pub fn pause(self) -> Option<&'static str> {
        match self {
            TokenState::Rejected => Some("upload token rejected"),
            TokenState::ApiKeyRejected => Some("API key rejected"),
            TokenState::Ok | TokenState::Unknown => None,
        }
    }

    fn parse(s: &str) -> TokenState {
        match s {
            "ok" => TokenState::Ok,
            "rejected" => TokenState::Rejected,
            "api_key_rejected" => TokenState::ApiKeyRejected,
            _ => TokenState::Unknown,
        }
    }
}

/// [`TokenState`] with why and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    pub state: TokenState,
    pub reason: Option<String>,
    pub since: Option<SystemTime>,
}

/// The last heartbeat of a daemon (`ingestd run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonInfo {
    pub pid: u32,
    /// Whether that process is still running (checked through `/proc`, pid reuse excluded).
    pub running: bool,
    pub heartbeat_at: SystemTime,
}

/// The upload rate in force in the daemon, as it last recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateInForce {
    /// Bytes per second the configuration asks for now; 0 = unlimited.
    pub rate: u64,
    /// SIGUSR2 lifted the limit (uploads run unlimited until the next SIGUSR2).
    pub bypassed: bool,
    /// The timetable as configured (None for a flat `max_rate`).
    pub timetable: Option<String>,
    /// When the rate next changes, and to what (None: never).
    pub next_change_at: Option<SystemTime>,
    pub next_rate: Option<u64>,
}

impl Journal {
    /// Writes `value` under `key` with the current time.
    pub(super) fn kv_set(&self, key: &str, value: &str) -> Result<(), JournalError> {
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT INTO kv (key, value, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at",
        )
        .and_then(|mut st| st.execute(params![key, value, now_ms()]))
        .map_err(|e| self.err(e))?;
        drop(conn);
        self.note_write_ok();
        Ok(())
    }

    /// The JSON value under `key` and when it was written.
    pub(super) fn kv_get(
        &self,
        key: &str,
    ) -> Result<Option<(serde_json::Value, SystemTime)>, JournalError> {
        let conn = self.conn();
        let found: Option<(String, i64)> = conn
            .prepare_cached("SELECT value, at FROM kv WHERE key = ?1")
            .and_then(|mut st| {
                st.query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        Ok(found.map(|(value, at)| {
            (
                serde_json::from_str(&value).unwrap_or_default(),
                from_unix_ms(at),
            )
        }))
    }

    /// Records the token verdict for every process (`status` shows it).
    pub fn set_token_state(
        &self,
        state: TokenState,
        reason: Option<&str>,
    ) -> Result<(), JournalError> {
        let value = serde_json::json!({ "state": state.as_str(), "reason": reason }).to_string();
        self.kv_set(TOKEN_KEY, &value)
    }

    /// The last recorded token verdict ([`TokenState::Unknown`] if none).
    pub fn token_state(&self) -> Result<TokenStatus, JournalError> {
        Ok(match self.kv_get(TOKEN_KEY)? {
            None => TokenStatus {
                state: TokenState::Unknown,
                reason: None,
                since: None,
            },
            Some((v, at)) => TokenStatus {
                state: TokenState::parse(v["state"].as_str().unwrap_or("")),
                reason: v["reason"].as_str().map(str::to_owned),
                since: Some(at),
            },
        })
    }

    /// Records that this process (the daemon) is alive: a write that round-trips through the
    /// journal, suitable as the sd_notify watchdog's proof of health. `status` shows it.
    pub fn heartbeat(&self) -> Result<(), JournalError> {
        let value = serde_json::json!({
            "owner": self.inner.owner,
            "pid": std::process::id(),
        })
        .to_string();
        self.kv_set(HEARTBEAT_KEY, &value)
    }

    /// [`Journal::heartbeat`] unless this process recorded one less than `max_age` ago (a read,
    /// no write): the status tick keeps `status` informed without an fsync every few seconds on
    /// an idle box, and under systemd the watchdog's heartbeats already keep it fresh.
    pub fn heartbeat_if_older(&self, max_age: std::time::Duration) -> Result<(), JournalError> {
        let fresh = self.kv_get(HEARTBEAT_KEY)?.is_some_and(|(v, at)| {
            v["owner"].as_str() == Some(self.inner.owner.as_str())
                && SystemTime::now()
                    .duration_since(at)
                    .is_ok_and(|age| age < max_age)
        });
        if fresh { Ok(()) } else { self.heartbeat() }
    }

    /// Records the upload rate in force (the daemon, when it changes).
    pub fn set_rate_in_force(&self, r: &RateInForce) -> Result<(), JournalError> {
        let value = serde_json::json!({
            "rate": r.rate,
            "bypassed": r.bypassed,
            "timetable": r.timetable,
            "next_change_at_ms": r.next_change_at.map(super::row::to_unix_ms),
            "next_rate": r.next_rate,
        })
        .to_string();
        self.kv_set(RATE_KEY, &value)
    }

    /// The upload rate the daemon last recorded (any daemon, running or not; see
    /// [`Journal::daemon_info`]).
    pub fn rate_in_force(&self) -> Result<Option<RateInForce>, JournalError> {
        Ok(self.kv_get(RATE_KEY)?.map(|(v, _)| RateInForce {
            rate: v["rate"].as_u64().unwrap_or_default(),
            bypassed: v["bypassed"].as_bool().unwrap_or_default(),
            timetable: v["timetable"].as_str().map(str::to_owned),
            next_change_at: v["next_change_at_ms"].as_i64().map(from_unix_ms),
            next_rate: v["next_rate"].as_u64(),
        }))
    }

    /// The last daemon heartbeat, if any.
    pub fn daemon_info(&self) -> Result<Option<DaemonInfo>, JournalError> {
        Ok(self.kv_get(HEARTBEAT_KEY)?.map(|(v, at)| DaemonInfo {
            pid: v["pid"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or_default(),
            running: v["owner"].as_str().is_some_and(owner::is_alive),
            heartbeat_at: at,
        }))
    }
}
