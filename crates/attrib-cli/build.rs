//! Bakes the absolute path of libtorch's `lib/` folder into the `attrib` binary's rpath, so that
//! an installed copy (`cargo install --path crates/attrib-cli`, e.g. `~/.cargo/bin/attrib`) finds
//! libtorch without `LD_LIBRARY_PATH`. The relative rpath from `.cargo/config.toml`
//! (`$ORIGIN/../../.libtorch`) only holds for binaries under `target/{debug,release}`.
//!
//! The folder is the one torch-sys found (`DEP_TCH_LIBTORCH_LIB`, as in attrib-core's build
//! script): with `LIBTORCH_USE_PYTORCH=1`, the torch wheel's `lib/` in the project venv.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib) => lib,
        Err(_) => panic!("torch-sys did not report where libtorch is (DEP_TCH_LIBTORCH_LIB); build with LIBTORCH_USE_PYTORCH=1 and the project venv's python on PATH"),
    };
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| lib.into());
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", lib.display());
}
