//! The picture in a real browser (issue 13): the SVG and the HTML page of two scenarios are
//! loaded by headless Chromium (Debian's `chromium`, which `.ci/run` installs), which must
//! parse them without errors (no XML parser error, no script error on the console), and its
//! screenshot must show the drawing (many non-white pixels, several colours). Without
//! Chromium the test fails under CI (`CI` set) and says it skipped otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_timeline::render::{html, svg};
use skiff_timeline::scenario::library;

const CHROMIUM: &str = "/usr/bin/chromium";
const LIMIT: Duration = Duration::from_secs(90);

/// Runs Chromium headless on `url` with `extra` flags; (stdout, stderr). Killed (its whole
/// process group) if it takes longer than [`LIMIT`].
fn chromium(profile: &Path, url: &str, extra: &[String]) -> (String, String) {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let pid = child.id();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (out_t, err_t) = (read(Box::new(out)), read(Box::new(err)));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > LIMIT {
            // The browser and its helpers share the group made at spawn.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            let _ = child.wait();
            panic!("chromium did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (out_t.join().unwrap(), err_t.join().unwrap())
}

/// Console messages of the page that are errors (Chromium logs them as `CONSOLE` lines).
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Error") || l.contains("Uncaught")))
        .collect()
}

fn check_png(path: &Path) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut colours = HashSet::new();
    let mut ink = 0usize;
    let total = pixels.len() / channels;
    for px in pixels.chunks(channels) {
        let rgb = (px[0], px[1], px[2]);
        colours.insert(rgb);
        if rgb.0 < 200 || rgb.1 < 200 || rgb.2 < 200 {
            ink += 1;
        }
    }
    assert!(
        ink * 100 / total >= 2,
        "{}: only {ink} of {total} pixels drawn",
        path.display()
    );
    assert!(
        colours.len() >= 8,
        "{}: {} colours",
        path.display(),
        colours.len()
    );
}

#[test]
fn the_picture_loads_in_chromium_without_errors_and_is_not_blank() {
    if !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMIUM} is missing: .ci/run installs Debian's chromium"
        );
        eprintln!("skipped: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, tl) in [
        ("init_sidecar_app", library::init_sidecar_app()),
        ("job_completion", library::job_completion()),
    ] {
        let opts = svg::SvgOptions { width: 1000 };
        for (ext, text) in [
            ("svg", svg::render(&tl, &opts)),
            ("html", html::render(&tl, &opts)),
        ] {
            let file = dir.path().join(format!("{name}.{ext}"));
            std::fs::write(&file, text).unwrap();
            let url = format!("file://{}", file.display());
            let profile = tempfile::tempdir().unwrap();
            // The DOM as parsed: an XML error shows as a <parsererror> element.
            let (dom, log) = chromium(profile.path(), &url, &["--dump-dom".into()]);
            assert!(
                dom.contains("<svg"),
                "{name}.{ext}: no svg in\n{dom}\n{log}"
            );
            assert!(!dom.contains("parsererror"), "{name}.{ext}: {dom}");
            assert!(
                console_errors(&log).is_empty(),
                "{name}.{ext}: {:?}",
                console_errors(&log)
            );
            let png = dir.path().join(format!("{name}-{ext}.png"));
            let (_, log) = chromium(
                profile.path(),
                &url,
                &[
                    format!("--screenshot={}", png.display()),
                    "--window-size=1000,500".into(),
                ],
            );
            assert!(png.exists(), "{name}.{ext}: no screenshot\n{log}");
            check_png(&png);
        }
    }
}
