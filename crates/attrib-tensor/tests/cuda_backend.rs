//! libtorch's CUDA backend reaches every binary that resolves a device: after `--device auto`
//! (`DeviceSpec::Auto`), `libtorch_cuda.so` is mapped into the process whenever the linked
//! libtorch ships it — the check that proves on a CPU-only machine what a GPU machine needs.
//! `--device cpu` leaves it out.

use attrib_tensor::device::{libtorch_dir, library_mapped};
use attrib_tensor::{load_cuda_backend, CudaBackend, DeviceSpec};

#[test]
fn auto_loads_the_cuda_backend_when_libtorch_ships_one() {
    assert!(!library_mapped("libtorch_cuda.so"), "nothing asked for CUDA yet, so the backend must not be loaded (the linker drops it)");
    let _ = DeviceSpec::Cpu.resolve().unwrap();
    assert!(!library_mapped("libtorch_cuda.so"), "--device cpu must not load the CUDA backend");
    let dir = libtorch_dir().expect("libtorch_cpu.so is mapped from a file");
    let ships = dir.join("libtorch_cuda.so").exists();
    let choice = DeviceSpec::Auto.choose().unwrap();
    if ships {
        assert!(library_mapped("libtorch_cuda.so"), "auto must load {:?}", dir.join("libtorch_cuda.so"));
        assert_eq!(load_cuda_backend(), &CudaBackend::Loaded(dir.join("libtorch_cuda.so")));
        assert!(choice.reason.starts_with("auto:"), "{choice}");
        if tch::Cuda::is_available() {
            assert_eq!(choice.device, tch::Device::Cuda(0));
        } else {
            assert_eq!(choice.device, tch::Device::Cpu);
            assert!(choice.reason.contains("sees no CUDA device"), "{choice}");
            println!("no CUDA device here: the backend is loaded and auto chose the CPU ({choice})");
        }
    } else {
        assert_eq!(load_cuda_backend(), &CudaBackend::NotShipped);
        assert!(choice.reason.contains("CPU-only"), "{choice}");
        println!("SKIPPED the load check: {dir:?} holds no libtorch_cuda.so (a CPU-only libtorch)");
    }
}
