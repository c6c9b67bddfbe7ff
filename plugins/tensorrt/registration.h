// How the library's plugin creators reach a TensorRT plugin registry, both ways, once.
//
// 1. Load-time ("static") registration: when the library is loaded (dlopen by trtexec
//    --staticPlugins, Polygraphy --plugins, ONNX Runtime's trt_extra_plugin_lib_paths, ctypes) it
//    registers its creators with the process's TensorRT registry, if TensorRT is loaded and the
//    creators are not there yet. Set ATTN_DEPLOY_PLUGINS_NO_STATIC_REGISTRATION=1 to skip this.
// 2. TensorRT's plugin-library entry points getCreators() / setLoggerFinder()
//    (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, libraries serialized into
//    version-compatible engines): TensorRT registers what getCreators() returns. Since dlopen ran
//    step 1 first, getCreators() first withdraws the load-time registrations from the registry it
//    made them in, so the creators end up registered once, owned by TensorRT's loader (which
//    rejects a library whose creators already exist).
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>

namespace attn_deploy::trt {

// The library's creators (CARAFE, CrissCrossAttention); they live as long as the library.
nvinfer1::IPluginCreatorInterface* const* pluginCreators(int32_t& count) noexcept;

// Register the creators missing from `registry` (namespace attn_deploy) and remember them.
// Returns how many were registered.
int32_t registerPluginCreators(nvinfer1::IPluginRegistry& registry) noexcept;

// Deregister what registerPluginCreators() registered; returns how many were withdrawn.
int32_t withdrawPluginCreators() noexcept;

}  // namespace attn_deploy::trt
