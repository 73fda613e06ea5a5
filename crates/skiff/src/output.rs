//! Printing: objects as YAML or JSON, and the print macros every command uses.
//!
//! # Output never kills skiff (issue 7 item 6)
//! `skiff run … 2>&1 | head` closes skiff's stdout and stderr while the pod still runs. The
//! standard `print!`/`println!`/`eprint!`/`eprintln!` panic on such a write error (EPIPE,
//! and Rust ignores SIGPIPE), which would end skiff before it tore the pod down. The macros
//! below shadow them for the whole crate (declared before the other modules in `main.rs`):
//! same syntax, but a failed write is ignored, so the pod runs to its normal end and skiff
//! exits with the code it would have had. The tracing subscriber gets the same treatment
//! ([`StderrWriter`]).

use std::io::Write;

use serde::Serialize;

/// `print!` that ignores write errors (see the module docs).
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}

/// `println!` that ignores write errors (see the module docs).
macro_rules! println {
    () => {
        $crate::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that ignores write errors (see the module docs).
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!($($arg)*))
    };
}

/// `eprintln!` that ignores write errors (see the module docs).
macro_rules! eprintln {
    () => {
        $crate::output::write_err(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout; a closed or full-disk stdout is not skiff's failure.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// Writes to stderr, ignoring errors.
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// The tracing subscriber's writer: stderr, whose errors are swallowed (tracing-subscriber
/// would otherwise report them with `eprintln!`, which panics on a closed pipe).
pub struct StderrWriter;

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

/// Serialises `value` in the requested format, ending with a newline.
pub fn render<T: Serialize>(value: &T, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => {
            // kubectl's JSON printer indents by four spaces.
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            value.serialize(&mut ser)?;
            out.push(b'\n');
            String::from_utf8(out)?
        }
        // YAML 1.1-safe (what kubectl reads): `skiff … -o yaml | kubectl apply -f -`
        // round-trips.
        Format::Yaml => skiff_model::manifest::emit::to_yaml(&serde_json::to_value(value)?),
    })
}

/// kubectl's `-o/--output` values. Each command accepts the subset that makes sense for it
/// ([`OutputFormat::ensure`]); parsing (clap's `value_parser`) accepts them all so that a bad
/// jsonpath template is reported as a usage error before anything runs.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputFormat {
    Json,
    Yaml,
    /// `kind[.group]/name`, one line per object.
    Name,
    /// The command's table with more columns.
    Wide,
    /// `jsonpath=TEMPLATE` or `jsonpath-file=FILE`.
    JsonPath(Box<crate::jsonpath::Template>),
}

/// The most a `jsonpath-file=` template may hold: it is a flag's worth of text.
const MAX_TEMPLATE_FILE: u64 = 1024 * 1024;

impl OutputFormat {
    /// Parses an `-o` value as kubectl does (`json`, `yaml`, `name`, `wide`, `jsonpath=…`,
    /// `jsonpath-file=…`).
    pub fn parse(value: &str) -> Result<OutputFormat, String> {
        if let Some(template) = value.strip_prefix("jsonpath=") {
            if template.is_empty() {
                return Err("template format specified but no template given".into());
            }
            return crate::jsonpath::Template::parse(template)
                .map(|t| OutputFormat::JsonPath(Box::new(t)))
                .map_err(|e| e.to_string());
        }
        if let Some(file) = value.strip_prefix("jsonpath-file=") {
            use std::io::Read;
            let mut text = String::new();
            std::fs::File::open(file)
                .and_then(|f| f.take(MAX_TEMPLATE_FILE).read_to_string(&mut text))
                .map_err(|e| format!("error reading --template {file}, {e}"))?;
            return crate::jsonpath::Template::parse(&text)
                .map(|t| OutputFormat::JsonPath(Box::new(t)))
                .map_err(|e| e.to_string());
        }
        match value {
            "json" => Ok(OutputFormat::Json),
            "yaml" => Ok(OutputFormat::Yaml),
            "name" => Ok(OutputFormat::Name),
            "wide" => Ok(OutputFormat::Wide),
            other => Err(format!(
                "unable to match a printer suitable for the output format {other:?}, allowed formats are: json,jsonpath,jsonpath-file,name,wide,yaml"
            )),
        }
    }

    fn word(&self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::Yaml => "yaml",
            OutputFormat::Name => "name",
            OutputFormat::Wide => "wide",
            OutputFormat::JsonPath(_) => "jsonpath",
        }
    }

    /// Refuses a format the command has no printer for, with kubectl's wording.
    pub fn ensure(&self, allowed: &[&str]) -> Result<(), String> {
        if allowed.contains(&self.word()) {
            return Ok(());
        }
        let mut list: Vec<&str> = allowed.to_vec();
        if list.contains(&"jsonpath") {
            list.push("jsonpath-file");
        }
        list.sort_unstable();
        Err(format!(
            "unable to match a printer suitable for the output format {:?}, allowed formats are: {}",
            self.word(),
            list.join(",")
        ))
    }

    /// Prints `objects` in this format: one object as itself, several as a kubectl `List`
    /// (json/yaml/jsonpath), `name` one line each. `Wide` is a table the command prints itself.
    pub fn render_objects(&self, objects: &[serde_json::Value]) -> anyhow::Result<String> {
        self.render_as(objects, objects.len() != 1)
    }

    /// As [`OutputFormat::render_objects`], but `as_list` decides whether json/yaml/jsonpath see
    /// a `List` (`kubectl get pods` prints one even for one pod; `kubectl get pod NAME` does not).
    pub fn render_as(
        &self,
        objects: &[serde_json::Value],
        as_list: bool,
    ) -> anyhow::Result<String> {
        let single_or_list = || match objects {
            [one] if !as_list => one.clone(),
            many => serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": many,
                "metadata": {"resourceVersion": ""},
            }),
        };
        Ok(match self {
            OutputFormat::Json => render(&single_or_list(), Format::Json)?,
            OutputFormat::Yaml => render(&single_or_list(), Format::Yaml)?,
            OutputFormat::Name => objects
                .iter()
                .map(|o| format!("{}\n", name_of(o)))
                .collect(),
            OutputFormat::JsonPath(t) => t.render(&single_or_list())?,
            OutputFormat::Wide => anyhow::bail!("wide output is a table, not an object format"),
        })
    }
}

/// One object in `format` (see [`OutputFormat::render_objects`]).
pub fn render_object<T: Serialize>(value: &T, format: &OutputFormat) -> anyhow::Result<String> {
    format.render_objects(&[serde_json::to_value(value)?])
}

/// `kind[.group]/name` as `kubectl -o name` prints it: `pod/web`, `deployment.apps/web`.
pub fn name_of(object: &serde_json::Value) -> String {
    let kind = object
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_lowercase();
    let group = object
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .and_then(|v| v.split_once('/'))
        .map(|(g, _)| g)
        .unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or("");
    if group.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}.{group}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_kubectl_output_values() {
        assert_eq!(OutputFormat::parse("json"), Ok(OutputFormat::Json));
        assert_eq!(OutputFormat::parse("name"), Ok(OutputFormat::Name));
        assert!(matches!(
            OutputFormat::parse("jsonpath={.kind}"),
            Ok(OutputFormat::JsonPath(_))
        ));
        let bad = OutputFormat::parse("xml").err().unwrap_or_default();
        assert!(
            bad.starts_with("unable to match a printer suitable for the output format \"xml\""),
            "{bad}"
        );
        let unclosed = OutputFormat::parse("jsonpath={.kind")
            .err()
            .unwrap_or_default();
        assert_eq!(unclosed, "error parsing jsonpath {.kind, unclosed action");
        assert_eq!(
            OutputFormat::Wide.ensure(&["json", "yaml", "name", "jsonpath"]),
            Err("unable to match a printer suitable for the output format \"wide\", allowed formats are: json,jsonpath,jsonpath-file,name,yaml".into())
        );
    }

    #[test]
    fn several_objects_print_as_a_list_and_names_carry_the_group() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}});
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        let names = OutputFormat::Name.render_objects(&[pod.clone(), dep.clone()]);
        assert_eq!(names.ok().as_deref(), Some("pod/a\ndeployment.apps/d\n"));
        let list = OutputFormat::Json
            .render_objects(&[pod.clone(), dep])
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&list).unwrap_or_default();
        assert_eq!(v["kind"], "List");
        assert_eq!(v["items"][1]["kind"], "Deployment");
        let one = OutputFormat::parse("jsonpath={.kind}/{.metadata.name}")
            .map(|f| f.render_objects(&[pod]).unwrap_or_default());
        assert_eq!(one.as_deref(), Ok("Pod/a"));
    }
}
