#include "criss_cross_plugin.h"

#include <cuda_fp16.h>

#include "criss_cross_kernel.h"

namespace attn_deploy::trt {

std::vector<plugin::IntFieldSpec> const& CrissCrossPlugin::fieldSpecs() {
  static std::vector<plugin::IntFieldSpec> const none;
  return none;
}

CrissCrossPlugin* CrissCrossPlugin::create(std::vector<plugin::FieldView> const& fields) {
  plugin::parseCrissCrossFields(fields);
  return new CrissCrossPlugin();
}

void CrissCrossPlugin::checkInputs(plugin::Shape const* inputs) const {
  plugin::checkCrissCrossInputs(inputs[0], inputs[1], inputs[2]);
}

size_t CrissCrossPlugin::workspaceSize(plugin::Shape const* maxInputs) const {
  plugin::Shape const& q = maxInputs[0];
  plugin::Shape const& v = maxInputs[2];
  for (plugin::Shape const* s : {&q, &v}) {
    plugin::requireRank(kName, s == &q ? "query" : "value", *s, 4);
    plugin::requireInt32Dims(kName, s == &q ? "query" : "value", *s);
  }
  // The largest shapes of the profile need the most scratch space (the size is monotone in the
  // dims, and bounded by the library's budget: the kernels tile the batch beyond it).
  return crissCrossAttentionWorkspaceSize(static_cast<int>(q.d[0]), static_cast<int>(q.d[1]),
                                          static_cast<int>(v.d[1]), static_cast<int>(q.d[2]),
                                          static_cast<int>(q.d[3]));
}

cudaError_t CrissCrossPlugin::launch(nvinfer1::PluginTensorDesc const* inputDesc,
                                     void const* const* inputs, void* const* outputs,
                                     void* workspace, cudaStream_t stream) const {
  nvinfer1::Dims const& q = inputDesc[0].dims;  // checked in onShapeChange
  nvinfer1::Dims const& v = inputDesc[2].dims;
  int const n = static_cast<int>(q.d[0]), cq = static_cast<int>(q.d[1]);
  int const h = static_cast<int>(q.d[2]), w = static_cast<int>(q.d[3]);
  int const c = static_cast<int>(v.d[1]);
  if (int64_t(n) * c * h * w == 0) return cudaSuccess;  // empty output: nothing to write
  // enqueue is not told the workspace size: recompute it for these shapes, which gives at most
  // what getWorkspaceSize reserved for the profile's largest (same budget, monotone size).
  size_t const workspaceBytes = crissCrossAttentionWorkspaceSize(n, cq, c, h, w);
  if (inputDesc[0].type == nvinfer1::DataType::kHALF) {
    return launchCrissCrossAttention<__half>(
        static_cast<__half const*>(inputs[0]), static_cast<__half const*>(inputs[1]),
        static_cast<__half const*>(inputs[2]), static_cast<__half*>(outputs[0]), n, cq, c, h, w,
        workspace, workspaceBytes, stream);
  }
  return launchCrissCrossAttention<float>(
      static_cast<float const*>(inputs[0]), static_cast<float const*>(inputs[1]),
      static_cast<float const*>(inputs[2]), static_cast<float*>(outputs[0]), n, cq, c, h, w,
      workspace, workspaceBytes, stream);
}

}  // namespace attn_deploy::trt
