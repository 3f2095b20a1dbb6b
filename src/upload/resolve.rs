//! The two 400s that mean success: a re-sent chunk the service already has, a finished video.
//!
//! Re-sending a chunk is not idempotent at api.video (PROTOCOL.md §1.7). A worker only ever
//! sends the chunk that starts at the committed offset, so when that chunk is refused with
//! `video-content-range-by-bytes-range-overlap`, the service stored it before (its response was
//! lost, or the process died before committing): advance. `video-source-already-uploaded` on
//! the last chunk means the video is complete: done. Anywhere else, both are ordinary permanent
//! errors (something else uploaded into this video).

/// Slug of the 400 for a byte range the video already received.
pub const RANGE_OVERLAP: &str = "video-content-range-by-bytes-range-overlap";
/// Slug of the 400 for any upload to a video whose source is complete.
pub const ALREADY_UPLOADED: &str = "video-source-already-uploaded";

/// A refusal that actually confirms the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The service has this chunk: commit its end offset and go on.
    AlreadyStored,
    /// The service has the whole file: commit the last offset and finish.
    AlreadyComplete,
}

/// What a 400 with `slug` means for the chunk at the committed offset (`is_last`: it ends the
/// file). `None`: a real error — classify it as usual.
pub fn resolve_refusal(slug: Option<&str>, is_last: bool) -> Option<Resolution> {
    match slug? {
        ALREADY_UPLOADED if is_last => Some(Resolution::AlreadyComplete),
        RANGE_OVERLAP if is_last => Some(Resolution::AlreadyComplete),
        RANGE_OVERLAP => Some(Resolution::AlreadyStored),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_advances_and_already_uploaded_finishes_only_at_the_end() {
        assert_eq!(
            resolve_refusal(Some(RANGE_OVERLAP), false),
            Some(Resolution::AlreadyStored)
        );
        assert_eq!(
            resolve_refusal(Some(RANGE_OVERLAP), true),
            Some(Resolution::AlreadyComplete)
        );
        assert_eq!(
            resolve_refusal(Some(ALREADY_UPLOADED), true),
            Some(Resolution::AlreadyComplete)
        );
        assert_eq!(resolve_refusal(Some(ALREADY_UPLOADED), false), None);
        assert_eq!(resolve_refusal(Some("uploaded-file-empty"), true), None);
        assert_eq!(resolve_refusal(None, true), None);
    }
}
