// Autocast regions for attrib-core's reduced-precision mode (`Precision`): the C++ calls behind
// PyTorch's `torch.autocast`, which tch does not expose, with a plain C interface. The state is
// thread-local in libtorch; a region saves the previous state and restores it on exit, as
// `torch.autocast`'s context manager does (the cast cache is cleared when the outermost region
// ends).
#include <ATen/autocast_mode.h>

extern "C" {

// Enter a region on `device_type` (0: CPU, 1: CUDA) with `dtype` (0: bfloat16, 1: float16).
// `saved` receives the previous state (enabled, dtype) for attrib_autocast_exit. Returns 0, or
// -1 for an unknown device type or dtype (nothing changed).
int attrib_autocast_enter(int device_type, int dtype, int *saved_enabled, int *saved_dtype) {
  at::DeviceType dev;
  if (device_type == 0) dev = at::kCPU;
  else if (device_type == 1) dev = at::kCUDA;
  else return -1;
  at::ScalarType st;
  if (dtype == 0) st = at::kBFloat16;
  else if (dtype == 1) st = at::kHalf;
  else return -1;
  try {
    *saved_enabled = at::autocast::is_autocast_enabled(dev) ? 1 : 0;
    *saved_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dev));
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::set_autocast_dtype(dev, st);
    at::autocast::increment_nesting();
  } catch (...) {
    return -1;
  }
  return 0;
}

// Leave a region entered with attrib_autocast_enter, restoring the saved state.
void attrib_autocast_exit(int device_type, int saved_enabled, int saved_dtype) {
  at::DeviceType dev = device_type == 1 ? at::kCUDA : at::kCPU;
  try {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(dev, saved_enabled != 0);
    at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(saved_dtype));
  } catch (...) {
  }
}

// Whether autocast is enabled on `device_type` (0: CPU, 1: CUDA) in this thread.
int attrib_autocast_enabled(int device_type) {
  try {
    return at::autocast::is_autocast_enabled(device_type == 1 ? at::kCUDA : at::kCPU) ? 1 : 0;
  } catch (...) {
    return 0;
  }
}
}
