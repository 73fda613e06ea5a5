//! `skiff validate`: decode, default and validate; exit 0 or 2.

use crate::exit;
use crate::input;
use crate::output::OutputFormat;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    manifests: input::Manifests,
    /// Print the objects instead of a line each: json, yaml, name, jsonpath=TEMPLATE or
    /// jsonpath-file=FILE. One object prints as itself, several as a `List` (as kubectl).
    /// Pods (and workloads' pod templates) are printed defaulted.
    #[arg(short = 'o', long = "output", value_parser = OutputFormat::parse)]
    output: Option<OutputFormat>,
}

pub fn run(args: &Args) -> u8 {
    if let Some(Err(e)) = args
        .output
        .as_ref()
        .map(|f| f.ensure(&["json", "yaml", "name", "jsonpath"]))
    {
        eprintln!("error: {e}");
        return exit::BAD_INPUT;
    }
    let Some(prepared) = args.manifests.load_prepared() else {
        return exit::BAD_INPUT;
    };
    match &args.output {
        None => {
            for item in &prepared.items {
                println!("{}", input::valid_line(&item.object));
            }
        }
        Some(format) => match format.render_objects(&prepared.outputs) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("error: {e:#}");
                return exit::FAILURE;
            }
        },
    }
    0
}
