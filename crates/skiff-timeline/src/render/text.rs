//! The terminal drawing: one row per container instance, bars and marks on a shared time
//! axis, then the notes a human needs (what gated what, why each signal, how it ended) and a
//! legend. Width is counted in characters and never exceeded; every glyph is one column wide.

use std::fmt::Write as _;

use crate::model::*;
use crate::render::axis::{self, Axis};

/// How to draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextOptions {
    /// Columns available (the terminal's width); at least [`MIN_WIDTH`] is used.
    pub width: usize,
    /// ANSI colours.
    pub color: bool,
    /// Box-drawing and block glyphs; `false`: ASCII only (dumb terminals, logs).
    pub unicode: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            width: 100,
            color: false,
            unicode: true,
        }
    }
}

/// The narrowest drawing.
pub const MIN_WIDTH: usize = 60;

/// What one cell of a row shows, in rising importance (a cell shows the most important).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Empty,
    Gap,
    Gate,
    Wait,
    Pull,
    BackOff,
    Run,
    Hook,
    Pass,
    Unready,
    Ready,
    Started,
    ProbeFail,
    StartFail,
    Term,
    Exit,
    Kill,
}

struct Glyphs {
    empty: char,
    gap: char,
    gate: char,
    wait: char,
    pull: char,
    backoff: char,
    run: char,
    hook: char,
    pass: char,
    unready: char,
    ready: char,
    started: char,
    probe_fail: char,
    start_fail: char,
    term: char,
    exit: char,
    kill: char,
    rule: char,
    tick: char,
}

const UNICODE: Glyphs = Glyphs {
    empty: ' ',
    gap: '≈',
    gate: '↳',
    wait: '┄',
    pull: '░',
    backoff: '╌',
    run: '━',
    hook: '▒',
    pass: '━',
    unready: '◇',
    ready: '◆',
    started: '✓',
    probe_fail: '✗',
    start_fail: '!',
    term: 'T',
    exit: '■',
    kill: 'K',
    rule: '─',
    tick: '┼',
};

const ASCII: Glyphs = Glyphs {
    empty: ' ',
    gap: '/',
    gate: '>',
    wait: '.',
    pull: ':',
    backoff: '~',
    run: '=',
    hook: 'h',
    pass: '=',
    unready: '-',
    ready: '+',
    started: 'v',
    probe_fail: 'x',
    start_fail: '!',
    term: 'T',
    exit: '#',
    kill: 'K',
    rule: '-',
    tick: '+',
};

impl Glyphs {
    fn of(&self, c: Cell) -> char {
        match c {
            Cell::Empty => self.empty,
            Cell::Gap => self.gap,
            Cell::Gate => self.gate,
            Cell::Wait => self.wait,
            Cell::Pull => self.pull,
            Cell::BackOff => self.backoff,
            Cell::Run => self.run,
            Cell::Hook => self.hook,
            Cell::Pass => self.pass,
            Cell::Unready => self.unready,
            Cell::Ready => self.ready,
            Cell::Started => self.started,
            Cell::ProbeFail => self.probe_fail,
            Cell::StartFail => self.start_fail,
            Cell::Term => self.term,
            Cell::Exit => self.exit,
            Cell::Kill => self.kill,
        }
    }
}

/// ANSI SGR code per cell (none: the terminal's colour).
fn sgr(c: Cell) -> Option<&'static str> {
    match c {
        Cell::Run | Cell::Pass => Some("32"),
        Cell::Started | Cell::Ready => Some("32;1"),
        Cell::Hook | Cell::Gate => Some("36"),
        Cell::Pull | Cell::Wait | Cell::Gap => Some("2"),
        Cell::BackOff | Cell::Unready | Cell::Term => Some("33"),
        Cell::ProbeFail | Cell::StartFail | Cell::Kill => Some("31;1"),
        Cell::Exit => Some("1"),
        Cell::Empty => None,
    }
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color && !text.is_empty() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn kind_code(k: ContainerKind) -> &'static str {
    match k {
        ContainerKind::Init => "34",
        ContainerKind::Sidecar => "35",
        ContainerKind::App => "36",
        ContainerKind::Ephemeral => "2",
    }
}

/// `s` cut to `n` characters, with "…" when cut.
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    if n == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(n - 1).collect();
    out.push('…');
    out
}

/// Control characters from the record (container output, messages) never reach the terminal.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The row label: "sidecar proxy" (kinds in a column of their own; "#N" for a restart).
fn label(tl: &Timeline, i: &Instance) -> (ContainerKind, String) {
    let kind = tl
        .container(&i.container)
        .map_or(ContainerKind::App, |c| c.kind);
    let mut s = format!("{:<7} {}", kind.as_str(), clean(&i.container));
    if i.attempt > 0 {
        let _ = write!(s, " #{}", i.attempt);
    }
    (kind, s)
}

/// How the row ended, for the right-hand column.
fn outcome(i: &Instance) -> String {
    if let Some(e) = &i.exit {
        if i.signals.iter().any(|s| s.signal == SignalName::Kill) && e.code == 137 {
            return "killed".into();
        }
        return format!("exit {}", e.code);
    }
    if let Some(f) = &i.start_failure {
        if i.started_ms.is_none() {
            return fit(&clean(&f.reason), 12);
        }
    }
    if i.started_ms.is_some() {
        return "running".into();
    }
    "waiting".into()
}

/// Draws `tl` as text (see the module docs).
pub fn render(tl: &Timeline, opts: &TextOptions) -> String {
    let width = opts.width.max(MIN_WIDTH);
    let g = if opts.unicode { &UNICODE } else { &ASCII };
    let rows = tl.rows();
    let labels: Vec<(ContainerKind, String)> = rows.iter().map(|i| label(tl, i)).collect();
    let label_w = labels
        .iter()
        .map(|(_, l)| l.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, width / 4);
    let right_w = 12;
    let bar_w = width.saturating_sub(label_w + right_w + 2).max(10);
    let axis = Axis::build(tl, bar_w as f64);
    let col = |t: i64| -> usize { (axis.x(t).floor() as usize).min(bar_w - 1) };

    let mut out = String::new();
    // Header.
    let phase = tl.phase();
    let state = if tl.finished { "finished" } else { "running" };
    let header = format!(
        "pod {}/{} · {} · {} · {}",
        clean(&tl.pod.namespace),
        clean(&tl.pod.name),
        clean(phase),
        axis::duration(tl.end_ms),
        state
    );
    let header = if opts.unicode {
        header
    } else {
        header.replace('·', "-")
    };
    out.push_str(&paint(opts.color, "1", &fit(&header, width)));
    out.push('\n');

    // Axis labels and rule.
    let pad = " ".repeat(label_w + 1);
    let mut label_line: Vec<char> = vec![' '; bar_w];
    let mut rule: Vec<char> = vec![g.rule; bar_w];
    let mut next_free = 0usize;
    for (x, text) in axis.ticks((bar_w / 12).max(2)) {
        let c = (x.floor() as usize).min(bar_w - 1);
        rule[c] = g.tick;
        let n = text.chars().count();
        // Labels start at their tick, unless that would overlap or overflow.
        let start = c.min(bar_w.saturating_sub(n));
        if start < next_free {
            continue;
        }
        for (k, ch) in text.chars().enumerate() {
            if let Some(slot) = label_line.get_mut(start + k) {
                *slot = ch;
            }
        }
        next_free = start + n + 1;
    }
    for s in axis.segments.iter().filter(|s| s.compressed) {
        let (from, to) = (s.x0.floor() as usize, (s.x1.ceil() as usize).min(bar_w));
        for r in rule.iter_mut().take(to).skip(from) {
            *r = g.gap;
        }
    }
    let _ = writeln!(
        out,
        "{pad}{}",
        label_line.iter().collect::<String>().trim_end()
    );
    let _ = writeln!(
        out,
        "{pad}{}",
        paint(opts.color, "2", &rule.iter().collect::<String>())
    );

    // Rows.
    for (i, (kind, lab)) in rows.iter().zip(&labels) {
        let mut cells = vec![Cell::Empty; bar_w];
        let mut put = |from: usize, to: usize, c: Cell| {
            for cell in cells.iter_mut().take(to.min(bar_w - 1) + 1).skip(from) {
                if c > *cell {
                    *cell = c;
                }
            }
        };
        let end = i.ended_ms().unwrap_or(tl.end_ms);
        // What gated the instance points at its start, from the cell before it.
        if i.gate.is_some() {
            let c = col(i.requested_ms);
            if c > 0 {
                put(c - 1, c - 1, Cell::Gate);
            }
        }
        let started = i.started_ms;
        put(col(i.requested_ms), col(started.unwrap_or(end)), Cell::Wait);
        if let Some(p) = i.image_pull {
            put(col(p.begin_ms), col(p.end_ms.unwrap_or(end)), Cell::Pull);
        }
        if let Some(s) = started {
            put(col(s), col(end), Cell::Run);
        }
        for h in [&i.post_start, &i.pre_stop].into_iter().flatten() {
            put(col(h.begin_ms), col(h.end_ms.unwrap_or(end)), Cell::Hook);
        }
        if let Some(b) = i.backoff {
            let to = b.end_ms.unwrap_or(tl.end_ms);
            // After the exit cell.
            put(
                (col(b.begin_ms) + 1).min(col(to)),
                col(to).saturating_sub(1).max(col(b.begin_ms)),
                Cell::BackOff,
            );
        }
        for p in &i.probes {
            let c = if p.ok { Cell::Pass } else { Cell::ProbeFail };
            if p.ok {
                put(col(p.first_ms), col(p.last_ms), c);
            } else {
                put(col(p.first_ms), col(p.first_ms), c);
                put(col(p.last_ms), col(p.last_ms), c);
            }
        }
        for f in &i.ready {
            let c = if f.value { Cell::Ready } else { Cell::Unready };
            put(col(f.at_ms), col(f.at_ms), c);
        }
        if let Some(t) = i.startup_passed_ms {
            put(col(t), col(t), Cell::Started);
        }
        if let Some(f) = &i.start_failure {
            put(col(f.at_ms), col(f.at_ms), Cell::StartFail);
        }
        for s in &i.signals {
            let c = match s.signal {
                SignalName::Term => Cell::Term,
                SignalName::Kill => Cell::Kill,
            };
            put(col(s.at_ms), col(s.at_ms), c);
        }
        if let Some(e) = &i.exit {
            put(col(e.at_ms), col(e.at_ms), Cell::Exit);
        }
        // Quiet stretches skipped: what lasts through them shows the break.
        for s in axis.segments.iter().filter(|s| s.compressed) {
            let (from, to) = (s.x0.floor() as usize, (s.x1.ceil() as usize).min(bar_w));
            for c in cells.iter_mut().take(to).skip(from) {
                if *c != Cell::Empty {
                    *c = Cell::Gap;
                }
            }
        }
        let mut bar = String::with_capacity(bar_w * 4);
        let mut k = 0;
        while k < bar_w {
            // Runs of one cell kind share one colour sequence.
            let c = cells[k];
            let mut j = k;
            while j < bar_w && cells[j] == c {
                j += 1;
            }
            let text: String = std::iter::repeat_n(g.of(c), j - k).collect();
            match sgr(c) {
                Some(code) => bar.push_str(&paint(opts.color, code, &text)),
                None => bar.push_str(&text),
            }
            k = j;
        }
        let lab = fit(lab, label_w);
        let lab_pad = " ".repeat(label_w - lab.chars().count());
        let res = fit(&outcome(i), right_w - 1);
        let failed = i.exit.as_ref().is_some_and(|e| e.code != 0)
            || (i.start_failure.is_some() && i.started_ms.is_none());
        let _ = writeln!(
            out,
            "{}{lab_pad} {bar} {}",
            paint(opts.color, kind_code(*kind), &lab),
            paint(opts.color, if failed { "31" } else { "2" }, &res)
        );
    }

    // Notes.
    let notes = notes(&rows, &labels);
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let line = fit(&n, width);
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !tl.truncated.is_empty() {
        let t = &tl.truncated;
        let line = format!(
            "(bounded record: {} instances, {} probe failures, {} marks left out)",
            t.instances, t.probe_spans, t.marks
        );
        out.push_str(&paint(opts.color, "2", &fit(&line, width)));
        out.push('\n');
    }

    // Legend.
    out.push('\n');
    let items: Vec<(Cell, &str)> = vec![
        (Cell::Run, "running"),
        (Cell::Wait, "waiting"),
        (Cell::Pull, "pulling"),
        (Cell::Hook, "hook"),
        (Cell::BackOff, "back-off"),
        (Cell::Started, "started (startup probe)"),
        (Cell::Ready, "ready"),
        (Cell::Unready, "not ready"),
        (Cell::ProbeFail, "probe failed"),
        (Cell::StartFail, "start failed"),
        (Cell::Term, "SIGTERM"),
        (Cell::Kill, "SIGKILL"),
        (Cell::Exit, "exit"),
        (Cell::Gate, "gated start (see below)"),
        (Cell::Gap, "time skipped"),
    ];
    let mut line = String::new();
    let mut line_len = 0;
    for (c, what) in items {
        let item_len = 2 + what.chars().count();
        if line_len > 0 && line_len + 2 + item_len > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line.clear();
            line_len = 0;
        }
        if line_len > 0 {
            line.push_str("  ");
            line_len += 2;
        }
        let glyph = g.of(c).to_string();
        match sgr(c) {
            Some(code) => line.push_str(&paint(opts.color, code, &glyph)),
            None => line.push_str(&glyph),
        }
        line.push(' ');
        line.push_str(what);
        line_len += item_len;
    }
    if !line.is_empty() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The notes of `tl` (see [`notes`]), for the other renderings.
pub(crate) fn notes_for(tl: &Timeline) -> Vec<String> {
    let rows = tl.rows();
    let labels: Vec<(ContainerKind, String)> = rows.iter().map(|i| label(tl, i)).collect();
    notes(&rows, &labels)
}

/// The lines under the drawing, in time order: gates, start failures, probe failures, stop
/// signals with their reasons, exits that were not plain completions, back-off waits.
fn notes(rows: &[&Instance], labels: &[(ContainerKind, String)]) -> Vec<String> {
    let mut notes: Vec<(i64, usize, String)> = Vec::new();
    let at = |t: i64| axis::duration(t);
    for (n, (i, (_, lab))) in rows.iter().zip(labels).enumerate() {
        // "sidecar proxy #2", one space between kind and name.
        let lab = clean(&lab.split_whitespace().collect::<Vec<_>>().join(" "));
        let restarted = rows
            .iter()
            .any(|r| r.container == i.container && r.attempt > i.attempt);
        if let Some(g) = &i.gate {
            notes.push((
                i.requested_ms,
                n,
                format!(
                    "{} (at {}, +{})",
                    clean(&g.describe(&i.container)),
                    at(i.started_ms.unwrap_or(i.requested_ms)),
                    axis::duration(i.started_ms.unwrap_or(i.requested_ms) - g.at_ms)
                ),
            ));
        }
        if let Some(f) = &i.start_failure {
            let tries = if i.start_attempts > 1 {
                format!(" ({} attempts)", i.start_attempts)
            } else {
                String::new()
            };
            notes.push((
                f.at_ms,
                n,
                format!(
                    "{lab}: start failed at {}: {}{tries}{}",
                    at(f.at_ms),
                    clean(&f.reason),
                    if f.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", clean(&f.message))
                    }
                ),
            ));
        }
        // Failures of one probe with no pass between them make one note.
        for kind in [
            ProbeKind::Startup,
            ProbeKind::Readiness,
            ProbeKind::Liveness,
        ] {
            let mut streak: Vec<&ProbeSpan> = Vec::new();
            let spans = i.probes.iter().filter(|p| p.kind == kind);
            for p in spans.map(Some).chain(std::iter::once(None)) {
                if let Some(p) = p.filter(|p| !p.ok) {
                    streak.push(p);
                    continue;
                }
                let (Some(first), Some(last)) = (streak.first(), streak.last()) else {
                    continue;
                };
                let runs: u32 = streak.iter().map(|p| p.runs).sum();
                let took = streak.iter().map(|p| p.max_took_ms).max().unwrap_or(0);
                let out = last
                    .output
                    .as_deref()
                    .map(|o| format!(": {}", clean(o.trim())))
                    .unwrap_or_default();
                let when = if runs > 1 {
                    format!(
                        " ×{runs} from {} to {}",
                        at(first.first_ms),
                        at(last.last_ms)
                    )
                } else {
                    format!(" at {}", at(first.first_ms))
                };
                notes.push((
                    first.first_ms,
                    n,
                    format!(
                        "{lab}: {} probe failed{when} (took {}){out}",
                        kind.as_str(),
                        axis::duration(took)
                    ),
                ));
                streak.clear();
            }
        }
        if let (Some(t), Some(s)) = (i.startup_passed_ms, i.started_ms) {
            notes.push((
                t,
                n,
                format!(
                    "{lab}: startup probe passed at {} ({} after start)",
                    at(t),
                    axis::duration(t - s)
                ),
            ));
        }
        if let Some(h) = &i.pre_stop {
            let took = h.end_ms.map(|e| axis::duration(e - h.begin_ms));
            notes.push((
                h.begin_ms,
                n,
                format!(
                    "{lab}: preStop hook at {}{}{}",
                    at(h.begin_ms),
                    took.map(|t| format!(", took {t}")).unwrap_or_default(),
                    match h.ok {
                        Some(false) => " (failed)",
                        None => " (no answer)",
                        Some(true) => "",
                    }
                ),
            ));
        }
        if let Some(h) = i.post_start.as_ref().filter(|h| h.ok == Some(false)) {
            notes.push((
                h.begin_ms,
                n,
                format!(
                    "{lab}: postStart hook failed{}",
                    h.message
                        .as_deref()
                        .map(|m| format!(": {}", clean(m)))
                        .unwrap_or_default()
                ),
            ));
        }
        for s in &i.signals {
            notes.push((
                s.at_ms,
                n,
                format!(
                    "{lab}: {} at {}: {}",
                    s.signal.as_str(),
                    at(s.at_ms),
                    s.why.describe()
                ),
            ));
        }
        if let Some(e) = &i.exit {
            let signalled = i.signals.first().map(|s| s.at_ms);
            let after = signalled
                .map(|t| format!(", {} after {}", axis::duration(e.at_ms - t), "SIGTERM"))
                .filter(|_| {
                    i.signals
                        .first()
                        .is_some_and(|s| s.signal == SignalName::Term)
                })
                .unwrap_or_default();
            let msg = e
                .message
                .as_deref()
                .map(|m| format!(": {}", clean(m.trim())))
                .unwrap_or_default();
            if e.code != 0 || !i.signals.is_empty() {
                notes.push((
                    e.at_ms,
                    n,
                    format!(
                        "{lab}: exited {} ({}) at {}{after}{msg}",
                        e.code,
                        clean(&e.reason),
                        at(e.at_ms)
                    ),
                ));
            }
        }
        if let Some(b) = i.backoff {
            if let Some(end) = b.end_ms {
                let what = if restarted {
                    "restarted after"
                } else {
                    "still waiting at the end:"
                };
                notes.push((
                    b.begin_ms,
                    n,
                    format!(
                        "{lab}: {what} {} back-off",
                        axis::duration(end - b.begin_ms)
                    ),
                ));
            }
        }
    }
    notes.sort_by_key(|(t, n, _)| (*t, *n));
    notes
        .into_iter()
        .map(|(_, _, s)| format!("  {s}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::library;

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn width_is_never_exceeded() {
        let tls = [
            library::init_sidecar_app(),
            library::sidecar_crash_loop(),
            library::job_completion(),
        ];
        for tl in &tls {
            for width in [60, 61, 73, 80, 100, 137, 200] {
                let s = render(
                    tl,
                    &TextOptions {
                        width,
                        color: false,
                        unicode: true,
                    },
                );
                for line in s.lines() {
                    assert!(line.chars().count() <= width, "{width}: {line:?}");
                }
            }
        }
    }

    #[test]
    fn ascii_mode_is_ascii_and_colour_only_adds_codes() {
        let tl = library::job_completion();
        let plain = render(
            &tl,
            &TextOptions {
                width: 90,
                color: false,
                unicode: false,
            },
        );
        assert!(plain.is_ascii(), "{plain}");
        let coloured = render(
            &tl,
            &TextOptions {
                width: 90,
                color: true,
                unicode: false,
            },
        );
        assert!(coloured.contains("\x1b[32m"));
        assert_eq!(strip_ansi(&coloured), plain);
    }

    #[test]
    fn quiet_hours_are_skipped_and_marked() {
        use crate::scenario::{Run, Scenario};
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "idle", "namespace": "default"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "x"}]}});
        let tl = Scenario::new(pod)
            .unwrap()
            .script("app", vec![Run::exits(5 * 3_600_000, 0)])
            .play(6 * 3_600_000);
        let s = render(&tl, &TextOptions::default());
        let rule = s.lines().nth(2).unwrap_or_default();
        assert!(rule.contains('≈'), "{s}");
        let row = s.lines().nth(3).unwrap_or_default();
        assert!(row.contains('≈') && row.contains('■'), "{s}");
        // The axis names the far side of the skipped stretch.
        assert!(s.lines().nth(1).unwrap_or_default().contains("5h"), "{s}");
    }

    #[test]
    fn a_day_of_five_containers_draws() {
        let tl = library::day_long(24);
        let s = render(&tl, &TextOptions::default());
        for name in ["mesh", "logs", "web", "worker", "cron"] {
            assert!(s.contains(name), "{s}");
        }
        assert!(s.lines().nth(1).unwrap_or_default().contains("12h"), "{s}");
    }

    #[test]
    fn control_characters_from_the_record_never_reach_the_terminal() {
        let mut tl = library::init_sidecar_app();
        tl.instances[0].container = "evil\x1b]0;pwned\x07".into();
        tl.containers[0].name = tl.instances[0].container.clone();
        if let Some(e) = tl.instances[0].exit.as_mut() {
            e.code = 3;
            e.message = Some("bad\x1b[2Jthing".into());
        }
        let s = render(&tl, &TextOptions::default());
        assert!(!s.contains('\x1b') && !s.contains('\x07'), "{s:?}");
    }
}
