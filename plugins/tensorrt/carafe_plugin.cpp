#include "carafe_plugin.h"

#include <cuda_fp16.h>

#include "carafe_kernel.h"

namespace attn_deploy::trt {

CarafePlugin::CarafePlugin(plugin::CarafeAttributes const& attributes) : mAttributes(attributes) {
  plugin::validateCarafe(mAttributes);
}

CarafePlugin* CarafePlugin::create(std::vector<plugin::FieldView> const& fields) {
  return new CarafePlugin(plugin::parseCarafeFields(fields));
}

void CarafePlugin::checkInputs(plugin::Shape const* inputs) const {
  plugin::checkCarafeInputs(mAttributes, inputs[0], inputs[1]);
}

cudaError_t CarafePlugin::launch(nvinfer1::PluginTensorDesc const* inputDesc,
                                 void const* const* inputs, void* const* outputs,
                                 void* /*workspace*/, cudaStream_t stream) const {
  nvinfer1::Dims const& f = inputDesc[0].dims;  // checked in onShapeChange: rank 4, int32 sizes
  int const n = static_cast<int>(f.d[0]), c = static_cast<int>(f.d[1]);
  int const h = static_cast<int>(f.d[2]), w = static_cast<int>(f.d[3]);
  if (int64_t(n) * c * h * w == 0) return cudaSuccess;  // empty tensor: nothing to write
  int const k = mAttributes.kernelSize, g = mAttributes.groupSize, s = mAttributes.scaleFactor;
  if (inputDesc[0].type == nvinfer1::DataType::kHALF) {
    return launchCarafe<__half>(static_cast<__half const*>(inputs[0]),
                                static_cast<__half const*>(inputs[1]),
                                static_cast<__half*>(outputs[0]), n, c, h, w, k, g, s, stream);
  }
  return launchCarafe<float>(static_cast<float const*>(inputs[0]),
                             static_cast<float const*>(inputs[1]), static_cast<float*>(outputs[0]),
                             n, c, h, w, k, g, s, stream);
}

}  // namespace attn_deploy::trt
