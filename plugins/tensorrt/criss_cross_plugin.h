// TensorRT IPluginV3 plugin "CrissCrossAttention" (version 1, namespace attn_deploy).
//   inputs:  query [N, Cq, H, W], key [N, Cq, H, W], value [N, C, H, W]  (float32 or float16, linear)
//   output:  [N, C, H, W], the inputs' type
//   fields:  none
#pragma once

#include <string>
#include <vector>

#include "../core/criss_cross_rules.h"
#include "plugin_creator.h"
#include "plugin_v3_base.h"

namespace attn_deploy::trt {

class CrissCrossPlugin final : public PluginV3Base<CrissCrossPlugin> {
 public:
  static constexpr char const* kName = plugin::kCrissCrossName;
  static constexpr int32_t kNbInputs = 3;

  CrissCrossPlugin() = default;

  static std::vector<plugin::IntFieldSpec> const& fieldSpecs();
  static std::vector<std::string> const& inputNames() { return plugin::crissCrossInputNames(); }
  static CrissCrossPlugin* create(std::vector<plugin::FieldView> const& fields);

  plugin::ShapeRule outputRule() const { return plugin::crissCrossOutputRule(); }
  void checkInputs(plugin::Shape const* inputs) const;
  std::vector<plugin::FieldView> fieldViews() const { return {}; }
  std::string description() const { return "criss_cross_attention"; }
  size_t workspaceSize(plugin::Shape const* maxInputs) const;
  cudaError_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
                     void* const* outputs, void* workspace, cudaStream_t stream) const;
};

using CrissCrossPluginCreator = PluginCreator<CrissCrossPlugin>;

}  // namespace attn_deploy::trt
