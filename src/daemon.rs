//! The daemon: wiring, shutdown, SIGHUP reload, sd_notify.
