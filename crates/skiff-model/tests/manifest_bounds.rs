//! Issue 7 item 4: the manifest pre-scan never under-counts flow nesting relative to the YAML
//! parser. Random YAML-looking prefixes (quotes, comments, block scalars, indicators,
//! indentation) are followed by a 300-deep flow chain; whenever the parser (saphyr-parser, as
//! the loader drives it) reaches that chain as structure — the loader then reports "recursion
//! limit exceeded" — the scan must have refused the text first. A scan that could be fooled
//! into skipping real structure would let the quadratic parse through.

use proptest::prelude::*;
use skiff_model::manifest::{self, bounds};

/// Whether the parser, given `text` without the scan, reached nesting past the loader's limit.
fn parser_went_deep(text: &str) -> bool {
    let mut budget = manifest::yaml::Budget {
        nodes: u64::MAX,
        bytes: u64::MAX,
    };
    let mut deep = false;
    let _ = manifest::yaml::documents(text, &mut budget, |d| {
        if let Err(manifest::yaml::Error::Syntax { message, .. }) = d {
            deep |= message.contains("recursion limit exceeded");
        }
    });
    deep
}

/// Pieces of YAML. No aliases: one inside its own anchor's node also ends in "recursion limit
/// exceeded", without any nesting.
fn pieces() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "\n", "\n  ", "\n    ", " ", "a", "b: ", "- ", "? ", ": ", "'", "''", "\"", "\\\"",
            "\\", "#", " #", "|", "|-", ">", "|2", "[", "]", "{", "}", ",", "&x ", "!t ", "---\n",
            "...\n", "\t", "%", "é", "\r\n", "\n- ", "\n  - ", "k: |\n", "x:\n  ", "\n ",
            "- k: >\n", "\u{2028}", "\u{85}",
        ]),
        0..40,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn issue7_item4_scan_never_misses_nesting_libyaml_sees(prefix in pieces(), key in any::<bool>()) {
        let chain = "[".repeat(300);
        let text = if key {
            format!("{prefix}\nb: {chain}")
        } else {
            format!("{prefix}{chain}")
        };
        if bounds::scan(&text).is_ok() {
            prop_assert!(!parser_went_deep(&text), "scan missed the nesting in {text:?}");
        }
    }
}

#[test]
fn issue7_item4_bombs_are_refused_fast_by_load() {
    let t = std::time::Instant::now();
    let json = format!("{}1{}", "{\"a\":".repeat(80_000), "}".repeat(80_000));
    let errs = manifest::load("deep.json", json.as_bytes()).unwrap_err();
    assert!(
        errs[0]
            .to_string()
            .contains("nesting deeper than 256 levels"),
        "{errs:?}"
    );

    let mut laughs = String::from("a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(",");
        laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let errs = manifest::load("laughs.yaml", laughs.as_bytes()).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .to_string()
            .starts_with("laughs.yaml: document 1: document contains excessive aliasing"),
        "{errs:?}"
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
}
