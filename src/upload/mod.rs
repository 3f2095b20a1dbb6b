//! Uploading: worker pool, chunk planning, retry classes, rate limit.
