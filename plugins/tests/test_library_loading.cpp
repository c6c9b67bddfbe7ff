// Loads the two built libraries the way TensorRT's tools do, in a process that plays TensorRT:
// it exports getPluginRegistry() and getInferLibMajorVersion() (ENABLE_EXPORTS), as libnvinfer
// does, so the libraries find this fake registry and version at run time.
//   usage: test_library_loading libattn_deploy_plugins.so libattn_deploy_plugins_static.so
// Checked: loading the plugin library registers nothing (TensorRT's loader registers what
// getCreators() returns); loading the companion registers both creators once and unloading it
// withdraws them; under a TensorRT of another major version neither offers a creator.
#include <NvInferRuntime.h>
#include <dlfcn.h>

#include <string>

#include "check.h"
#include "fake_tensorrt.h"

namespace {
char const* gPluginLibrary = nullptr;
char const* gStaticLibrary = nullptr;
fake::Registry gRegistry;
int32_t gMajor = NV_TENSORRT_MAJOR;

using GetCreators = nvinfer1::IPluginCreatorInterface* const* (*)(int32_t&);

int32_t creatorsIn(char const* pluginNamespace) {
  int32_t n = 0;
  for (size_t i = 0; i < gRegistry.namespaces.size(); ++i) {
    if (gRegistry.namespaces[i] == pluginNamespace) ++n;
  }
  return n;
}
}  // namespace

extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginRegistry* getPluginRegistry() noexcept {
  return &gRegistry;
}
extern "C" __attribute__((visibility("default"))) int32_t getInferLibMajorVersion() noexcept {
  return gMajor;
}

TEST(plugin_library_registers_nothing_when_loaded) {
  gMajor = NV_TENSORRT_MAJOR;
  void* handle = dlopen(gPluginLibrary, RTLD_NOW | RTLD_LOCAL);
  CHECK(handle != nullptr);
  if (handle == nullptr) return;
  CHECK_EQ(gRegistry.creators.size(), size_t{0});
  auto getCreators = reinterpret_cast<GetCreators>(dlsym(handle, "getCreators"));
  CHECK(getCreators != nullptr);
  int32_t n = -1;
  CHECK(getCreators != nullptr && getCreators(n) != nullptr);
  CHECK_EQ(n, 2);
  CHECK_EQ(gRegistry.creators.size(), size_t{0});  // offering is not registering
  dlclose(handle);
}

TEST(static_companion_registers_once_and_withdraws_on_unload) {
  gMajor = NV_TENSORRT_MAJOR;
  fake::NullStringCreator other;  // another library's creator with null strings
  gRegistry.registerCreator(other, "other");
  void* handle = dlopen(gStaticLibrary, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    check::fail(__FILE__, __LINE__, std::string("dlopen failed: ") + dlerror());
    return;
  }
  CHECK_EQ(creatorsIn("attn_deploy"), 2);
  // (That it exports nothing of its own is checked by static_library_links.)
  CHECK(dlclose(handle) == 0);
  CHECK_EQ(creatorsIn("attn_deploy"), 0);
  CHECK_EQ(creatorsIn("other"), 1);
  gRegistry.deregisterCreator(other);
}

TEST(another_tensorrt_major_version_gets_no_creators) {
  gMajor = NV_TENSORRT_MAJOR + 1;
  void* plugins = dlopen(gPluginLibrary, RTLD_NOW | RTLD_LOCAL);
  CHECK(plugins != nullptr);
  if (plugins != nullptr) {
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(plugins, "getCreators"));
    int32_t n = -1;
    CHECK(getCreators != nullptr && getCreators(n) == nullptr);
    CHECK_EQ(n, 0);
  }
  void* companion = dlopen(gStaticLibrary, RTLD_NOW | RTLD_LOCAL);
  CHECK(companion != nullptr);
  CHECK_EQ(gRegistry.creators.size(), size_t{0});
  if (companion != nullptr) dlclose(companion);
  if (plugins != nullptr) dlclose(plugins);
  gMajor = NV_TENSORRT_MAJOR;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s PLUGIN_LIBRARY STATIC_LIBRARY\n", argv[0]);
    return 2;
  }
  gPluginLibrary = argv[1];
  gStaticLibrary = argv[2];
  return check::runAll();
}
