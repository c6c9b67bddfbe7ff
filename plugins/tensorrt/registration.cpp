#include "registration.h"

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "../core/plugin_fields.h"
#include "carafe_plugin.h"
#include "criss_cross_plugin.h"
#include "plugin_log.h"
#include "process_tensorrt.h"

#define ATTN_DEPLOY_EXPORT __attribute__((visibility("default")))

namespace attn_deploy::trt {

namespace {

struct LoadTimeRegistrations {
  std::mutex mutex;
  nvinfer1::IPluginRegistry* registry = nullptr;
  std::vector<nvinfer1::IPluginCreatorInterface*> creators;
};

LoadTimeRegistrations& loadTimeRegistrations() {
  static LoadTimeRegistrations state;
  return state;
}

// Whether `registry` holds a V3 creator with this identity. Scans the list rather than calling
// getCreator(), which logs an error for a plugin it does not find.
bool isRegistered(nvinfer1::IPluginRegistry& registry, nvinfer1::IPluginCreatorV3One const& mine) {
  int32_t count = 0;
  nvinfer1::IPluginCreatorInterface* const* all = registry.getAllCreators(&count);
  for (int32_t i = 0; all != nullptr && i < count; ++i) {
    if (all[i] == nullptr || std::string(all[i]->getInterfaceInfo().kind) != "PLUGIN CREATOR_V3ONE") {
      continue;
    }
    auto const* other = static_cast<nvinfer1::IPluginCreatorV3One const*>(all[i]);
    if (std::string(other->getPluginName()) == mine.getPluginName() &&
        std::string(other->getPluginVersion()) == mine.getPluginVersion() &&
        std::string(other->getPluginNamespace()) == mine.getPluginNamespace()) {
      return true;
    }
  }
  return false;
}

}  // namespace

nvinfer1::IPluginCreatorInterface* const* pluginCreators(int32_t& count) noexcept {
  static CarafePluginCreator carafe;
  static CrissCrossPluginCreator crissCross;
  static nvinfer1::IPluginCreatorInterface* const creators[] = {&carafe, &crissCross};
  count = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
  return creators;
}

int32_t registerPluginCreators(nvinfer1::IPluginRegistry& registry) noexcept {
  return guarded<int32_t>("attn_deploy plugins", "registerPluginCreators", 0, [&] {
    LoadTimeRegistrations& state = loadTimeRegistrations();
    std::lock_guard<std::mutex> lock(state.mutex);
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* creators = pluginCreators(count);
    int32_t registered = 0;
    for (int32_t i = 0; i < count; ++i) {
      auto* creator = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]);
      std::string const id = std::string(creator->getPluginName()) + " version " +
                             creator->getPluginVersion() + " in namespace " +
                             creator->getPluginNamespace();
      if (isRegistered(registry, *creator)) {
        logMessage(nvinfer1::ILogger::Severity::kVERBOSE,
                   "plugin " + id + " is already registered; not registering it again");
        continue;
      }
      if (!registry.registerCreator(*creators[i], plugin::kPluginNamespace)) {
        logMessage(nvinfer1::ILogger::Severity::kERROR, "could not register plugin " + id);
        continue;
      }
      state.registry = &registry;
      state.creators.push_back(creators[i]);
      ++registered;
    }
    return registered;
  });
}

int32_t withdrawPluginCreators() noexcept {
  return guarded<int32_t>("attn_deploy plugins", "withdrawPluginCreators", 0, [&] {
    LoadTimeRegistrations& state = loadTimeRegistrations();
    std::lock_guard<std::mutex> lock(state.mutex);
    int32_t withdrawn = 0;
    for (auto* creator : state.creators) {
      if (state.registry->deregisterCreator(*creator)) ++withdrawn;
    }
    state.creators.clear();
    state.registry = nullptr;
    return withdrawn;
  });
}

namespace {

// Registers at load time; withdraws on unload so the registry never keeps a creator whose code
// is gone (dlclose while TensorRT stays loaded).
struct LoadTimeRegistration {
  LoadTimeRegistration() noexcept {
    char const* skip = std::getenv("ATTN_DEPLOY_PLUGINS_NO_STATIC_REGISTRATION");
    if (skip != nullptr && skip[0] != '\0' && skip[0] != '0') return;
    if (nvinfer1::IPluginRegistry* registry = processPluginRegistry()) {
      registerPluginCreators(*registry);
    }
  }
  ~LoadTimeRegistration() { withdrawPluginCreators(); }
};

LoadTimeRegistration const gLoadTimeRegistration;

}  // namespace

}  // namespace attn_deploy::trt

// TensorRT's entry points for plugin shared libraries (see registration.h).
extern "C" ATTN_DEPLOY_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(
    int32_t& nbCreators) {
  attn_deploy::trt::withdrawPluginCreators();
  return attn_deploy::trt::pluginCreators(nbCreators);
}

extern "C" ATTN_DEPLOY_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
  attn_deploy::trt::setPluginLoggerFinder(finder);
}
