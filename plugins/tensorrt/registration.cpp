#include "registration.h"

#include <cstdio>

#include "carafe_plugin.h"
#include "criss_cross_plugin.h"
#include "plugin_log.h"
#include "process_tensorrt.h"

#define ATTN_DEPLOY_EXPORT __attribute__((visibility("default")))

namespace attn_deploy::trt {

nvinfer1::IPluginCreatorInterface* const* pluginCreators(int32_t& count) noexcept {
  static CarafePluginCreator carafe;
  static CrissCrossPluginCreator crissCross;
  static nvinfer1::IPluginCreatorInterface* const creators[] = {&carafe, &crissCross};
  count = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
  return creators;
}

std::string tensorrtVersionMismatch() noexcept {
  try {
    int32_t const loaded = loadedTensorRTMajorVersion();
    if (loaded < 0 || loaded == NV_TENSORRT_MAJOR) return {};
    return "libattn_deploy_plugins was built for TensorRT " + std::to_string(NV_TENSORRT_MAJOR) +
           ".x but this process runs TensorRT " + std::to_string(loaded) +
           ".x; its plugins are not offered. Rebuild it against TensorRT " +
           std::to_string(loaded) + " headers (cmake -DTensorRT_INCLUDE_DIR=...)";
  } catch (...) {
    return "libattn_deploy_plugins: could not compare TensorRT versions";
  }
}

}  // namespace attn_deploy::trt

// TensorRT's entry points for plugin shared libraries (see registration.h). On a major-version
// mismatch nothing is offered and the reason goes to stderr: the logger interfaces are the ones
// whose layout changed, so they are not used.
extern "C" ATTN_DEPLOY_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(
    int32_t& nbCreators) {
  std::string const mismatch = attn_deploy::trt::tensorrtVersionMismatch();
  if (!mismatch.empty()) {
    std::fprintf(stderr, "[attn_deploy plugins] ERROR: %s\n", mismatch.c_str());
    nbCreators = 0;
    return nullptr;
  }
  return attn_deploy::trt::pluginCreators(nbCreators);
}

extern "C" ATTN_DEPLOY_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
  if (!attn_deploy::trt::tensorrtVersionMismatch().empty()) return;
  attn_deploy::trt::setPluginLoggerFinder(finder);
}
