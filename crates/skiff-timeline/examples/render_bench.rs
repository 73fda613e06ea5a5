//! Render benchmark (issue 13 "Speed": a 24-hour timeline of a pod with 5 containers and 10 s
//! probes renders in ≤ 100 ms). Plays `scenario::library::day_long(24)` once (the real engine
//! on a simulated day), then times N renders per format and prints p50/p90/max:
//!
//!   cargo run --release -p skiff-timeline --example render_bench [N]
use std::time::Instant;

use skiff_timeline::render::{html, svg, text};
use skiff_timeline::scenario::library;

fn stats(name: &str, mut ms: Vec<f64>, bytes: usize) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<24} n={:<4} p50 {:>8.3}  p90 {:>8.3}  max {:>8.3} ms   ({bytes} bytes)",
        ms.len(),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> (Vec<f64>, T) {
    let mut out = Vec::with_capacity(n);
    let mut last = f();
    for _ in 0..n {
        let t = Instant::now();
        last = f();
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (out, last)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let t = Instant::now();
    let tl = library::day_long(24);
    let probe_runs: u64 = tl
        .instances
        .iter()
        .flat_map(|i| &i.probes)
        .map(|p| u64::from(p.runs))
        .sum();
    println!(
        "24 h timeline: {} containers, {} instances, {} probe runs in {} spans, recorded by the \
         real engine in {:.0} ms",
        tl.containers.len(),
        tl.instances.len(),
        probe_runs,
        tl.instances.iter().map(|i| i.probes.len()).sum::<usize>(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let opts = text::TextOptions {
        width: 160,
        color: true,
        unicode: true,
    };
    let (ms, out) = time(n, || text::render(&tl, &opts));
    stats("text (160 cols, colour)", ms, out.len());
    let sopts = svg::SvgOptions::default();
    let (ms, out) = time(n, || svg::render(&tl, &sopts));
    stats("svg (1200 px)", ms, out.len());
    let (ms, out) = time(n, || html::render(&tl, &sopts));
    stats("html", ms, out.len());
    let (ms, out) = time(n, || serde_json::to_string(&tl).unwrap_or_default());
    stats("json", ms, out.len());
}
