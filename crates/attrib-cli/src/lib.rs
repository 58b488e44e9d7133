//! `attrib`: explain a model's predictions from the command line.
//!
//! ```text
//! attrib explain --model MODEL.pt --input X.npy --method saliency --target N|argmax|none|T.npy \
//!                --out ATTR.npy [--device auto|cpu|cuda|cuda:N] [--json] [--repeat N]
//! attrib explain-dataset --model MODEL.pt --input DIR|LIST.txt|X.npy --method NAME --out-dir OUT [--shard K/N] [--json]
//! attrib compare --model MODEL.pt --input X.npy|IMAGE|FOLDER --out-dir DIR [--methods a,b,...|--config F]
//! attrib methods [NAME] [--json]
//! attrib attack --model MODEL.pt --input X.npy --method fgsm|pgd --epsilon E --out ADV.npy [--json]
//! attrib metrics --metric infidelity|sensitivity-max --model MODEL.pt --input X.npy --method NAME [--json]
//! ```
//!
//! The command line is a thin shell over the library: flags become a method spec
//! ([`attrib::MethodSpec`]) that the method registry ([`attrib::methods::Registry`]) checks and
//! builds. A binary that registers more methods runs them through every command by calling
//! [`main_with`] with its registry.
//!
//! Errors print one `error: ...` line that says what to fix, and exit with status 1
//! (2 for command-line usage errors). No panic reaches the user.

mod attack;
mod compare;
mod dataset;
mod explain;
mod heatmap;
mod input;
mod list;
mod methods;
mod metrics;
mod outputs;
mod report;
pub mod text;

use attrib::methods::Registry;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Explain the predictions of neural networks.
#[derive(Debug, Parser)]
#[command(name = "attrib", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples:
  attrib methods                                  list every method
  attrib methods integrated-gradients             its parameters and defaults
  attrib explain --model m.pt --input x.npy --method integrated-gradients --steps 64 --out ig.npy
  attrib compare --model m.pt --input x.npy --out-dir report --config methods.toml
  attrib attack --model m.pt --input x.npy --method pgd --epsilon 0.1 --steps 20 --out adv.npy --json
  attrib metrics --metric infidelity --model m.pt --input x.npy --method saliency --samples 100 --json";

#[derive(Debug, Subcommand)]
enum Command {
    /// Attribute a model's prediction to its input features and write the attributions as .npy.
    Explain(explain::ExplainArgs),
    /// Stream a data set (a folder of images, a list file, a large .npy) through a method: one
    /// .npy attribution per item and a summary JSON; sharded (--shard K/N) and resumable.
    #[command(name = "explain-dataset")]
    ExplainDataset(dataset::DatasetArgs),
    /// Several methods over one data set: one explain-dataset run per method with
    /// deletion/insertion metrics, and their means with 95 % intervals side by side.
    #[command(name = "compare-dataset")]
    CompareDataset(dataset::CompareDatasetArgs),
    /// Run several methods on the same model and inputs; write an HTML + JSON report comparing
    /// their time, convergence delta, deletion/insertion areas and agreement.
    Compare(compare::CompareArgs),
    /// List the methods, or one method's parameters and defaults.
    Methods(list::MethodsArgs),
    /// Attack the inputs (FGSM or PGD) and write the adversarial inputs as .npy; `--json` says
    /// the prediction before and after and whether the attack succeeded, per row.
    Attack(attack::AttackArgs),
    /// Score a method's attributions: infidelity or max-sensitivity per row (`--json` for all
    /// the numbers).
    Metrics(metrics::MetricsArgs),
}

/// Run the `attrib` command line with the methods of `registry` (the `attrib` binary passes
/// [`Registry::builtin`]; a binary of another crate may register more methods first).
///
/// As the binary's choice (never the library's default), this tunes process-wide state for
/// chunked work: glibc's allocator keeps chunk-sized blocks in the process, and TorchScript runs
/// on its simple executor instead of re-profiling each new chunk shape.
pub fn main_with(registry: Registry) -> ExitCode {
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
    tune_process();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cli.command {
        Command::Explain(args) => explain::run(args, &registry).map_err(|e| e.to_string()),
        Command::ExplainDataset(args) => dataset::run(args, &registry).map_err(|e| e.to_string()),
        Command::CompareDataset(args) => dataset::run_compare(args, &registry).map_err(|e| e.to_string()),
        Command::Compare(args) => compare::run(args, &registry).map_err(|e| e.to_string()),
        Command::Methods(args) => list::run(args, &registry).map_err(|e| e.to_string()),
        Command::Attack(args) => attack::run(args).map_err(|e| e.to_string()),
        Command::Metrics(args) => metrics::run(args, &registry).map_err(|e| e.to_string()),
    }));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}

/// Whether libtorch's CUDA backend is in the process, for `--json` reports.
pub(crate) fn cuda_backend_json() -> serde_json::Value {
    match attrib::tensor::cuda_backend_state() {
        None => serde_json::json!({ "loaded": false, "reason": "not requested (--device cpu)" }),
        Some(attrib::tensor::CudaBackend::Loaded(p)) => serde_json::json!({ "loaded": true, "path": p }),
        Some(attrib::tensor::CudaBackend::NotShipped) => serde_json::json!({ "loaded": false, "reason": "CPU-only libtorch" }),
        Some(attrib::tensor::CudaBackend::Failed(why)) => serde_json::json!({ "loaded": false, "reason": why }),
    }
}

/// Process-wide settings the binary opts into (see [`main_with`]).
fn tune_process() {
    attrib::tensor::host_alloc::tune();
    let _ = attrib::model::use_simple_executor();
    if let Some(dir) = decision_folder() {
        attrib::tensor::decisions::keep_on_disk(dir);
    }
}

/// Where the evaluator's chunk-variant decisions are kept for later runs
/// (`attrib::tensor::decisions`: the same seeded command gives bit-identical output run to run):
/// `$ATTRIB_CACHE_DIR` (`off` or empty: nowhere), else `$XDG_CACHE_HOME/attrib`, else
/// `$HOME/.cache/attrib`.
fn decision_folder() -> Option<std::path::PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    match std::env::var_os("ATTRIB_CACHE_DIR") {
        Some(v) if v.is_empty() || v == "off" || v == "0" => None,
        Some(v) => Some(v.into()),
        None => var("XDG_CACHE_HOME")
            .map(|d| std::path::PathBuf::from(d).join("attrib"))
            .or_else(|| var("HOME").map(|h| std::path::PathBuf::from(h).join(".cache").join("attrib"))),
    }
}
