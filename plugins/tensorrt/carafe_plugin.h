// TensorRT IPluginV3 plugin "CARAFE" (version 1, namespace attn_deploy).
//   inputs:  features [N, C, H, W], masks [N, G*k*k, s*H, s*W]   (float32 or float16, linear)
//   output:  [N, C, s*H, s*W], the inputs' type
//   fields:  kernel_size (k, odd), group_size (G, divides C), scale_factor (s): int32
#pragma once

#include <string>
#include <vector>

#include "../core/carafe_rules.h"
#include "plugin_creator.h"
#include "plugin_v3_base.h"

namespace attn_deploy::trt {

class CarafePlugin final : public PluginV3Base<CarafePlugin> {
 public:
  static constexpr char const* kName = plugin::kCarafeName;
  static constexpr int32_t kNbInputs = 2;

  explicit CarafePlugin(plugin::CarafeAttributes const& attributes);

  static std::vector<plugin::IntFieldSpec> const& fieldSpecs() { return plugin::carafeFieldSpecs(); }
  static std::vector<std::string> const& inputNames() { return plugin::carafeInputNames(); }
  static CarafePlugin* create(std::vector<plugin::FieldView> const& fields);

  plugin::CarafeAttributes const& attributes() const noexcept { return mAttributes; }

  plugin::ShapeRule outputRule() const { return plugin::carafeOutputRule(mAttributes); }
  void checkInputs(plugin::Shape const* inputs) const;
  std::vector<plugin::FieldView> fieldViews() const { return plugin::carafeFieldsToSerialize(mAttributes); }
  std::string description() const { return plugin::carafeDescription(mAttributes); }
  size_t workspaceSize(plugin::Shape const* /*maxInputs*/) const { return 0; }
  cudaError_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
                     void* const* outputs, void* workspace, cudaStream_t stream) const;

 private:
  plugin::CarafeAttributes mAttributes;
};

using CarafePluginCreator = PluginCreator<CarafePlugin>;

}  // namespace attn_deploy::trt
