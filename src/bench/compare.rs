//! `echokit bench --compare A B`: the same cells against two endpoints in
//! turn, A B A B ..., then the median of each figure and the ratio A/B. On a
//! noisy machine a drift hits both sides alike, so the ratio holds where
//! the absolute numbers do not.

use std::fmt::Write as _;

use serde::Serialize;

use super::{BenchConfig, BenchError, Report, SizeRange, Target};
use crate::shutdown::Shutdown;

/// One combination of connections, size and depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Connections.
    pub connections: u32,
    /// Message sizes.
    #[serde(serialize_with = "as_text")]
    pub size: SizeRange,
    /// Messages in flight per connection.
    pub depth: u32,
}

impl Cell {
    /// Every combination of the values given, connections outermost.
    pub fn grid(connections: &[u32], sizes: &[SizeRange], depths: &[u32]) -> Vec<Cell> {
        let mut cells = Vec::new();
        for &connections in connections {
            for &size in sizes {
                for &depth in depths {
                    cells.push(Cell {
                        connections,
                        size,
                        depth,
                    });
                }
            }
        }
        cells
    }

    /// `base` with this cell's connections, size and depth.
    pub fn apply(&self, base: &BenchConfig) -> BenchConfig {
        BenchConfig {
            connections: self.connections,
            sizes: self.size,
            depth: self.depth,
            ..base.clone()
        }
    }
}

fn as_text<S: serde::Serializer>(size: &SizeRange, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(size)
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "-c {} -s {} -d {}",
            self.connections, self.size, self.depth
        )
    }
}

/// The figures compared, with their names and whether more is better.
pub const FIGURES: [(&str, bool); 6] = [
    ("msg/s", true),
    ("MB/s received", true),
    ("p50 µs", false),
    ("p99 µs", false),
    ("p99.9 µs", false),
    ("client CPU µs/msg", false),
];

fn figures(r: &Report) -> [f64; 6] {
    [
        r.messages_per_second,
        r.bytes_per_second.received / 1e6,
        r.latency_us.p50,
        r.latency_us.p99,
        r.latency_us.p999,
        r.client_cpu_us_per_message,
    ]
}

/// One cell's runs against both endpoints.
#[derive(Clone, Debug, Serialize)]
pub struct CellResult {
    /// The cell.
    pub cell: Cell,
    /// The runs against A, in order.
    pub a: Vec<Report>,
    /// The runs against B, in order.
    pub b: Vec<Report>,
}

impl CellResult {
    /// The median of each figure for A and B.
    pub fn medians(&self) -> ([f64; 6], [f64; 6]) {
        let med = |runs: &[Report]| {
            let mut out = [0.0; 6];
            for (k, slot) in out.iter_mut().enumerate() {
                let mut v: Vec<f64> = runs.iter().map(|r| figures(r)[k]).collect();
                *slot = median(&mut v);
            }
            out
        };
        (med(&self.a), med(&self.b))
    }

    /// Whether every run was clean.
    pub fn passed(&self) -> bool {
        self.a.iter().chain(&self.b).all(|r| r.passed)
    }

    /// A/B for each figure, or `None` where a side failed (a run with
    /// errors, or no message at all): its figures are not of the load asked
    /// for, so a ratio of them would mislead (`0.000` for a dead A).
    pub fn ratios(&self) -> [Option<f64>; 6] {
        let (ma, mb) = self.medians();
        let both = self.failed_sides().is_none();
        std::array::from_fn(|k| ratio(ma[k], mb[k], both))
    }

    /// The sides that failed (a run with errors, or none at all), for the
    /// table's note: `A`, `B` or `A and B`.
    fn failed_sides(&self) -> Option<&'static str> {
        let failed = |runs: &[Report]| runs.is_empty() || runs.iter().any(|r| !r.passed);
        match (failed(&self.a), failed(&self.b)) {
            (true, true) => Some("A and B"),
            (true, false) => Some("A"),
            (false, true) => Some("B"),
            (false, false) => None,
        }
    }
}

/// `a / b` when both sides are sound and `b` is not 0.
fn ratio(a: f64, b: f64, sound: bool) -> Option<f64> {
    (sound && b != 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// The median (the mean of the middle two for an even count); 0 when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Runs every cell against A then B, `reps` times over, alternating.
/// `on_run` sees each run as it ends: (rep, 'A' or 'B', cell, report).
pub fn run(
    base: &BenchConfig,
    targets: [&Target; 2],
    cells: &[Cell],
    reps: u32,
    shutdown: &Shutdown,
    on_run: &mut dyn FnMut(u32, char, &Cell, &Report),
) -> Result<Vec<CellResult>, BenchError> {
    let mut results: Vec<CellResult> = cells
        .iter()
        .map(|&cell| CellResult {
            cell,
            a: Vec::new(),
            b: Vec::new(),
        })
        .collect();
    for rep in 1..=reps {
        for (k, cell) in cells.iter().enumerate() {
            for (side, target) in ['A', 'B'].into_iter().zip(targets) {
                if shutdown.is_requested() {
                    return Ok(results);
                }
                let cfg = BenchConfig {
                    target: target.clone(),
                    ..cell.apply(base)
                };
                let report = super::run(&cfg, shutdown, &mut |_| {})?;
                on_run(rep, side, cell, &report);
                if side == 'A' {
                    results[k].a.push(report);
                } else {
                    results[k].b.push(report);
                }
            }
        }
    }
    Ok(results)
}

/// The comparison as a table: per cell, each figure's medians and A/B.
pub fn table(results: &[CellResult], a: &str, b: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A = {a}\nB = {b}");
    for r in results {
        let (ma, mb) = r.medians();
        let _ = writeln!(
            out,
            "\n{}  ({} runs each, medians{})",
            r.cell,
            r.a.len().min(r.b.len()),
            if r.passed() {
                ""
            } else {
                "; SOME RUNS HAD ERRORS"
            }
        );
        let _ = writeln!(out, "  {:<20} {:>14} {:>14} {:>8}", "", "A", "B", "A/B");
        let ratios = r.ratios();
        for (k, (name, _)) in FIGURES.iter().enumerate() {
            let ratio = ratios[k].map_or_else(|| "-".to_string(), |x| format!("{x:.3}"));
            let _ = writeln!(
                out,
                "  {name:<20} {:>14} {:>14} {:>8}",
                crate::text::number(ma[k], 2),
                crate::text::number(mb[k], 2),
                ratio
            );
        }
        if let Some(sides) = r.failed_sides() {
            let _ = writeln!(
                out,
                "  no A/B: {sides} had runs with errors or no message, so the figures are not \
                 of the load asked for"
            );
        }
    }
    out
}

/// The comparison as JSON: per cell, the medians, the ratios and every run.
pub fn json(results: &[CellResult], a: &str, b: &str) -> serde_json::Value {
    let cells: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let (ma, mb) = r.medians();
            let pick = |m: [f64; 6]| {
                serde_json::json!({
                    "messages_per_second": m[0],
                    "megabytes_per_second_received": m[1],
                    "latency_p50_us": m[2],
                    "latency_p99_us": m[3],
                    "latency_p999_us": m[4],
                    "client_cpu_us_per_message": m[5],
                })
            };
            let ratios = r.ratios();
            // A figure with no ratio is null, as a failed side has none.
            let ratio = serde_json::json!({
                "messages_per_second": ratios[0],
                "megabytes_per_second_received": ratios[1],
                "latency_p50_us": ratios[2],
                "latency_p99_us": ratios[3],
                "latency_p999_us": ratios[4],
                "client_cpu_us_per_message": ratios[5],
            });
            serde_json::json!({
                "cell": r.cell,
                "passed": r.passed(),
                "median_a": pick(ma),
                "median_b": pick(mb),
                "ratio_a_b": ratio,
                "runs_a": r.a,
                "runs_b": r.b,
            })
        })
        .collect();
    serde_json::json!({ "a": a, "b": b, "cells": cells })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_side_has_no_ratio() {
        assert_eq!(ratio(2.0, 4.0, true), Some(0.5));
        // A dead A reads 0 msg/s: no ratio, not 0.000.
        assert_eq!(ratio(0.0, 40_000.0, false), None);
        assert_eq!(ratio(40_000.0, 0.0, true), None);
        assert_eq!(ratio(f64::NAN, 1.0, true), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
