//! The `attrib` binary: the command line over attrib's built-in methods.

fn main() -> std::process::ExitCode {
    attrib_cli::main_with(attrib::methods::Registry::builtin())
}
