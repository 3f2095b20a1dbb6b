//! How the human log format writes an event's fields: like tracing's default (`message` bare,
//! then `name=value`), with every value passed through [`crate::escape::Human`], so a file name
//! holding a newline cannot forge a log line and one holding ESC cannot drive the terminal.

use std::fmt::Write;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

use crate::escape::Escaper;

/// The field formatter of the human log format.
pub fn escaped() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(|w: &mut Writer<'_>, field: &tracing::field::Field, value| {
        let name = field.name();
        let mut out = Escaper(w);
        if name == "message" {
            write!(out, "{value:?}")
        } else if let Some(name) = name.strip_prefix("r#") {
            write!(out, "{name}={value:?}")
        } else if name.starts_with("log.") {
            Ok(())
        } else {
            write!(out, "{name}={value:?}")
        }
    })
    .delimited(" ")
}
