//! The chunk requests (lanes) each file has in flight now, as the running daemon last saw them:
//! its status tick (every 5 s) writes them under the `kv` key `lanes` when they changed, and
//! `status` and `explain` in another process read them. The daemon's own copy is memory
//! (`upload::Board`); this mirror only informs other processes and never drives an upload.

use std::collections::HashMap;

use super::{Journal, JournalError};

const LANES_KEY: &str = "lanes";

impl Journal {
    /// Records the lanes in flight per file id (the daemon's status tick), replacing the last
    /// record.
    pub fn set_lanes_in_flight(&self, lanes: &[(i64, usize)]) -> Result<(), JournalError> {
        let files: Vec<[u64; 2]> = lanes
            .iter()
            .filter_map(|&(id, n)| Some([u64::try_from(id).ok()?, n as u64]))
            .collect();
        self.kv_set(
            LANES_KEY,
            &serde_json::json!({ "files": files }).to_string(),
        )
    }

    /// The lanes in flight per file id last recorded by a daemon (empty if none); whether that
    /// daemon still runs is [`Journal::daemon_info`]'s to say.
    pub fn lanes_in_flight(&self) -> Result<HashMap<i64, usize>, JournalError> {
        let Some((v, _)) = self.kv_get(LANES_KEY)? else {
            return Ok(HashMap::new());
        };
        Ok(v["files"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|pair| {
                let id = i64::try_from(pair[0].as_u64()?).ok()?;
                let n = usize::try_from(pair[1].as_u64()?).ok()?;
                Some((id, n))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::testutil::Fixture;

    #[test]
    fn lanes_in_flight_round_trip_and_are_replaced() {
        let f = Fixture::new();
        assert!(f.journal.lanes_in_flight().unwrap().is_empty());
        f.journal.set_lanes_in_flight(&[(3, 4), (9, 1)]).unwrap();
        let got = f.journal.lanes_in_flight().unwrap();
        assert_eq!((got.len(), got[&3], got[&9]), (2, 4, 1));
        f.journal.set_lanes_in_flight(&[]).unwrap();
        assert!(f.journal.lanes_in_flight().unwrap().is_empty());
    }
}
