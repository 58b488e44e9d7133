//! Compiles `cpp/frozen.cpp` (frozen, inference-optimised TorchScript modules) and
//! `cpp/autocast.cpp` (autocast regions of the reduced-precision mode) and `cpp/rules.cpp` (backward
//! rules by graph rewriting: DeepLIFT, guided backprop, deconvolution; `cpp/rule_kernels.cpp`: their fused
//! rescale and max-pool kernels, built with the same flags; `cpp/lrp_rules.cpp`: LRP's epsilon rule) and `cpp/layers.cpp` (a
//! layer's output as an extra result or input of forward, for layer attribution) and `cpp/layer_rules.cpp` (both at once: a layer exposed in a graph with
//! backward rules, for LayerDeepLift) and `cpp/attack_step.cpp` (one FGSM/PGD step in a single
//! pass over the elements, for attrib-robust) against the
//! libtorch that torch-sys found (`DEP_TCH_LIBTORCH_LIB`: the torch wheel's `lib/` folder in the
//! project's virtual environment).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp/frozen.cpp");
    println!("cargo:rerun-if-changed=cpp/load_bytes.h");
    println!("cargo:rerun-if-changed=cpp/autocast.cpp");
    println!("cargo:rerun-if-changed=cpp/rules.cpp");
    println!("cargo:rerun-if-changed=cpp/rule_kernels.cpp");
    println!("cargo:rerun-if-changed=cpp/rule_kernels.h");
    println!("cargo:rerun-if-changed=cpp/lrp_rules.cpp");
    println!("cargo:rerun-if-changed=cpp/layers.cpp");
    println!("cargo:rerun-if-changed=cpp/layer_rules.cpp");
    println!("cargo:rerun-if-changed=cpp/attack_step.cpp");
    let lib = match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib) => PathBuf::from(lib),
        Err(_) => panic!("torch-sys did not report where libtorch is (DEP_TCH_LIBTORCH_LIB); build with LIBTORCH_USE_PYTORCH=1 and the project venv's python on PATH"),
    };
    let torch = lib.parent().expect("libtorch's lib folder has a parent").to_path_buf();
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(torch.join("include"))
        .include(torch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        // PyTorch 2.11 wheels (the libtorch tch 0.24 pairs with) use the C++11 ABI.
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("cpp/frozen.cpp")
        .file("cpp/autocast.cpp")
        .file("cpp/rules.cpp")
        .file("cpp/rule_kernels.cpp")
        .file("cpp/lrp_rules.cpp")
        .file("cpp/layers.cpp")
        .file("cpp/layer_rules.cpp")
        .file("cpp/attack_step.cpp")
        .compile("attrib_frozen");
}
