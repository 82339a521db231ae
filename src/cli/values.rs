//! The value parsers every command's flags share: durations, sizes,
//! modes, addresses, written as people write them, with an error that
//! shows the form expected.

use std::time::Duration;

use echokit::Endpoint;
use echokit::endpoint::HostPort;

/// `--metrics`: a TCP address in the endpoint syntax (`HOST:PORT`,
/// `tcp://HOST:PORT`, `:PORT`, `PORT`).
pub(super) fn parse_metrics_addr(s: &str) -> Result<HostPort, String> {
    match s.parse::<Endpoint>().map_err(|e| e.to_string())? {
        Endpoint::Tcp(hp) => Ok(hp),
        other => Err(format!(
            "metrics are served over HTTP, so over TCP: give HOST:PORT (e.g. 127.0.0.1:9100), not {other}"
        )),
    }
}

/// A file mode in octal, as chmod takes it: `600`, `0600`, `0o660`.
pub(super) fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "`{s}` is not a mode: expected octal permissions such as 0600 or 0660"
        )),
    }
}

/// A header limit: a size that the protocol's 2-byte length can reach.
pub(super) fn parse_header_limit(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    if n > usize::from(u16::MAX) {
        return Err(format!(
            "`{s}` is more than a header can be: the protocol's 2-byte length allows 65535 at most"
        ));
    }
    Ok(n)
}

/// Durations as people write them: `10s`, `500ms`, `1m30s`; a bare number is seconds.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}` is not a duration: expected e.g. 10s or 500ms"));
    }
    humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is not a duration: expected e.g. 10s, 500ms or 1m30s"))
}

/// A timeout: a duration of more than 0.
pub(super) fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!(
            "`{s}` is no time at all: give a timeout such as 5s"
        ));
    }
    Ok(d)
}

/// A keepalive idle time: the kernel takes whole seconds from 1 to 32767
/// (TCP_KEEPIDLE), and would refuse anything else on every connection.
pub(super) fn parse_keepalive(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.subsec_nanos() != 0 || !(1..=32767).contains(&d.as_secs()) {
        return Err(format!(
            "`{s}` is not a keepalive time: expected whole seconds from 1s to 32767s"
        ));
    }
    Ok(d)
}

/// Sizes in bytes with an optional `K`/`KiB`/`M`/`MiB` suffix (powers of 1024).
pub(super) fn parse_size(s: &str) -> Result<usize, String> {
    let bad = || format!("`{s}` is not a size: expected bytes, e.g. 262144, 256K or 4M");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits.parse().map_err(|_| bad())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}
