// Loads the built libattn_deploy_plugins.so the way trtexec and Polygraphy do (dlopen), in a
// process without TensorRT, and checks what the library shows to the outside: TensorRT's two
// plugin-library entry points and nothing of its internals.
//   usage: test_library_exports /path/to/libattn_deploy_plugins.so
#include <NvInferRuntime.h>
#include <dlfcn.h>

#include <cstring>

#include "check.h"

namespace {
char const* gLibraryPath = nullptr;
}

TEST(library_loads_without_tensorrt_and_exports_the_entry_points) {
  void* handle = dlopen(gLibraryPath, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    check::fail(__FILE__, __LINE__, std::string("dlopen failed: ") + dlerror());
    return;
  }
  using GetCreators = nvinfer1::IPluginCreatorInterface* const* (*)(int32_t&);
  auto getCreators = reinterpret_cast<GetCreators>(dlsym(handle, "getCreators"));
  CHECK(getCreators != nullptr);
  CHECK(dlsym(handle, "setLoggerFinder") != nullptr);
  // Internals stay hidden (version script + hidden visibility), the static CUDA runtime included.
  CHECK(dlsym(handle, "_ZN11attn_deploy3trt14pluginCreatorsERi") == nullptr);
  CHECK(dlsym(handle, "cudaLaunchKernel") == nullptr);
  CHECK(dlsym(handle, "getPluginCreators") == nullptr);  // the deprecated IPluginV2 entry point
  if (getCreators != nullptr) {
    int32_t n = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = getCreators(n);
    CHECK_EQ(n, 2);
    char const* const expected[] = {"CARAFE", "CrissCrossAttention"};
    for (int32_t i = 0; i < n && i < 2; ++i) {
      auto* c = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]);
      CHECK_STR_EQ(c->getPluginName(), expected[i]);
      CHECK_STR_EQ(c->getPluginNamespace(), "attn_deploy");
    }
  }
  CHECK(dlclose(handle) == 0);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s LIBRARY\n", argv[0]);
    return 2;
  }
  gLibraryPath = argv[1];
  return check::runAll();
}
