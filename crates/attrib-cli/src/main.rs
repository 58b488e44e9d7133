//! `attrib`: explain a model's predictions from the command line.
//!
//! ```text
//! attrib explain --model MODEL.pt --input X.npy --method saliency --target N|argmax|none|T.npy \
//!                --out ATTR.npy [--device auto|cpu|cuda|cuda:N] [--json]
//! attrib compare --model MODEL.pt --input X.npy|IMAGE|FOLDER --out-dir DIR [--methods a,b,...]
//! ```
//!
//! Errors print one `error: ...` line that says what to fix, and exit with status 1
//! (2 for command-line usage errors). No panic reaches the user.

mod compare;
mod explain;
mod heatmap;
mod input;
mod methods;
mod report;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Explain the predictions of neural networks.
#[derive(Debug, Parser)]
#[command(name = "attrib", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attribute a model's prediction to its input features and write the attributions as .npy.
    Explain(explain::ExplainArgs),
    /// Run several methods on the same model and inputs; write an HTML + JSON report comparing
    /// their time, convergence delta, deletion/insertion areas and agreement.
    Compare(compare::CompareArgs),
}

fn main() -> ExitCode {
    // A bug must still read as an error, not a crash dump.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown".into());
        let first = msg.lines().next().unwrap_or("").to_string();
        eprintln!("error: internal failure: {first}");
    }));
    let cli = Cli::parse();
    let result = std::panic::catch_unwind(|| match cli.command {
        Command::Explain(args) => explain::run(args).map_err(|e| e.to_string()),
        Command::Compare(args) => compare::run(args).map_err(|e| e.to_string()),
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}
