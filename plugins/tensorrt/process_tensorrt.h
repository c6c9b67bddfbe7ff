// The TensorRT library already loaded in this process, found at run time.
//
// The plugin library does not link libnvinfer: a library serialized into a version-compatible
// engine must not (the lean runtime that loads it is a different library), and the two entry
// points that load-time registration and logging need, getPluginRegistry() and getLogger(), are
// looked up in whichever libnvinfer the host process (trtexec, Polygraphy, ONNX Runtime, an app)
// has loaded. Nothing here loads TensorRT.
#pragma once

#include <NvInferRuntime.h>

namespace attn_deploy::trt {

// nullptr when no TensorRT runtime with that entry point is loaded.
nvinfer1::IPluginRegistry* processPluginRegistry() noexcept;
nvinfer1::ILogger* processLogger() noexcept;

// getInferLibMajorVersion() of the loaded TensorRT, or -1 when no loaded library exports it.
int32_t loadedTensorRTMajorVersion() noexcept;

}  // namespace attn_deploy::trt
