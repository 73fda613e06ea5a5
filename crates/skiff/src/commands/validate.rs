//! `skiff validate`: decode, default and validate; exit 0 or 2.

use crate::exit;
use crate::input;
use crate::output::{self, Format};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    manifests: input::Manifests,
    /// Print the defaulted objects instead of a summary line.
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<Format>,
}

pub fn run(args: &Args) -> u8 {
    let Some((objects, pods)) = args.manifests.load_and_prepare() else {
        return exit::BAD_INPUT;
    };
    match args.output {
        None => {
            for obj in &objects {
                println!("{}/{} valid", obj.kind().to_lowercase(), obj.name());
            }
        }
        Some(format) => {
            for pod in &pods {
                match output::render(pod, format) {
                    Ok(text) => {
                        if format == Format::Yaml {
                            print!("---\n{text}");
                        } else {
                            print!("{text}");
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        return exit::FAILURE;
                    }
                }
            }
        }
    }
    0
}
