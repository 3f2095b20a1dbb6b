//! The local api.video-compatible endpoint (`ingestd emulator`).
