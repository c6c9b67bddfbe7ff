#include "process_tensorrt.h"

#include <dlfcn.h>

#include <string>

namespace attn_deploy::trt {

namespace {

// Search the global scope first (an app linked against libnvinfer), then the TensorRT libraries
// that may be loaded with RTLD_LOCAL (Python extension modules load them that way): RTLD_NOLOAD
// returns a handle only for a library that is already loaded. `major` picks the sonames; the
// version probe also looks at the majors this build was not made for, to recognise them.
void* findSymbol(char const* name, int major) noexcept {
  if (void* sym = dlsym(RTLD_DEFAULT, name)) return sym;
  std::string const suffix = std::to_string(major);
  for (char const* base : {"libnvinfer.so.", "libnvinfer_lean.so.", "libnvinfer_dispatch.so."}) {
    std::string const soname = base + suffix;
    void* handle = dlopen(soname.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) continue;
    void* sym = dlsym(handle, name);
    dlclose(handle);  // drops the reference RTLD_NOLOAD added; the library stays loaded
    if (sym != nullptr) return sym;
  }
  return nullptr;
}

void* findSymbol(char const* name) noexcept { return findSymbol(name, NV_TENSORRT_MAJOR); }

}  // namespace

nvinfer1::IPluginRegistry* processPluginRegistry() noexcept {
  using Fn = nvinfer1::IPluginRegistry* (*)() noexcept;
  auto fn = reinterpret_cast<Fn>(findSymbol("getPluginRegistry"));
  return fn != nullptr ? fn() : nullptr;
}

nvinfer1::ILogger* processLogger() noexcept {
  using Fn = nvinfer1::ILogger* (*)() noexcept;
  auto fn = reinterpret_cast<Fn>(findSymbol("getLogger"));
  return fn != nullptr ? fn() : nullptr;
}

int32_t loadedTensorRTMajorVersion() noexcept {
  using Fn = int32_t (*)() noexcept;
  for (int major : {NV_TENSORRT_MAJOR, 10, 11, 12}) {
    if (auto fn = reinterpret_cast<Fn>(findSymbol("getInferLibMajorVersion", major))) return fn();
  }
  return -1;
}

}  // namespace attn_deploy::trt
