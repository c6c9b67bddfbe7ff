#include "process_tensorrt.h"

#include <dlfcn.h>

#include <string>

namespace attn_deploy::trt {

namespace {

// Search the global scope first (an app linked against libnvinfer), then the TensorRT libraries
// that may be loaded with RTLD_LOCAL (Python extension modules load them that way): RTLD_NOLOAD
// returns a handle only for a library that is already loaded.
void* findSymbol(char const* name) noexcept {
  if (void* sym = dlsym(RTLD_DEFAULT, name)) return sym;
  std::string const major = std::to_string(NV_TENSORRT_MAJOR);
  for (char const* base : {"libnvinfer.so.", "libnvinfer_lean.so.", "libnvinfer_dispatch.so."}) {
    std::string const soname = base + major;
    void* handle = dlopen(soname.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) continue;
    void* sym = dlsym(handle, name);
    dlclose(handle);  // drops the reference RTLD_NOLOAD added; the library stays loaded
    if (sym != nullptr) return sym;
  }
  return nullptr;
}

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

}  // namespace attn_deploy::trt
