// The IPluginV3 plumbing both plugins share (TensorRT 10 and 11 have the same V3One interfaces).
//
// A plugin class derives from PluginV3Base<Itself> and provides, from the core rules:
//   static constexpr char const* kName;        static constexpr int32_t kNbInputs;
//   static std::vector<std::string> const& inputNames();
//   plugin::ShapeRule outputRule() const;
//   void checkInputs(plugin::Shape const* inputs) const;        // throws PluginInputError
//   std::vector<plugin::FieldView> fieldViews() const;           // fields to serialize
//   std::string description() const;                             // metadata / timing-cache id
//   size_t workspaceSize(plugin::Shape const* maxInputs) const;
//   cudaError_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs,
//                      void* const* outputs, void* workspace, cudaStream_t stream) const;
// Every TensorRT entry point catches, logs and returns an error value (plugin_log.h).
#pragma once

#include <NvInferRuntime.h>

#include <string>
#include <vector>

#include "../core/plugin_fields.h"
#include "../core/tensor_rules.h"
#include "plugin_log.h"
#include "trt_conversions.h"

namespace attn_deploy::trt {

template <class Derived>
class PluginV3Base : public nvinfer1::IPluginV3,
                     public nvinfer1::IPluginV3OneCore,
                     public nvinfer1::IPluginV3OneBuild,
                     public nvinfer1::IPluginV3OneRuntime {
 public:
  // IPluginV3
  nvinfer1::IPluginCapability* getCapabilityInterface(
      nvinfer1::PluginCapabilityType type) noexcept override {
    switch (type) {
      case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
      case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
      case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
  }

  nvinfer1::IPluginV3* clone() noexcept override {
    return guarded<nvinfer1::IPluginV3*>(Derived::kName, "clone", nullptr,
                                         [&] { return new Derived(self()); });
  }

  // IPluginV3OneCore
  char const* getPluginName() const noexcept override { return Derived::kName; }
  char const* getPluginVersion() const noexcept override { return plugin::kPluginVersion; }
  char const* getPluginNamespace() const noexcept override { return plugin::kPluginNamespace; }

  // IPluginV3OneBuild
  int32_t getNbOutputs() const noexcept override { return 1; }

  int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                          nvinfer1::DynamicPluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override {
    return guarded<int32_t>(Derived::kName, "configurePlugin", -1, [&] {
      requireCounts(nbInputs, nbOutputs, in != nullptr && out != nullptr);
      std::vector<plugin::Shape> shapes(nbInputs);
      for (int32_t i = 0; i < nbInputs; ++i) shapes[i] = toShape(in[i].desc.dims);
      self().checkInputs(shapes.data());
      return 0;
    });
  }

  int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                             nvinfer1::DataType const* inputTypes,
                             int32_t nbInputs) const noexcept override {
    return guarded<int32_t>(Derived::kName, "getOutputDataTypes", -1, [&] {
      requireCounts(nbInputs, nbOutputs, outputTypes != nullptr && inputTypes != nullptr);
      std::vector<plugin::ElementType> types(nbInputs);
      for (int32_t i = 0; i < nbInputs; ++i) types[i] = toElementType(inputTypes[i]);
      plugin::outputElementType(Derived::kName, Derived::inputNames(), types.data(), nbInputs);
      outputTypes[0] = inputTypes[0];  // the output type follows the inputs' (strong typing)
      return 0;
    });
  }

  int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                          nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                          nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                          nvinfer1::IExprBuilder& exprBuilder) noexcept override {
    return guarded<int32_t>(Derived::kName, "getOutputShapes", -1, [&] {
      requireCounts(nbInputs, nbOutputs, inputs != nullptr && outputs != nullptr);
      std::vector<plugin::Shape> known(nbInputs);
      for (int32_t i = 0; i < nbInputs; ++i) known[i] = toShape(inputs[i]);
      self().checkInputs(known.data());  // fails early on sizes fixed in the network
      plugin::ShapeRule const rule = self().outputRule();
      outputs[0].nbDims = static_cast<int32_t>(rule.size());
      for (size_t i = 0; i < rule.size(); ++i) {
        nvinfer1::IDimensionExpr const* e = inputs[rule[i].input].d[rule[i].axis];
        if (e != nullptr && rule[i].scale != 1) {
          nvinfer1::IDimensionExpr const* scale = exprBuilder.constant(rule[i].scale);
          e = scale == nullptr
                  ? nullptr
                  : exprBuilder.operation(nvinfer1::DimensionOperation::kPROD, *e, *scale);
        }
        if (e == nullptr) throw std::runtime_error("no dimension expression (input or IExprBuilder)");
        outputs[0].d[i] = e;
      }
      return 0;
    });
  }

  bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
                                 int32_t nbInputs, int32_t nbOutputs) noexcept override {
    return guarded<bool>(Derived::kName, "supportsFormatCombination", false, [&] {
      requireCounts(nbInputs, nbOutputs, inOut != nullptr);
      if (pos < 0 || pos >= nbInputs + nbOutputs) return false;
      // Only positions 0..pos are valid in inOut (TensorRT's contract).
      std::vector<plugin::TensorFormatDesc> formats(pos + 1);
      for (int32_t i = 0; i <= pos; ++i) {
        formats[i] = {toElementType(inOut[i].desc.type), toLayout(inOut[i].desc.format)};
      }
      return plugin::supportsFormatCombination(pos, formats.data(), nbInputs, nbOutputs);
    });
  }

  size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                          nvinfer1::DynamicPluginTensorDesc const* outputs,
                          int32_t nbOutputs) const noexcept override {
    // No failure value exists for a size; a bad call asks for nothing and configure reports it.
    return guarded<size_t>(Derived::kName, "getWorkspaceSize", 0, [&] {
      requireCounts(nbInputs, nbOutputs, inputs != nullptr && outputs != nullptr);
      std::vector<plugin::Shape> maxShapes(nbInputs);
      for (int32_t i = 0; i < nbInputs; ++i) maxShapes[i] = toShape(inputs[i].max);
      return self().workspaceSize(maxShapes.data());
    });
  }

  char const* getTimingCacheID() noexcept override { return describe(); }
  char const* getMetadataString() noexcept override { return describe(); }

  // IPluginV3OneRuntime
  int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override {
    return guarded<int32_t>(Derived::kName, "onShapeChange", -1, [&] {
      requireCounts(nbInputs, nbOutputs, in != nullptr && out != nullptr);
      std::vector<plugin::Shape> shapes(nbInputs);
      for (int32_t i = 0; i < nbInputs; ++i) shapes[i] = toShape(in[i].dims);
      self().checkInputs(shapes.data());
      plugin::Shape const expected = plugin::applyShapeRule(self().outputRule(), shapes.data(), nbInputs);
      if (!(toShape(out[0].dims) == expected)) {
        throw std::runtime_error("output shape " + plugin::shapeToString(toShape(out[0].dims)) +
                                 " differs from the rule's " + plugin::shapeToString(expected));
      }
      return 0;
    });
  }

  int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
                  nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs,
                  void* const* outputs, void* workspace, cudaStream_t stream) noexcept override {
    return guarded<int32_t>(Derived::kName, "enqueue", -1, [&] {
      if (inputDesc == nullptr || outputDesc == nullptr || inputs == nullptr || outputs == nullptr) {
        throw std::runtime_error("enqueue called without tensors");
      }
      cudaError_t const status = self().launch(inputDesc, inputs, outputs, workspace, stream);
      if (status != cudaSuccess) {
        logMessage(nvinfer1::ILogger::Severity::kERROR,
                   std::string(Derived::kName) + " kernel launch failed: " + cudaGetErrorName(status) +
                       " (" + cudaGetErrorString(status) + ")");
        return -1;
      }
      return 0;
    });
  }

  nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override {
    return clone();  // no per-context resources
  }

  nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override {
    return guarded<nvinfer1::PluginFieldCollection const*>(Derived::kName, "getFieldsToSerialize", nullptr, [&] {
      mSerialized = toPluginFields(self().fieldViews());
      mSerializedCollection.nbFields = static_cast<int32_t>(mSerialized.size());
      mSerializedCollection.fields = mSerialized.data();
      return &mSerializedCollection;
    });
  }

 protected:
  PluginV3Base() = default;
  PluginV3Base(PluginV3Base const&) {}  // the buffers below are per object, rebuilt on demand
  PluginV3Base& operator=(PluginV3Base const&) = delete;

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }
  Derived const& self() const noexcept { return static_cast<Derived const&>(*this); }

  // A node with the wrong number of inputs is a user's mistake; null arrays are TensorRT's.
  static void requireCounts(int32_t nbInputs, int32_t nbOutputs, bool pointersValid) {
    if (!pointersValid) throw std::runtime_error("called with null tensor arrays");
    if (nbInputs != Derived::kNbInputs || nbOutputs != 1) {
      std::string names;
      for (auto const& n : Derived::inputNames()) names += (names.empty() ? "" : ", ") + n;
      throw plugin::PluginInputError(std::string(Derived::kName) + ": expected " +
                                     std::to_string(Derived::kNbInputs) + " inputs (" + names +
                                     ") and 1 output, got " + std::to_string(nbInputs) +
                                     " inputs and " + std::to_string(nbOutputs) + " outputs");
    }
  }

  char const* describe() noexcept {
    return guarded<char const*>(Derived::kName, "describe", nullptr, [&] {
      mDescription = self().description();
      return mDescription.c_str();
    });
  }

  std::vector<nvinfer1::PluginField> mSerialized;
  nvinfer1::PluginFieldCollection mSerializedCollection{};
  std::string mDescription;
};

}  // namespace attn_deploy::trt
