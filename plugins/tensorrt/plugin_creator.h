// One IPluginCreatorV3One for each plugin class: the advertised fields are the core's field specs,
// the same list the plugin serializes, and createPlugin parses and validates them for both phases
// (build: the ONNX node's attributes; runtime: the fields getFieldsToSerialize() stored).
//
// The plugin class provides:  static std::vector<plugin::IntFieldSpec> const& fieldSpecs();
//                             static Plugin* create(std::vector<plugin::FieldView> const& fields);
#pragma once

#include <NvInferRuntime.h>

#include <vector>

#include "plugin_log.h"
#include "trt_conversions.h"

namespace attn_deploy::trt {

template <class Plugin>
class PluginCreator : public nvinfer1::IPluginCreatorV3One {
 public:
  PluginCreator() {
    for (auto const& spec : Plugin::fieldSpecs()) {
      mFieldNames.emplace_back(spec.name, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    }
    mFieldCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
    mFieldCollection.fields = mFieldNames.data();
  }

  char const* getPluginName() const noexcept override { return Plugin::kName; }
  char const* getPluginVersion() const noexcept override { return plugin::kPluginVersion; }
  char const* getPluginNamespace() const noexcept override { return plugin::kPluginNamespace; }

  nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override {
    return &mFieldCollection;
  }

  nvinfer1::IPluginV3* createPlugin(char const* /*name*/, nvinfer1::PluginFieldCollection const* fc,
                                    nvinfer1::TensorRTPhase /*phase*/) noexcept override {
    return guarded<nvinfer1::IPluginV3*>(Plugin::kName, "createPlugin", nullptr,
                                         [&] { return Plugin::create(toFieldViews(fc)); });
  }

 private:
  std::vector<nvinfer1::PluginField> mFieldNames;
  nvinfer1::PluginFieldCollection mFieldCollection{};
};

}  // namespace attn_deploy::trt
