// Registering a set of plugin creators with a TensorRT registry once, and withdrawing them.
// Used by the load-time companion library (static_registration.cpp); TensorRT's own loader needs
// none of this.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>

namespace attn_deploy::trt {

// Register each V3 creator that `registry` does not hold yet (same name, version, namespace) in
// namespace `pluginNamespace`, and remember it. Returns how many were registered.
int32_t registerMissingCreators(nvinfer1::IPluginRegistry& registry,
                                nvinfer1::IPluginCreatorInterface* const* creators, int32_t count,
                                char const* pluginNamespace) noexcept;

// Deregister what registerMissingCreators() registered; returns how many were withdrawn.
int32_t withdrawRegisteredCreators() noexcept;

}  // namespace attn_deploy::trt
