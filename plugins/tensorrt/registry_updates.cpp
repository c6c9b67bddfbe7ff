#include "registry_updates.h"

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "plugin_log.h"

namespace attn_deploy::trt {

namespace {

struct Registrations {
  std::mutex mutex;
  nvinfer1::IPluginRegistry* registry = nullptr;
  std::vector<nvinfer1::IPluginCreatorInterface*> creators;
};

Registrations& registrations() {
  static Registrations state;
  return state;
}

// Other libraries' creators may return null strings: compare them as absent, never dereference.
bool sameText(char const* a, char const* b) noexcept {
  return a != nullptr && b != nullptr && std::strcmp(a, b) == 0;
}

bool isV3One(nvinfer1::IPluginCreatorInterface const* creator) noexcept {
  return creator != nullptr && sameText(creator->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE");
}

// Whether `registry` holds a V3 creator with this identity. Scans the list rather than calling
// getCreator(), which logs an error for a plugin it does not find.
bool isRegistered(nvinfer1::IPluginRegistry& registry, nvinfer1::IPluginCreatorV3One const& mine,
                  char const* pluginNamespace) noexcept {
  int32_t count = 0;
  nvinfer1::IPluginCreatorInterface* const* all = registry.getAllCreators(&count);
  for (int32_t i = 0; all != nullptr && i < count; ++i) {
    if (!isV3One(all[i])) continue;
    auto const* other = static_cast<nvinfer1::IPluginCreatorV3One const*>(all[i]);
    if (sameText(other->getPluginName(), mine.getPluginName()) &&
        sameText(other->getPluginVersion(), mine.getPluginVersion()) &&
        sameText(other->getPluginNamespace(), pluginNamespace)) {
      return true;
    }
  }
  return false;
}

}  // namespace

int32_t registerMissingCreators(nvinfer1::IPluginRegistry& registry,
                                nvinfer1::IPluginCreatorInterface* const* creators, int32_t count,
                                char const* pluginNamespace) noexcept {
  return guarded<int32_t>("attn_deploy plugins", "registerMissingCreators", 0, [&] {
    Registrations& state = registrations();
    std::lock_guard<std::mutex> lock(state.mutex);
    int32_t registered = 0;
    for (int32_t i = 0; creators != nullptr && i < count; ++i) {
      if (!isV3One(creators[i])) continue;
      auto* creator = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]);
      std::string const id = std::string(creator->getPluginName()) + " version " +
                             creator->getPluginVersion() + " in namespace " + pluginNamespace;
      if (isRegistered(registry, *creator, pluginNamespace)) {
        logMessage(nvinfer1::ILogger::Severity::kVERBOSE,
                   "plugin " + id + " is already registered; not registering it again");
        continue;
      }
      if (!registry.registerCreator(*creators[i], pluginNamespace)) {
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

int32_t withdrawRegisteredCreators() noexcept {
  return guarded<int32_t>("attn_deploy plugins", "withdrawRegisteredCreators", 0, [&] {
    Registrations& state = registrations();
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

}  // namespace attn_deploy::trt
