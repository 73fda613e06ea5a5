//! The timeline as a picture: one self-contained SVG (no fonts, scripts or images from
//! anywhere; inline styles; prints on white). Every mark carries a `<title>` with its exact
//! times (from the pod's start and wall clock), probe output, exit message or signal reason,
//! which browsers show on hover; [`super::html`] wraps it with a richer tooltip.
//!
//! All text from the record (names, messages, probe output) is hostile: escaped for XML and
//! stripped of the control characters XML forbids.

use std::fmt::Write as _;

use crate::model::*;
use crate::render::axis::{self, Axis};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvgOptions {
    /// Width of the picture in pixels (at least 600).
    pub width: u32,
}

impl Default for SvgOptions {
    fn default() -> Self {
        SvgOptions { width: 1200 }
    }
}

const LABEL_W: f64 = 190.0;
const RIGHT_W: f64 = 90.0;
const PAD: f64 = 16.0;
const ROW_H: f64 = 28.0;
const BAR_H: f64 = 12.0;
const TOP: f64 = 78.0;
const NOTE_H: f64 = 16.0;

/// Escapes `s` for XML text and attributes; characters XML 1.0 cannot carry become U+FFFD.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn kind_color(k: ContainerKind) -> &'static str {
    match k {
        ContainerKind::Init => "#0969da",
        ContainerKind::Sidecar => "#8250df",
        ContainerKind::App => "#1a7f37",
        ContainerKind::Ephemeral => "#6e7781",
    }
}

/// `t` (ms from the pod's start) as "+1.234s (2024-05-01T12:00:01.234Z)".
fn when(tl: &Timeline, t: i64) -> String {
    let wall = k8s_openapi::jiff::Timestamp::from_millisecond(tl.origin_unix_ms.saturating_add(t))
        .map(|ts| format!(" ({})", ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")))
        .unwrap_or_default();
    format!("+{:.3}s{wall}", t as f64 / 1000.0)
}

/// Draws `tl` as SVG.
pub fn render(tl: &Timeline, opts: &SvgOptions) -> String {
    let width = f64::from(opts.width.max(600));
    let rows = tl.rows();
    let bar_x = PAD + LABEL_W;
    let bar_w = width - bar_x - RIGHT_W - PAD;
    let axis = Axis::build(tl, bar_w);
    let x = |t: i64| bar_x + axis.x(t);
    let row_y = |n: usize| TOP + n as f64 * ROW_H;
    let labels: Vec<String> = rows
        .iter()
        .map(|i| {
            let mut s = i.container.clone();
            if i.attempt > 0 {
                let _ = write!(s, " #{}", i.attempt);
            }
            s
        })
        .collect();
    let notes = super::text::notes_for(tl);
    let rows_end = row_y(rows.len()) + 8.0;
    let legend_y = rows_end + 22.0;
    let notes_y = legend_y + 30.0;
    let height = notes_y + notes.len() as f64 * NOTE_H + PAD;

    let mut s = String::with_capacity(16 * 1024 + rows.len() * 2048);
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0}" viewBox="0 0 {width} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker>
<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#eaeef2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#afb8c1" stroke-width="3"/></pattern></defs>
<rect width="100%" height="100%" fill="#ffffff"/>
"##
    );
    // Header.
    let phase = tl.phase();
    let _ = writeln!(
        s,
        r##"<text x="{PAD}" y="24" font-size="16" font-weight="bold" fill="#24292f">pod {}/{}</text><text x="{PAD}" y="42" fill="#57606a">{} · {} · {}</text>"##,
        esc(&tl.pod.namespace),
        esc(&tl.pod.name),
        esc(phase),
        axis::duration(tl.end_ms),
        if tl.finished { "finished" } else { "running" }
    );

    // Axis: ticks, grid lines, skipped stretches.
    let grid_bottom = rows_end - 4.0;
    for (tx, label) in axis.ticks(((bar_w / 110.0) as usize).max(2)) {
        let xx = bar_x + tx;
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{grid_bottom:.1}" stroke="#eaeef2"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle" fill="#57606a" font-size="11">{}</text>"##,
            TOP - 12.0,
            TOP - 16.0,
            esc(&label)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{bar_x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#8c959f"/>"##,
        TOP - 10.0,
        bar_x + bar_w,
        TOP - 10.0
    );
    for g in axis.segments.iter().filter(|g| g.compressed) {
        let (x0, x1) = (bar_x + g.x0, bar_x + g.x1);
        let _ = writeln!(
            s,
            r##"<g><title>{} skipped (nothing changed from {} to {})</title><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="url(#hatch)" opacity="0.8"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#57606a" font-size="10">≈ {}</text></g>"##,
            axis::duration(g.t1 - g.t0),
            esc(&when(tl, g.t0)),
            esc(&when(tl, g.t1)),
            TOP - 10.0,
            (x1 - x0).max(1.0),
            grid_bottom - TOP + 10.0,
            (x0 + x1) / 2.0,
            TOP - 28.0,
            axis::duration(g.t1 - g.t0)
        );
    }

    // Rows.
    let row_of = |id: u64| rows.iter().position(|r| r.id == id);
    for (n, (i, lab)) in rows.iter().zip(&labels).enumerate() {
        let kind = tl
            .container(&i.container)
            .map_or(ContainerKind::App, |c| c.kind);
        let color = kind_color(kind);
        let y = row_y(n);
        let mid = y + ROW_H / 2.0;
        let top = mid - BAR_H / 2.0;
        if n % 2 == 1 {
            let _ = writeln!(
                s,
                r##"<rect x="0" y="{y:.1}" width="{width}" height="{ROW_H}" fill="#f6f8fa"/>"##
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{PAD}" y="{:.1}" fill="{color}" font-size="10" font-weight="bold">{}</text><text x="{:.1}" y="{:.1}" fill="#24292f">{}</text>"##,
            mid + 4.0,
            kind.as_str().to_uppercase(),
            PAD + 62.0,
            mid + 4.0,
            esc(lab)
        );
        let end = i.ended_ms().unwrap_or(tl.end_ms);
        // Waiting to start.
        let wait_to = i.started_ms.unwrap_or(end);
        if wait_to > i.requested_ms {
            let _ = writeln!(
                s,
                r##"<line x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#8c959f" stroke-dasharray="2,3"><title>{} waiting from {} to {}</title></line>"##,
                x(i.requested_ms),
                x(wait_to),
                esc(lab),
                esc(&when(tl, i.requested_ms)),
                esc(&when(tl, wait_to))
            );
        }
        if let Some(p) = i.image_pull {
            let e = p.end_ms.unwrap_or(end);
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{BAR_H}" fill="url(#hatch)"><title>pulling the image: {} to {}</title></rect>"##,
                x(p.begin_ms),
                (x(e) - x(p.begin_ms)).max(1.0),
                esc(&when(tl, p.begin_ms)),
                esc(&when(tl, e))
            );
        }
        if let Some(st) = i.started_ms {
            let tip = format!(
                "{} (instance {}, restart {}) running {} → {}{}",
                lab,
                i.id,
                i.attempt,
                when(tl, st),
                if i.exit.is_some() {
                    when(tl, end)
                } else {
                    "now".into()
                },
                i.exit
                    .as_ref()
                    .map(|e| format!("; exit {} {}", e.code, e.reason))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{BAR_H}" rx="2" fill="{color}" opacity="0.85"><title>{}</title></rect>"##,
                x(st),
                (x(end) - x(st)).max(1.5),
                esc(&tip)
            );
        }
        for (what, h) in [("postStart", &i.post_start), ("preStop", &i.pre_stop)] {
            let Some(h) = h else { continue };
            let e = h.end_ms.unwrap_or(end);
            let outcome = match h.ok {
                Some(true) => "succeeded".to_string(),
                Some(false) => format!(
                    "failed{}",
                    h.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                None => "no answer".into(),
            };
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#bf8700" opacity="0.9"><title>{what} hook {} → {} ({}), {}</title></rect>"##,
                x(h.begin_ms),
                top + 2.0,
                (x(e) - x(h.begin_ms)).max(1.5),
                BAR_H - 4.0,
                esc(&when(tl, h.begin_ms)),
                esc(&when(tl, e)),
                axis::duration(e - h.begin_ms),
                esc(&outcome)
            );
        }
        if let Some(b) = i.backoff {
            let e = b.end_ms.unwrap_or(tl.end_ms);
            let _ = writeln!(
                s,
                r##"<line x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#bc4c00" stroke-width="2" stroke-dasharray="6,3"><title>restart back-off {} ({} → {})</title></line>"##,
                x(b.begin_ms),
                x(e),
                axis::duration(e - b.begin_ms),
                esc(&when(tl, b.begin_ms)),
                esc(&when(tl, e))
            );
        }
        // Probe runs: passes as a thin line under the bar, failures as red crosses.
        for p in &i.probes {
            let py = mid + BAR_H / 2.0 + 3.0;
            let took = if p.min_took_ms == p.max_took_ms {
                axis::duration(p.max_took_ms)
            } else {
                format!(
                    "{}–{}",
                    axis::duration(p.min_took_ms),
                    axis::duration(p.max_took_ms)
                )
            };
            if p.ok {
                let _ = writeln!(
                    s,
                    r##"<line x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#4ac26b" stroke-width="2"><title>{} probe passed {}× from {} to {} (took {took})</title></line>"##,
                    x(p.first_ms),
                    x(p.last_ms).max(x(p.first_ms) + 1.5),
                    p.kind.as_str(),
                    p.runs,
                    esc(&when(tl, p.first_ms)),
                    esc(&when(tl, p.last_ms))
                );
            } else {
                let cx = x(p.first_ms);
                let tip = format!(
                    "{} probe failed{} at {} (took {took}){}",
                    p.kind.as_str(),
                    if p.runs > 1 {
                        format!(" {}×, last at {}", p.runs, when(tl, p.last_ms))
                    } else {
                        String::new()
                    },
                    when(tl, p.first_ms),
                    p.output
                        .as_deref()
                        .map(|o| format!(": {o}"))
                        .unwrap_or_default()
                );
                let _ = writeln!(
                    s,
                    r##"<g stroke="#cf222e" stroke-width="2"><title>{}</title><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/></g>"##,
                    esc(&tip),
                    cx - 4.0,
                    top - 4.0,
                    cx + 4.0,
                    top + 4.0,
                    cx - 4.0,
                    top + 4.0,
                    cx + 4.0,
                    top - 4.0
                );
            }
        }
        if let Some(t) = i.startup_passed_ms {
            let cx = x(t);
            let _ = writeln!(
                s,
                r##"<path d="M{:.1},{:.1} l3,4 l6,-8" stroke="#1a7f37" stroke-width="2.5" fill="none"><title>startup probe passed at {}: started</title></path>"##,
                cx - 4.0,
                top - 3.0,
                esc(&when(tl, t))
            );
        }
        for f in &i.ready {
            let cx = x(f.at_ms);
            let (fill, what) = if f.value {
                ("#1a7f37", "ready")
            } else {
                ("#ffffff", "not ready")
            };
            let _ = writeln!(
                s,
                r##"<path d="M{cx:.1},{:.1} l4,4 l-4,4 l-4,-4 z" fill="{fill}" stroke="#1a7f37" stroke-width="1.2"><title>{what} at {}</title></path>"##,
                top - 9.0,
                esc(&when(tl, f.at_ms))
            );
        }
        if let Some(f) = &i.start_failure {
            let cx = x(f.at_ms);
            let tip = format!(
                "start failed at {}: {}{}{}",
                when(tl, f.at_ms),
                f.reason,
                if f.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", f.message)
                },
                if i.start_attempts > 1 {
                    format!(" ({} attempts)", i.start_attempts)
                } else {
                    String::new()
                }
            );
            let _ = writeln!(
                s,
                r##"<g><title>{}</title><circle cx="{cx:.1}" cy="{mid:.1}" r="6" fill="#cf222e"/><text x="{cx:.1}" y="{:.1}" text-anchor="middle" fill="#ffffff" font-size="10" font-weight="bold">!</text></g>"##,
                esc(&tip),
                mid + 3.5
            );
        }
        for sig in &i.signals {
            let cx = x(sig.at_ms);
            let (c, short) = match sig.signal {
                SignalName::Term => ("#bc4c00", "TERM"),
                SignalName::Kill => ("#cf222e", "KILL"),
            };
            let _ = writeln!(
                s,
                r##"<g><title>{} at {}: {}</title><line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="{c}" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="{c}" font-size="9" font-weight="bold">{short}</text></g>"##,
                sig.signal.as_str(),
                esc(&when(tl, sig.at_ms)),
                sig.why.describe(),
                top - 5.0,
                top + BAR_H + 5.0,
                cx + 2.0,
                top - 5.0
            );
        }
        if let Some(e) = &i.exit {
            let cx = x(e.at_ms);
            let fill = if e.code == 0 { "#24292f" } else { "#cf222e" };
            let tip = format!(
                "exited {} ({}) at {}{}",
                e.code,
                e.reason,
                when(tl, e.at_ms),
                e.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{fill}"><title>{}</title></rect>"##,
                cx - 4.0,
                mid - 4.0,
                esc(&tip)
            );
        }
        // The gate: an arrow from the milestone that opened it to this instance's start.
        if let Some(g) = &i.gate {
            if let Some(from) = row_of(g.after_instance) {
                let (x0, y0) = (x(g.at_ms), row_y(from) + ROW_H / 2.0 + BAR_H / 2.0);
                let (x1, y1) = (x(i.requested_ms), top - 1.0);
                let _ = writeln!(
                    s,
                    r##"<path d="M{x0:.1},{y0:.1} C{x0:.1},{:.1} {x1:.1},{:.1} {x1:.1},{y1:.1}" stroke="#57606a" stroke-width="1.2" fill="none" marker-end="url(#arrow)"><title>{}</title></path>"##,
                    (y0 + y1) / 2.0,
                    (y0 + y1) / 2.0,
                    esc(&g.describe(&i.container))
                );
            }
        }
        // How it ended, on the right.
        let outcome = match (&i.exit, &i.start_failure, i.started_ms) {
            (Some(e), _, _) => format!("exit {}", e.code),
            (None, Some(f), None) => f.reason.clone(),
            (None, _, Some(_)) => "running".into(),
            _ => "waiting".into(),
        };
        let bad = i.exit.as_ref().is_some_and(|e| e.code != 0)
            || (i.start_failure.is_some() && i.started_ms.is_none());
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="{}">{}</text>"##,
            bar_x + bar_w + 10.0,
            mid + 4.0,
            if bad { "#cf222e" } else { "#57606a" },
            esc(&outcome)
        );
    }

    // Legend.
    let items: [(&str, &str); 10] = [
        (
            r##"<rect x="0" y="-9" width="18" height="10" rx="2" fill="#1a7f37"/>"##,
            "running (colour: init / sidecar / app)",
        ),
        (
            r##"<line x1="0" y1="-4" x2="18" y2="-4" stroke="#8c959f" stroke-dasharray="2,3"/>"##,
            "waiting",
        ),
        (
            r##"<rect x="0" y="-9" width="18" height="10" fill="url(#hatch)"/>"##,
            "pulling",
        ),
        (
            r##"<rect x="0" y="-8" width="18" height="8" fill="#bf8700"/>"##,
            "hook",
        ),
        (
            r##"<line x1="0" y1="-4" x2="18" y2="-4" stroke="#bc4c00" stroke-width="2" stroke-dasharray="6,3"/>"##,
            "back-off",
        ),
        (
            r##"<line x1="0" y1="-2" x2="18" y2="-2" stroke="#4ac26b" stroke-width="2"/>"##,
            "probe passes",
        ),
        (
            r##"<g stroke="#cf222e" stroke-width="2"><line x1="5" y1="-9" x2="13" y2="-1"/><line x1="5" y1="-1" x2="13" y2="-9"/></g>"##,
            "probe failed",
        ),
        (
            r##"<path d="M9,-10 l4,4 l-4,4 l-4,-4 z" fill="#1a7f37"/>"##,
            "ready",
        ),
        (
            r##"<line x1="9" y1="-11" x2="9" y2="2" stroke="#bc4c00" stroke-width="2"/>"##,
            "SIGTERM / SIGKILL",
        ),
        (
            r##"<rect x="5" y="-8" width="8" height="8" fill="#24292f"/>"##,
            "exit",
        ),
    ];
    let mut lx = PAD;
    let mut ly = legend_y;
    for (glyph, text) in items {
        let w = 26.0 + text.chars().count() as f64 * 6.6 + 18.0;
        if lx + w > width - PAD {
            lx = PAD;
            ly += 18.0;
        }
        let _ = writeln!(
            s,
            r##"<g transform="translate({lx:.1},{ly:.1})">{glyph}<text x="24" y="0" fill="#57606a" font-size="11">{text}</text></g>"##
        );
        lx += w;
    }

    // The notes (what gated what, why each signal), as in the terminal.
    for (k, n) in notes.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<text x="{PAD}" y="{:.1}" fill="#24292f" font-size="11">{}</text>"##,
            notes_y.max(ly + 28.0) + k as f64 * NOTE_H,
            esc(n.trim())
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::library;

    #[test]
    fn draws_one_bar_per_started_instance_and_an_arrow_per_gate() {
        let tl = library::init_sidecar_app();
        let svg = render(&tl, &SvgOptions::default());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        let bars = svg.matches("rx=\"2\" fill=\"#").count();
        // Three running bars and the legend's sample.
        assert_eq!(bars, 4, "{svg}");
        assert_eq!(svg.matches("marker-end=\"url(#arrow)\"").count(), 2);
        assert!(svg.contains("app started after sidecar `proxy` passed its startup probe"));
        // Hover details: exact relative and wall-clock times.
        assert!(svg.contains("(2024-05-01T12:00:0"), "{svg}");
    }

    #[test]
    fn hostile_text_is_escaped() {
        let mut tl = library::job_completion();
        let evil = "</svg><script>alert(1)</script>&\u{1}\"'";
        tl.instances[0].container = evil.into();
        tl.containers[0].name = evil.into();
        if let Some(e) = tl.instances[0].exit.as_mut() {
            e.message = Some(format!("]]>{evil}"));
        }
        let svg = render(&tl, &SvgOptions::default());
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains('\u{1}'));
        assert!(svg.contains("&lt;/svg&gt;&lt;script&gt;"));
        assert_eq!(svg.matches("</svg>").count(), 1);
    }

    #[test]
    fn output_is_deterministic_and_sized() {
        let tl = library::sidecar_crash_loop();
        let a = render(&tl, &SvgOptions { width: 900 });
        assert_eq!(a, render(&tl, &SvgOptions { width: 900 }));
        assert!(a.contains("width=\"900\""));
        // Narrower than 600 is drawn at 600.
        assert!(render(&tl, &SvgOptions { width: 10 }).contains("width=\"600\""));
    }
}
