//! `attrib-plus`: attrib's command line with one more method (`channel-max-saliency`). It runs
//! through `explain`, `compare` (also in the default comparison of differentiable models) and
//! `methods`, like a built-in method.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut registry = attrib::methods::Registry::builtin();
    if let Err(e) = attrib_plugin_example::register(&mut registry) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    attrib_cli::main_with(registry)
}
