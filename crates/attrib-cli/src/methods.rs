//! The methods the CLI knows, built from the command-line flags.

use crate::explain::ExplainArgs;
use attrib::gradient::Saliency;
use attrib::{AttribError, Attribution, BatchOptions, Result};

/// Names accepted by `--method`.
pub const METHODS: &[&str] = &["saliency"];

/// Build the method named on the command line, with its parameters checked.
pub fn build(args: &ExplainArgs) -> Result<Box<dyn Attribution>> {
    let batch = BatchOptions { max_batch: args.max_batch, memory_budget: args.memory_budget_mb.map(|mb| mb << 20) };
    match args.method.as_str() {
        "saliency" => Ok(Box::new(Saliency::params().abs(args.abs).batch(batch).check()?)),
        other => Err(AttribError::param(
            "method",
            format!("unknown method `{other}`; available: {}", METHODS.join(", ")),
        )),
    }
}
