//! Text for people: bytes shown as Python shows them, sizes and durations.
//!
//! The socket guide prints what it receives with Python's `repr` of a
//! `bytes` object (`Received b'Hello, world'`); echokit prints the same so
//! that its output can be compared with the guide's line for line. Text a
//! peer chose is shown with what Python's `repr` of a `str` escapes escaped
//! ([`py_str_repr`], [`py_escape_unprintable`]), so that it cannot reach the
//! terminal as control characters.

use std::fmt::Write as _;
use std::time::Duration;

/// The bytes as Python's `repr(bytes)` shows them: `b'...'`, printable ASCII
/// as is, `\t \n \r \\` escaped, anything else as `\xNN`. Like Python, it
/// quotes with `"` when the bytes hold a `'` and no `"`.
pub fn py_bytes_repr(bytes: &[u8]) -> String {
    let quote = py_quote(bytes.contains(&b'\''), bytes.contains(&b'"'));
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(quote);
    for &b in bytes {
        push_py_escaped(
            &mut out,
            u32::from(b),
            Some(quote),
            b.is_ascii() && !b.is_ascii_control(),
        );
    }
    out.push(quote);
    out
}

/// Text as Python's `repr(str)` shows it: quoted as [`py_bytes_repr`]
/// quotes, `\t \n \r \\` and the quote escaped, characters Python deems
/// printable ([`py_printable`]) as they are (non-ASCII included), any other
/// as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
pub fn py_str_repr(text: &str) -> String {
    let quote = py_quote(text.contains('\''), text.contains('"'));
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        push_py_escaped(&mut out, u32::from(c), Some(quote), py_printable(c));
    }
    out.push(quote);
    out
}

/// Text from a peer with what Python's `repr` would escape in it escaped the
/// same way (`\n`, `\x1b`, `\u200b`, ...), and the rest, quotes and
/// backslashes included, as it is: printable text prints as the guide's
/// programs print it, and a peer cannot reach the terminal with control
/// characters or escape sequences.
pub fn py_escape_unprintable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_py_escaped(&mut out, u32::from(c), None, py_printable(c));
    }
    out
}

/// The quote Python's `repr` picks: `"` when the text holds a `'` and no
/// `"`, else `'`.
pub(crate) fn py_quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double { '"' } else { '\'' }
}

/// Whether Python's `str.isprintable()` holds for the character: anything
/// but the space is unprintable if it is a control (Cc), format (Cf),
/// surrogate (Cs), private-use (Co) or unassigned (Cn) character, or a
/// separator (Zs, Zl, Zp).
///
/// The categories are Unicode 16's (the `unicode-general-category` crate);
/// a Python built on an older Unicode holds characters assigned since as
/// unassigned, and escapes them.
pub fn py_printable(c: char) -> bool {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    c == ' '
        || !matches!(
            get_general_category(c),
            G::Control
                | G::Format
                | G::Surrogate
                | G::PrivateUse
                | G::Unassigned
                | G::SpaceSeparator
                | G::LineSeparator
                | G::ParagraphSeparator
        )
}

/// Appends one code point (a surrogate too, as Python's strings may hold
/// one) as Python's `repr` writes it inside `quote` (`None`: outside
/// quotes, where only the unprintable is escaped).
pub(crate) fn push_py_escaped(out: &mut String, c: u32, quote: Option<char>, printable: bool) {
    // Writing to a String cannot fail.
    match char::from_u32(c) {
        Some('\\') if quote.is_some() => out.push_str("\\\\"),
        Some('\t') => out.push_str("\\t"),
        Some('\n') => out.push_str("\\n"),
        Some('\r') => out.push_str("\\r"),
        Some(q) if Some(q) == quote => {
            out.push('\\');
            out.push(q);
        }
        Some(c) if printable => out.push(c),
        _ if c < 0x100 => {
            let _ = write!(out, "\\x{c:02x}");
        }
        _ if c < 0x1_0000 => {
            let _ = write!(out, "\\u{c:04x}");
        }
        _ => {
            let _ = write!(out, "\\U{c:08x}");
        }
    }
}

/// A byte count with a binary unit: `512 B`, `1.5 KiB`, `3.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Past 1023.95 one decimal would round up to 1024.0: the next unit.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// An exact byte count, and its size in a binary unit once that says
/// more: `12 bytes`, `104,857,600 bytes (100.0 MiB)`.
pub fn byte_count(n: u64) -> String {
    match n {
        1 => "1 byte".into(),
        0..1024 => format!("{n} bytes"),
        _ => format!("{} bytes ({})", count(n), bytes(n)),
    }
}

/// A duration for people, in the unit that suits it, to three significant
/// digits with trailing zeros dropped: `850 µs`, `46.5 µs`, `12.3 ms`,
/// `300 ms`, `4.25 s`, `10 s`. Every duration echokit prints goes through
/// here or [`micros`].
pub fn duration(d: Duration) -> String {
    micros(d.as_secs_f64() * 1e6)
}

/// Microseconds, as [`duration`] writes them (histograms count in µs).
pub fn micros(us: f64) -> String {
    if !us.is_finite() {
        return "-".into();
    }
    let sign = if us < 0.0 { "-" } else { "" };
    let us = us.abs();
    // Past 999.5 a unit would round up to 1000: the next one reads better.
    let (value, unit) = if us < 999.5 {
        (us, "µs")
    } else if us < 999_500.0 {
        (us / 1e3, "ms")
    } else {
        (us / 1e6, "s")
    };
    // Three significant digits, but never fewer than the whole number.
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    let digits = trim_zeros(format!("{value:.decimals$}"));
    if digits == "0" {
        // Nothing, or less than a hundredth of a microsecond.
        return "0 s".into();
    }
    format!("{sign}{digits} {unit}")
}

/// `300.0` -> `300`, `4.20` -> `4.2`.
fn trim_zeros(number: String) -> String {
    if number.contains('.') {
        number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        number
    }
}

/// A number with thousands separators and `decimals` places: `28,786.64`.
pub fn number(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let text = format!("{:.decimals$}", v.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let sign = if v < 0.0 && text.bytes().any(|b| b != b'0' && b != b'.') {
        "-"
    } else {
        ""
    };
    let whole = grouped(whole);
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    grouped(&n.to_string())
}

/// A string of digits with a comma between each group of three.
fn grouped(digits: &str) -> String {
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// An I/O error as C names it, then in words: `ECONNREFUSED (Connection
/// refused)`, without std's `(os error 111)`; other errors as they are.
pub fn os_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?} ({})", nix::errno::Errno::from_raw(n), os_words(e)),
        None => e.to_string(),
    }
}

/// An I/O error in words alone, as a person reads it: `No such file or
/// directory`, without std's `(os error 2)`.
pub fn os_words(e: &std::io::Error) -> String {
    // std's words are the C library's strerror (what Python and strace
    // print: "Resource temporarily unavailable"), not nix's table ("Try
    // again"), so they are std's, without its suffix.
    let text = e.to_string();
    match e.raw_os_error() {
        Some(_) => text.split(" (os error").next().unwrap_or(&text).to_string(),
        None => text,
    }
}

/// Text from a peer, fit for a log line: control characters (a newline
/// that would forge a line, terminal escapes) escaped, and cut to `max`
/// characters with the size of the rest.
pub fn clip(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            let rest = text.len() - text.char_indices().nth(i).map_or(text.len(), |(at, _)| at);
            out.push_str(&format!("... ({rest} more bytes)"));
            break;
        }
        // Control characters, and the format ones that would turn or break
        // a line on a terminal (U+202E, U+2028): escaped, as Python's repr.
        if c.is_control() {
            out.extend(c.escape_debug());
        } else if !py_printable(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_text_cannot_forge_a_log_line() {
        assert_eq!(clip("a\nINFO forged", 100), "a\\nINFO forged");
        assert_eq!(clip("abcdef", 3), "abc... (3 more bytes)");
        assert_eq!(clip("🐰🐰", 1), "🐰... (4 more bytes)");
        // A right-to-left override or a line separator would turn or break
        // the line on a terminal.
        assert_eq!(
            clip("a\u{202e}b\u{2028}c d", 100),
            "a\\u{202e}b\\u{2028}c d"
        );
    }

    #[test]
    fn repr_matches_python() {
        // Expected values are what CPython 3.11 prints for repr(bytes).
        let cases: [(&[u8], &str); 7] = [
            (b"Hello, world", "b'Hello, world'"),
            (b"", "b''"),
            (b"it's", "b\"it's\""),
            (b"it's \"x\"", "b'it\\'s \"x\"'"),
            (b"a\tb\nc\rd\\", "b'a\\tb\\nc\\rd\\\\'"),
            (b"\x00\x7f\xff", "b'\\x00\\x7f\\xff'"),
            ("🐰".as_bytes(), "b'\\xf0\\x9f\\x90\\xb0'"),
        ];
        for (input, want) in cases {
            assert_eq!(py_bytes_repr(input), want);
        }
    }

    #[test]
    fn os_errors_carry_their_c_name() {
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(os_error(&refused), "ECONNREFUSED (Connection refused)");
        let other = std::io::Error::other("no address");
        assert_eq!(os_error(&other), "no address");
        let missing = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(os_words(&missing), "No such file or directory");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(byte_count(112), "112 bytes");
        assert_eq!(byte_count(1), "1 byte");
        assert_eq!(byte_count(100 << 20), "104,857,600 bytes (100.0 MiB)");
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(12_340)), "12.3 ms");
        assert_eq!(duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(duration(Duration::from_millis(4200)), "4.2 s");
        assert_eq!(duration(Duration::from_secs(10)), "10 s");
        assert_eq!(duration(Duration::ZERO), "0 s");
        assert_eq!(duration(Duration::from_nanos(4_604_501)), "4.6 ms");
        assert_eq!(micros(46.54), "46.5 µs");
        assert_eq!(micros(149.9), "150 µs");
        assert_eq!(micros(999.7), "1 ms");
        assert_eq!(micros(2_764.0), "2.76 ms");
        assert_eq!(micros(0.412), "0.41 µs");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(count(5948), "5,948");
        assert_eq!(number(28_786.644, 2), "28,786.64");
        assert_eq!(number(0.5, 2), "0.50");
        assert_eq!(number(-1234.0, 0), "-1,234");
        assert_eq!(number(999_999.999, 2), "1,000,000.00");
        assert_eq!(number(1e20, 0), "100,000,000,000,000,000,000");
        assert_eq!(bytes(1_048_575), "1.0 MiB");
        assert_eq!(bytes(1_048_524), "1023.9 KiB");
        assert_eq!(micros(f64::NAN), "-");
        assert_eq!(micros(f64::INFINITY), "-");
        assert_eq!(micros(-5000.0), "-5 ms");
        assert_eq!(micros(1e6), "1 s");
        assert_eq!(micros(0.001), "0 s");
    }
}
