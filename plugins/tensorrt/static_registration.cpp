// libattn_deploy_plugins_static.so: registers the plugins of libattn_deploy_plugins.so with the
// process's TensorRT registry when it is loaded, for tools that only dlopen a library (trtexec
// --staticPlugins, Polygraphy --plugins, ctypes.CDLL); it withdraws them when it is unloaded.
// It exports nothing, and needs libattn_deploy_plugins.so beside it (DT_NEEDED, RUNPATH $ORIGIN).
// Set ATTN_DEPLOY_PLUGINS_NO_STATIC_REGISTRATION=1 to load it without registering.
#include <NvInferRuntime.h>

#include <cstdlib>

#include "../core/plugin_fields.h"
#include "process_tensorrt.h"
#include "registry_updates.h"

// The plugin library's entry point; it returns no creators when the loaded TensorRT's major
// version differs from the one it was built for (and says so on stderr).
extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace {

struct LoadTimeRegistration {
  LoadTimeRegistration() noexcept {
    char const* skip = std::getenv("ATTN_DEPLOY_PLUGINS_NO_STATIC_REGISTRATION");
    if (skip != nullptr && skip[0] != '\0' && skip[0] != '0') return;
    nvinfer1::IPluginRegistry* registry = attn_deploy::trt::processPluginRegistry();
    if (registry == nullptr) return;  // no TensorRT loaded: nothing to register with
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = getCreators(count);
    attn_deploy::trt::registerMissingCreators(*registry, creators, count,
                                              attn_deploy::plugin::kPluginNamespace);
  }
  ~LoadTimeRegistration() { attn_deploy::trt::withdrawRegisteredCreators(); }
};

LoadTimeRegistration const gLoadTimeRegistration;

}  // namespace
