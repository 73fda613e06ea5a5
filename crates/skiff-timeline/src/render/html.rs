//! The timeline as a page: the SVG of [`super::svg`] inline, with a tooltip that shows each
//! mark's details (its `<title>`: exact times, probe output, exit messages, signal reasons) as
//! the pointer moves over it, and the notes as a list. Self-contained: inline CSS and script,
//! nothing fetched.

use crate::model::Timeline;
use crate::render::svg::{self, esc, SvgOptions};

/// Draws `tl` as an HTML page.
pub fn render(tl: &Timeline, opts: &SvgOptions) -> String {
    let picture = svg::render(tl, opts);
    let title = format!("pod {}/{} — timeline", tl.pod.namespace, tl.pod.name);
    let json = serde_json::to_string(tl)
        .unwrap_or_default()
        // Inside <script>: no "</" can end the element early.
        .replace("</", "<\\/")
        .replace("<!--", "<\\!--");
    format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ margin: 16px; font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #24292f; background: #fff; }}
#tip {{ position: fixed; pointer-events: none; display: none; max-width: 480px; padding: 6px 8px;
  background: #24292f; color: #fff; font-size: 12px; border-radius: 4px; white-space: pre-wrap; }}
svg [data-tip]:hover, svg g:hover > * {{ filter: brightness(1.15); }}
@media print {{ #tip {{ display: none !important; }} }}
</style>
</head>
<body>
{picture}<div id="tip" role="tooltip"></div>
<script type="application/json" id="timeline">{json}</script>
<script>
(function () {{
  var tip = document.getElementById("tip");
  var svgEl = document.querySelector("svg");
  if (!svgEl) return;
  // Each mark's <title> becomes the tooltip text (the browser's own stays as a fallback).
  svgEl.addEventListener("mousemove", function (ev) {{
    var el = ev.target, title = null;
    while (el && el !== svgEl && !title) {{
      for (var i = 0; i < el.childNodes.length; i++) {{
        var c = el.childNodes[i];
        if (c.nodeName === "title") {{ title = c.textContent; break; }}
      }}
      el = el.parentNode;
    }}
    if (!title) {{ tip.style.display = "none"; return; }}
    tip.textContent = title;
    tip.style.left = (ev.clientX + 14) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
    tip.style.display = "block";
  }});
  svgEl.addEventListener("mouseleave", function () {{ tip.style.display = "none"; }});
}})();
</script>
</body>
</html>
"##,
        title = esc(&title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::library;

    #[test]
    fn wraps_the_svg_with_its_record_and_a_tooltip() {
        let tl = library::job_completion();
        let page = render(&tl, &SvgOptions::default());
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<svg xmlns="));
        assert!(page.contains("id=\"tip\""));
        // The record itself is in the page, for tools and for the curious.
        assert!(page.contains("\"originUnixMs\":1714564800000"));
        // Nothing is fetched.
        for needle in ["src=", "href=\"http", "@import", "url(http"] {
            assert!(!page.contains(needle), "{needle}");
        }
    }

    #[test]
    fn a_record_cannot_end_the_script_element() {
        let mut tl = library::job_completion();
        tl.instances[0].container = "</script><script>alert(1)</script>".into();
        let page = render(&tl, &SvgOptions::default());
        assert_eq!(page.matches("</script>").count(), 2, "{page}");
    }
}
