//! The bench's final report as one self-contained HTML page.
//!
//! [`render`] writes an HTML5 document with a summary table and two inline
//! SVG charts: throughput over time and latency by percentile. The page loads
//! nothing (no scripts, fonts, images or URLs), so it can be mailed or archived
//! as one file. Every text that comes from the caller is escaped.

use std::fmt::{self, Write as _};

/// One interval's throughput.
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    /// Messages per second during the interval.
    pub messages_per_second: f64,
    /// False during warm-up.
    pub measured: bool,
}

/// One latency percentile curve.
pub struct Curve<'a> {
    /// Legend text, e.g. "corrected".
    pub label: &'a str,
    /// (percentile in 0..=100, e.g. 99.9; latency in microseconds), sorted by
    /// percentile.
    pub points: &'a [(f64, f64)],
}

/// Where a run comes from, so that a page mailed or archived still says
/// what made it.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    /// When it ran, e.g. `2026-12-03T16:10:00Z`.
    pub date: String,
    /// The host it ran on.
    pub host: String,
    /// The echokit version.
    pub version: String,
    /// The command line, as typed (quoted where a word needs it).
    pub command: String,
}

/// Everything the report shows.
pub struct Page<'a> {
    /// Page heading, e.g. "echokit bench tcp://127.0.0.1:65432".
    pub title: &'a str,
    /// When, where, by which version and with which command the run was made.
    pub provenance: &'a Provenance,
    /// Seconds from the start to the measured window's opening, marked on
    /// the throughput chart (the warm-up is before it).
    pub window_opens: Option<f64>,
    /// Summary table rows (label, value), already formatted text.
    pub facts: &'a [(String, String)],
    /// Throughput per interval, in time order.
    pub throughput: &'a [Sample],
    /// One or two curves: "corrected" (and "uncorrected" in open loop).
    pub curves: &'a [Curve<'a>],
}

/// Stroke colour (RGB) of the throughput line's measured part, so a test can
/// find it in a screenshot.
pub const THROUGHPUT_COLOR: [u8; 3] = [0x1a, 0x73, 0xe8];

/// Stroke colours (RGB) of the latency curves, in the order of [`Page::curves`].
pub const CURVE_COLORS: [[u8; 3]; 2] = [[0xe8, 0x59, 0x0c], [0x8e, 0x24, 0xaa]];

/// Colour of the warm-up part of the throughput line.
const WARMUP_COLOR: &str = "#9e9e9e";
/// Colours of grid lines and axes.
const GRID: &str = "#e0e0e0";
const AXIS: &str = "#333333";
/// Chart width and height in SVG user units.
const W: f64 = 900.0;
const H: f64 = 340.0;
/// Edges of the plot area inside a chart; the margins hold the labels.
const LEFT: f64 = 70.0;
const RIGHT: f64 = W - 48.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = H - 50.0;
/// The percentile axis ends at this many nines (99.999999%) at the most: the
/// labels of more would overlap.
const MAX_NINES: f64 = 8.0;
/// Attributes of `<text>`.
const CENTERED: &str = r#" text-anchor="middle""#;
const MIDDLE_LEFT: &str = r#" dy="0.35em""#;
const MIDDLE_RIGHT: &str = r#" dy="0.35em" text-anchor="end""#;

/// The document's start, up to the title.
const HEAD: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width\">\n";
/// Inline CSS: system fonts, one readable column, charts as wide as the text.
const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
max-width:960px;margin:2em auto;padding:0 1em;color:#222;background:#fff}\
h1{font-size:1.5em;overflow-wrap:anywhere}h2{font-size:1.2em;margin-top:1.5em}\
table{border-collapse:collapse}th,td{text-align:left;padding:.3em 1.5em .3em 0;\
border-bottom:1px solid #ddd}th{font-weight:600;color:#555}\
svg{width:100%;height:auto;display:block}svg text{font-size:13px;fill:#333}\
.provenance{color:#555}code{overflow-wrap:anywhere}";

/// Renders the report as one complete, self-contained HTML5 document.
pub fn render(page: &Page) -> String {
    let mut html = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail, so the Result carries nothing.
    let _ = write_page(&mut html, page);
    html
}

fn write_page(out: &mut String, page: &Page) -> fmt::Result {
    let title = escape(page.title);
    out.push_str(HEAD);
    writeln!(out, "<title>{title}</title>\n<style>{STYLE}</style>")?;
    writeln!(out, "</head>\n<body>\n<h1>{title}</h1>")?;
    let p = page.provenance;
    writeln!(
        out,
        "<p class=\"provenance\">Run {} on {} by echokit {}:<br><code>{}</code></p>",
        escape(&p.date),
        escape(&p.host),
        escape(&p.version),
        escape(&p.command)
    )?;
    if !page.facts.is_empty() {
        writeln!(out, "<table>")?;
        for (label, value) in page.facts {
            let (label, value) = (escape(label), escape(value));
            writeln!(out, "<tr><th>{label}</th><td>{value}</td></tr>")?;
        }
        writeln!(out, "</table>")?;
    }
    writeln!(out, "<h2>Throughput over time</h2>")?;
    throughput_chart(out, page.throughput, page.window_opens)?;
    writeln!(out, "<h2>Latency by percentile</h2>")?;
    latency_chart(out, page.curves)?;
    writeln!(out, "</body>\n</html>")
}

/// Draws messages/s against seconds, the warm-up shaded, grey and dashed.
fn throughput_chart(out: &mut String, samples: &[Sample], opens: Option<f64>) -> fmt::Result {
    let finite = |s: &&Sample| s.t.is_finite() && s.messages_per_second.is_finite();
    let split = |s: &Sample| ((s.t, s.messages_per_second), s.measured);
    let (xy, measured): (Vec<_>, Vec<_>) = samples.iter().filter(finite).map(split).unzip();
    let opens = opens.filter(|t| t.is_finite() && *t > 0.0);
    let last = xy.iter().map(|p| p.0).chain(opens).fold(0.0, f64::max);
    let (x_ticks, x_max) = linear_ticks(last);
    let (y_ticks, y_max) = linear_ticks(xy.iter().map(|p| p.1).fold(0.0, f64::max));
    let mut chart = Chart { out, x_max, y_max };
    chart.axes(("time (s)", &x_ticks), ("messages/s", &y_ticks))?;
    let color = hex(THROUGHPUT_COLOR);
    let mut start = 0;
    while let Some(&first) = measured.get(start) {
        // A run of samples that are all measured, or all warm-up.
        let same = measured[start..].iter().take_while(|&&m| m == first);
        let end = start + same.count();
        if first {
            chart.polyline(&xy[start..end], &color, "")?;
        } else {
            // Shaded from the sample before (or 0) to the run's last sample; the
            // line joins the samples on either side.
            let before = start.saturating_sub(1);
            let from = if start == 0 { 0.0 } else { xy[before].0 };
            chart.shade(from, xy[end - 1].0, "warm-up")?;
            let line = &xy[before..xy.len().min(end + 1)];
            chart.polyline(line, WARMUP_COLOR, r#" stroke-dasharray="6 4""#)?;
        }
        start = end;
    }
    if let Some(t) = opens {
        // The window's opening: what is left of it is warm-up, not measured.
        let x = chart.x(t);
        writeln!(
            chart.out,
            r#"<line class="window-opens" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="{WARMUP_COLOR}" stroke-dasharray="2 3"/>"#
        )?;
        chart.text((x + 4.0, TOP + 12.0), "", "window opens")?;
    }
    chart.close(xy.is_empty())
}

/// Draws latency against the percentile on the "number of nines" scale.
fn latency_chart(out: &mut String, curves: &[Curve]) -> fmt::Result {
    let point = |&(p, l): &(f64, f64)| {
        (p.is_finite() && l.is_finite()).then(|| (p.clamp(0.0, 100.0), l.max(0.0)))
    };
    let clean = |c: &Curve| -> Vec<_> { c.points.iter().filter_map(point).collect() };
    let curves: Vec<_> = curves.iter().map(|c| (c.label, clean(c))).collect();
    let all = || curves.iter().flat_map(|c| c.1.iter().copied());
    // p = 100 has no place on this scale: it is drawn at the last one that has.
    let below_100 = all().filter(|&(p, _)| p < 100.0);
    let last = below_100.map(|(p, _)| nines(p)).fold(0.0, f64::max);
    let x_max = (last - 1e-6).ceil().clamp(1.0, MAX_NINES);
    // Points past the axis's end (too many nines) are drawn at the end.
    let at = |p: f64| if p < 100.0 { nines(p) } else { last };
    let max_us = all().map(|(_, l)| l).fold(0.0, f64::max);
    let (scale, unit) = match max_us {
        us if us >= 1e6 => (1e6, "s"),
        us if us >= 1e3 => (1e3, "ms"),
        _ => (1.0, "µs"),
    };
    let (y_ticks, y_max) = linear_ticks(max_us / scale);
    // x_max is a whole number from 1 to MAX_NINES, so the cast is exact.
    let x_ticks: Vec<_> = (0..=x_max as usize)
        .map(|n| (n as f64, nines_label(n)))
        .collect();
    let y_title = format!("latency ({unit})");
    let mut chart = Chart { out, x_max, y_max };
    chart.axes(("percentile", &x_ticks), (&y_title, &y_ticks))?;
    for (i, (label, points)) in curves.iter().enumerate() {
        let color = hex(CURVE_COLORS[i % CURVE_COLORS.len()]);
        let xy: Vec<_> = points.iter().map(|&(p, l)| (at(p), l / scale)).collect();
        chart.polyline(&xy, &color, "")?;
        chart.legend(i, label, &color)?;
    }
    chart.close(curves.iter().all(|c| c.1.is_empty()))
}

/// Writes one chart's `<svg>`, its data from 0 to `x_max` and 0 to `y_max`
/// (both > 0); data outside are drawn at the edge.
struct Chart<'a> {
    out: &'a mut String,
    x_max: f64,
    y_max: f64,
}

impl Chart<'_> {
    /// SVG x of data x.
    fn x(&self, v: f64) -> f64 {
        LEFT + v.clamp(0.0, self.x_max) / self.x_max * (RIGHT - LEFT)
    }

    /// SVG y of data y.
    fn y(&self, v: f64) -> f64 {
        BOTTOM - v.clamp(0.0, self.y_max) / self.y_max * (BOTTOM - TOP)
    }

    /// Opens the `<svg>` and draws grid lines, tick labels, axes and titles.
    fn axes(&mut self, x: (&str, &[(f64, String)]), y: (&str, &[(f64, String)])) -> fmt::Result {
        writeln!(self.out, r#"<svg viewBox="0 0 {W} {H}">"#)?;
        for (v, label) in x.1 {
            let at = self.x(*v);
            self.line((at, TOP), (at, BOTTOM), GRID)?;
            self.text((at, BOTTOM + 18.0), CENTERED, label)?;
        }
        for (v, label) in y.1 {
            let at = self.y(*v);
            self.line((LEFT, at), (RIGHT, at), GRID)?;
            self.text((LEFT - 6.0, at), MIDDLE_RIGHT, label)?;
        }
        self.line((LEFT, TOP), (LEFT, BOTTOM), AXIS)?;
        self.line((LEFT, BOTTOM), (RIGHT, BOTTOM), AXIS)?;
        self.text(((LEFT + RIGHT) / 2.0, H - 8.0), CENTERED, x.0)?;
        let middle = (TOP + BOTTOM) / 2.0;
        let rotate = format!(r#" transform="rotate(-90 16 {middle})"{CENTERED}"#);
        self.text((16.0, middle), &rotate, y.0)
    }

    /// A line through data points; a lone point, which a line does not
    /// show, gets a dot.
    fn polyline(&mut self, points: &[(f64, f64)], color: &str, extra: &str) -> fmt::Result {
        let stroke = format!(r#"fill="none" stroke="{color}" stroke-width="2.5"{extra}"#);
        write!(self.out, r#"<polyline {stroke} points=""#)?;
        for (i, &(x, y)) in points.iter().enumerate() {
            let (x, y) = (self.x(x), self.y(y));
            write!(self.out, "{}{x:.1},{y:.1}", if i == 0 { "" } else { " " })?;
        }
        writeln!(self.out, r#""/>"#)?;
        if let [(x, y)] = points {
            let (x, y) = (self.x(*x), self.y(*y));
            writeln!(
                self.out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{color}"/>"#
            )?;
        }
        Ok(())
    }

    /// Shades the plot from data x `from` to `to`, with a label at the bottom,
    /// clear of the throughput line, which runs high.
    fn shade(&mut self, from: f64, to: f64, label: &str) -> fmt::Result {
        let (x, width, height) = (self.x(from), self.x(to) - self.x(from), BOTTOM - TOP);
        let rect = format!(r#"x="{x:.1}" y="{TOP}" width="{width:.1}" height="{height}""#);
        let shade = r#"fill="black" fill-opacity="0.06""#;
        writeln!(self.out, "<rect {rect} {shade}/>")?;
        self.text((x + 4.0, BOTTOM - 8.0), "", label)
    }

    /// Entry `i` of the legend, top left, where latency curves are low.
    fn legend(&mut self, i: usize, label: &str, color: &str) -> fmt::Result {
        let (x, y) = (LEFT + 12.0, TOP + 16.0 + 20.0 * i as f64);
        let swatch = format!(r#"x="{x}" y="{}" width="24" height="3""#, y - 1.5);
        writeln!(self.out, r#"<rect {swatch} fill="{color}"/>"#)?;
        self.text((x + 32.0, y), MIDDLE_LEFT, &escape(label))
    }

    /// A line between two SVG points.
    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), color: &str) -> fmt::Result {
        let ends = format!(r#"x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}""#);
        writeln!(self.out, r#"<line {ends} stroke="{color}"/>"#)
    }

    /// A `<text>` at an SVG point, with more attributes; `content` must be
    /// escaped.
    fn text(&mut self, (x, y): (f64, f64), attributes: &str, content: &str) -> fmt::Result {
        writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}"{attributes}>{content}</text>"#
        )
    }

    /// Closes the `<svg>`, with a note in the middle if it has no data.
    fn close(&mut self, empty: bool) -> fmt::Result {
        if empty {
            let middle = ((LEFT + RIGHT) / 2.0, (TOP + BOTTOM) / 2.0);
            self.text(middle, CENTERED, "no data")?;
        }
        writeln!(self.out, "</svg>")
    }
}

/// Ticks from 0 to at least `max`, with their labels, and the axis end.
/// The step is round (1, 2 or 5 times a power of ten) and makes about five
/// intervals; the end is the first tick at or above `max`. A `max` that is
/// not finite or too small to plot (all zeros) counts as 1; a huge one is
/// capped, so there are never many ticks.
fn linear_ticks(max: f64) -> (Vec<(f64, String)>, f64) {
    let max = if max.is_finite() && max > 1e-9 {
        max.min(1e18)
    } else {
        1.0
    };
    let rough = max / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let multiple = [1.0, 2.0, 5.0]
        .into_iter()
        .find(|&m| m * magnitude >= rough);
    let step = multiple.unwrap_or(10.0) * magnitude;
    let count = (max / step - 1e-9).ceil().max(1.0);
    let tick = |i: usize| i as f64 * step;
    // count is a small whole number, so the cast is exact.
    let ticks = (0..=count as usize)
        .map(|i| (tick(i), si_label(tick(i), step)))
        .collect();
    (ticks, count * step)
}

/// An axis value with a k/M/G suffix and as many decimals as the tick `step`
/// needs: 1500 with step 500 is "1.5k", 2000 is "2k".
fn si_label(v: f64, step: f64) -> String {
    let (scale, suffix) = [(1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|&(scale, _)| v.abs() >= scale)
        .unwrap_or((1.0, ""));
    let decimals = (-(step / scale).log10()).ceil().clamp(0.0, 6.0) as usize;
    let text = format!("{:.decimals$}", v / scale);
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{suffix}")
}

/// The "number of nines" of percentile `p`: 90 is 1, 99 is 2, 99.9 is 3.
fn nines(p: f64) -> f64 {
    // 1 - p/100 may round to 0 just below 100: that is infinity, clamped later.
    (-(1.0 - p / 100.0).log10()).max(0.0)
}

/// The percentile with `n` nines: "0%", "90%", "99%", "99.9%"...
fn nines_label(n: usize) -> String {
    match n {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        n => format!("99{}{}%", if n > 2 { "." } else { "" }, "9".repeat(n - 2)),
    }
}

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, messages_per_second: f64, measured: bool) -> Sample {
        Sample {
            t,
            messages_per_second,
            measured,
        }
    }

    fn curve<'a>(label: &'a str, points: &'a [(f64, f64)]) -> Curve<'a> {
        Curve { label, points }
    }

    fn page<'a>(throughput: &'a [Sample], curves: &'a [Curve<'a>]) -> Page<'a> {
        static PROVENANCE: std::sync::LazyLock<Provenance> =
            std::sync::LazyLock::new(|| Provenance {
                date: "2026-12-03T16:10:00Z".into(),
                host: "bench-host".into(),
                version: "0.1.0".into(),
                command: "echokit bench 127.0.0.1:7 --report '<r>.html'".into(),
            });
        Page {
            title: "bench",
            provenance: &PROVENANCE,
            window_opens: None,
            facts: &[],
            throughput,
            curves,
        }
    }

    #[test]
    fn escapes_the_callers_text() {
        let facts = [("<b>".to_owned(), "a & 'b'".to_owned())];
        let curves = [curve("\"x\"", &[(50.0, 1.0)])];
        let html = render(&Page {
            title: "<script>",
            facts: &facts,
            ..page(&[], &curves)
        });
        assert!(html.contains("<h1>&lt;script&gt;</h1>"), "{html}");
        let row = "<th>&lt;b&gt;</th><td>a &amp; &#39;b&#39;</td>";
        assert!(
            html.contains(row) && html.contains(">&quot;x&quot;</text>"),
            "{html}"
        );
        assert!(!html.contains("<script") && !html.contains("<b>"), "{html}");
    }

    #[test]
    fn the_page_says_when_where_by_what_and_how_it_was_made() {
        let html = render(&page(&[], &[]));
        assert!(
            html.contains(
                "Run 2026-12-03T16:10:00Z on bench-host by echokit 0.1.0:<br>\
                 <code>echokit bench 127.0.0.1:7 --report &#39;&lt;r&gt;.html&#39;</code>"
            ),
            "{html}"
        );
    }

    #[test]
    fn loads_nothing() {
        let html = render(&page(&[sample(1.0, 1.0, true)], &[]));
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains(r#"<meta charset="utf-8">"#));
        for needle in ["http", "url(", "<script", "src=", "href", "@import"] {
            assert!(!html.contains(needle), "{needle} in {html}");
        }
    }

    #[test]
    fn degenerate_data_gives_finite_coordinates() {
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        let series = [
            vec![],
            vec![sample(1.0, 5.0, true)],
            vec![sample(0.0, 0.0, false), sample(1.0, 0.0, true)],
            vec![sample(1.0, 7.0, true), sample(2.0, 7.0, true)],
            vec![
                sample(nan, 1.0, true),
                sample(1.0, inf, false),
                sample(-1.0, -5.0, true),
            ],
        ];
        let curves: [&[(f64, f64)]; 6] = [
            &[],
            &[(50.0, 3.0)],
            &[(0.0, 0.0), (100.0, 0.0)],
            &[(100.0, 9.0)],
            &[(99.0, 5.0), (99.0, 5.0), (99.999_999_999_999_99, 5.0)],
            &[(nan, 1.0), (150.0, inf), (-3.0, -1.0), (1.0, 1e300)],
        ];
        for samples in &series {
            for points in curves {
                let html = render(&page(samples, &[curve("c", points)]));
                assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
            }
        }
        let html = render(&page(&[], &[curve("c", &[])]));
        assert_eq!(html.matches(">no data</text>").count(), 2, "{html}");
    }

    #[test]
    fn the_windows_opening_is_marked_even_with_no_sample_in_the_warm_up() {
        // A progress sample each second and a 300 ms warm-up: no sample
        // falls in it, so only the mark shows where the window opened.
        let samples = [sample(1.0, 10.0, true), sample(2.0, 12.0, true)];
        let marked = render(&Page {
            window_opens: Some(0.3),
            ..page(&samples, &[])
        });
        let x = LEFT + (RIGHT - LEFT) * 0.3 / 2.0;
        let mark = format!(r#"<line class="window-opens" x1="{x:.1}" y1="{TOP}""#);
        assert!(marked.contains(&mark), "{marked}");
        assert!(marked.contains(">window opens</text>"), "{marked}");
        let unmarked = render(&page(&samples, &[]));
        assert!(!unmarked.contains("window-opens"), "{unmarked}");
    }

    #[test]
    fn draws_each_line_in_its_colour() {
        let samples = [
            sample(1.0, 10.0, false),
            sample(2.0, 12.0, true),
            sample(3.0, 11.0, true),
        ];
        let points = [(0.0, 10.0), (90.0, 20.0), (99.0, 40.0), (100.0, 80.0)];
        let html = render(&page(
            &samples,
            &[curve("a", &points), curve("b", &points[..2])],
        ));
        assert_eq!(hex(THROUGHPUT_COLOR), "#1a73e8");
        for color in [THROUGHPUT_COLOR, CURVE_COLORS[0], CURVE_COLORS[1]] {
            let stroke = format!(r#"<polyline fill="none" stroke="{}""#, hex(color));
            assert_eq!(html.matches(&stroke).count(), 1, "{stroke} in {html}");
        }
        let warm_up = format!(r#"stroke="{WARMUP_COLOR}" stroke-width="2.5" stroke-dash"#);
        assert!(html.contains(&warm_up), "{html}");
        // The data reach p99, so the axis ends there and p100 is drawn there;
        // the latency axis ends at 80 µs.
        let (ends_at_99, not_past) = (html.contains(">99%<"), !html.contains(">99.9%<"));
        assert!(ends_at_99 && not_past, "{html}");
        let middle = (TOP + BOTTOM) / 2.0;
        let p99_to_p100 = format!(" {RIGHT:.1},{middle:.1} {RIGHT:.1},{TOP:.1}\"");
        assert!(html.contains(&p99_to_p100), "{html}");
        let unit = html.contains(">latency (µs)</text>");
        assert!(unit && html.contains(">80</text>"), "{html}");
    }

    #[test]
    fn picks_latency_units() {
        for (max, unit) in [(999.0, "µs"), (120_000.0, "ms"), (2.5e6, "s")] {
            let html = render(&page(&[], &[curve("c", &[(0.0, 1.0), (50.0, max)])]));
            assert!(
                html.contains(&format!(">latency ({unit})</text>")),
                "{html}"
            );
        }
    }

    #[test]
    fn formats_ticks() {
        assert_eq!(si_label(1500.0, 500.0), "1.5k");
        assert_eq!(si_label(2e6, 5e5), "2M");
        assert_eq!(si_label(250_000.0, 50_000.0), "250k");
        assert_eq!(si_label(3e9, 1e9), "3G");
        assert_eq!(si_label(0.6000000000000001, 0.2), "0.6");
        let labels = |max| -> Vec<_> { linear_ticks(max).0.into_iter().map(|t| t.1).collect() };
        assert_eq!(labels(47_000.0), ["0", "10k", "20k", "30k", "40k", "50k"]);
        assert_eq!(labels(1.2e6), ["0", "500k", "1M", "1.5M"]);
        assert_eq!(labels(0.0), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        assert_eq!(labels(10.0), ["0", "2", "4", "6", "8", "10"]);
        let nines: Vec<_> = (0..5).map(nines_label).collect();
        assert_eq!(nines, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }
}
