// How the library's plugin creators reach a TensorRT plugin registry.
//
// libattn_deploy_plugins.so has no load-time side effects: it exports TensorRT's plugin-library
// entry points getCreators() / setLoggerFinder() and nothing else, and TensorRT registers what
// getCreators() returns (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins, libraries
// serialized into version-compatible engines, attn_deploy's own engine builder). Tools that only
// dlopen a library and expect it to register itself (trtexec --staticPlugins, Polygraphy
// --plugins, ctypes) take the small companion libattn_deploy_plugins_static.so, which registers
// these same creators from its load-time constructor (static_registration.cpp). Keeping the two
// apart means no registry call ever runs from a constructor while loadLibrary() is loading us.
//
// Both paths first check that the TensorRT loaded in the process has the major version this
// library was compiled for: IPluginV3 and ILoggerFinder changed layout between 10 and 11, so a
// mismatched library would call the wrong virtual functions.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>

namespace attn_deploy::trt {

// The library's creators (CARAFE, CrissCrossAttention); they live as long as the library.
nvinfer1::IPluginCreatorInterface* const* pluginCreators(int32_t& count) noexcept;

// Empty when the loaded TensorRT's major version is the one compiled for (or no TensorRT is
// loaded to ask); otherwise the message saying what was found and what to do.
std::string tensorrtVersionMismatch() noexcept;

}  // namespace attn_deploy::trt
