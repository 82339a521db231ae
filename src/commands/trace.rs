//! `--trace-calls`' sink: each socket call the library makes, written on
//! stderr as it happens, as text for people or, under `--log-format json`,
//! as one object a line beside the logs.

use std::io::Write;

use echokit::calls::{Call, Sink};

use crate::cli::LogFormat;

/// Writes calls on stderr, straight from the thread that made them, so
/// that they keep their order with each other and with the program's own
/// output.
struct Stderr {
    format: LogFormat,
}

impl Sink for Stderr {
    fn call(&self, call: &Call<'_>) {
        let line = match self.format {
            LogFormat::Text => call.text(),
            LogFormat::Json => serde_json::json!({
                "timestamp":
                    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
                "level": "TRACE",
                "call": call.line,
                "meaning": call.meaning,
                "each": call.each,
            })
            .to_string(),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// Sends every socket call of the process to stderr from now on.
pub(crate) fn to_stderr(format: LogFormat) {
    echokit::calls::install(Box::new(Stderr { format }));
}
