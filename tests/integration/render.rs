//! Renders an HTML file in headless Chromium and reads back the screenshot's
//! pixels, so that a test can check what a page really shows.

use std::fs::File;
use std::io::{BufReader, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use png::ColorType;
use wait_timeout::ChildExt;

/// How long Chromium may take before it is killed; a screenshot takes about a
/// second.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A screenshot's pixels, row by row from the top left.
pub struct Screenshot {
    pub width: u32,
    pub height: u32,
    /// Three bytes (red, green, blue) per pixel.
    pub rgb: Vec<u8>,
}

impl Screenshot {
    /// How many pixels have every channel within `tolerance` of `color`.
    pub fn count_near(&self, color: [u8; 3], tolerance: u8) -> usize {
        debug_assert_eq!(
            self.rgb.len(),
            3 * self.width as usize * self.height as usize
        );
        let near = |pixel: &[u8]| {
            pixel
                .iter()
                .zip(color)
                .all(|(&a, b)| a.abs_diff(b) <= tolerance)
        };
        self.rgb.chunks_exact(3).filter(|pixel| near(pixel)).count()
    }
}

/// Renders `html` (a file path) in headless Chromium and returns the
/// screenshot's pixels. Panics if Chromium is missing, fails or hangs.
pub fn screenshot(html: &Path, width: u32, height: u32) -> Screenshot {
    let html = html
        .canonicalize()
        .unwrap_or_else(|e| panic!("cannot find {}: {e}", html.display()));
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let png = dir.path().join("screenshot.png");
    let log = dir.path().join("chromium.log");
    let stderr = File::create(&log).expect("create chromium's log file");
    let mut chromium = Command::new("chromium");
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        // Shared memory in /tmp, as /dev/shm may be small in a container; no
        // first-run work, extensions or crash reporter; one pixel per CSS pixel.
        .args([
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
        ])
        .args(["--disable-crash-reporter", "--force-device-scale-factor=1"])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(file_url(&html))
        // Even with --user-data-dir, Chromium writes under these (crash
        // reports, dconf): keep them out of the home directory.
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_CACHE_HOME", dir.path())
        // A process group of its own, so that a hung browser's helpers die too.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: Chromium logs a lot, and a full pipe would block it.
        .stderr(stderr);
    let mut child = match chromium.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("`chromium` not found: install Debian's chromium package")
        }
        Err(e) => panic!("cannot start chromium: {e}"),
    };
    let status = child.wait_timeout(TIMEOUT).expect("wait for chromium");
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let Some(status) = status else {
        // The group's id is the browser's pid.
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "chromium took more than {TIMEOUT:?}; its stderr:\n{}",
            stderr()
        );
    };
    if !status.success() || !png.exists() {
        let html = html.display();
        panic!(
            "chromium failed ({status}) to screenshot {html}; its stderr:\n{}",
            stderr()
        );
    }
    decode(&png)
}

/// The `file://` URL of an absolute path, percent-encoded.
fn file_url(path: &Path) -> String {
    let encode = |&b: &u8| match b {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'_' | b'~' => {
            char::from(b).to_string()
        }
        _ => format!("%{b:02X}"),
    };
    let path: String = path.as_os_str().as_bytes().iter().map(encode).collect();
    format!("file://{path}")
}

/// Decodes a PNG file into 8-bit RGB, whatever its colour type; alpha is
/// dropped (Chromium's screenshots are opaque).
fn decode(path: &Path) -> Screenshot {
    let file = File::open(path).expect("open chromium's screenshot");
    // png 0.18's decoder wants BufRead + Seek.
    let mut decoder = png::Decoder::new(BufReader::new(file));
    // Palette to RGB, bit depths below 8 and 16 to 8.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("read the screenshot's header");
    let size = reader
        .output_buffer_size()
        .expect("screenshot fits in memory");
    let mut buffer = vec![0; size];
    let info = reader
        .next_frame(&mut buffer)
        .expect("decode the screenshot");
    let pixels = &buffer[..info.buffer_size()];
    let channels = |n: usize, rgb: fn(&[u8]) -> [u8; 3]| -> Vec<u8> {
        pixels.chunks_exact(n).flat_map(rgb).collect()
    };
    let rgb = match info.color_type {
        ColorType::Rgb => pixels.to_vec(),
        ColorType::Rgba => channels(4, |p| [p[0], p[1], p[2]]),
        ColorType::Grayscale => channels(1, |p| [p[0]; 3]),
        ColorType::GrayscaleAlpha => channels(2, |p| [p[0]; 3]),
        ColorType::Indexed => unreachable!("normalize_to_color8 expands palettes to RGB"),
    };
    let (width, height) = (info.width, info.height);
    Screenshot { width, height, rgb }
}
