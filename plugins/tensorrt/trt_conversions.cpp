#include "trt_conversions.h"

#include <algorithm>

namespace attn_deploy::trt {

using nvinfer1::PluginFieldType;
using plugin::FieldType;

namespace {

FieldType toFieldType(PluginFieldType type) noexcept {
  switch (type) {
    case PluginFieldType::kINT32: return FieldType::kInt32;
    case PluginFieldType::kINT64: return FieldType::kInt64;
    case PluginFieldType::kFLOAT32: return FieldType::kFloat32;
    case PluginFieldType::kFLOAT16: return FieldType::kFloat16;
    case PluginFieldType::kCHAR: return FieldType::kChar;
    default: return FieldType::kOther;
  }
}

PluginFieldType toPluginFieldType(FieldType type) noexcept {
  switch (type) {
    case FieldType::kInt32: return PluginFieldType::kINT32;
    case FieldType::kInt64: return PluginFieldType::kINT64;
    case FieldType::kFloat32: return PluginFieldType::kFLOAT32;
    case FieldType::kFloat16: return PluginFieldType::kFLOAT16;
    case FieldType::kChar: return PluginFieldType::kCHAR;
    case FieldType::kOther: break;
  }
  return PluginFieldType::kUNKNOWN;
}

}  // namespace

std::vector<plugin::FieldView> toFieldViews(nvinfer1::PluginFieldCollection const* fc) {
  std::vector<plugin::FieldView> views;
  if (fc == nullptr || fc->nbFields <= 0) return views;
  if (fc->fields == nullptr) {
    throw plugin::PluginInputError("plugin field collection has " + std::to_string(fc->nbFields) +
                                   " fields but no field array");
  }
  views.reserve(static_cast<size_t>(fc->nbFields));
  for (int32_t i = 0; i < fc->nbFields; ++i) {
    nvinfer1::PluginField const& f = fc->fields[i];
    if (f.name == nullptr) {
      throw plugin::PluginInputError("plugin field " + std::to_string(i) + " has no name");
    }
    views.push_back({f.name, toFieldType(f.type), f.data, f.length});
  }
  return views;
}

std::vector<nvinfer1::PluginField> toPluginFields(std::vector<plugin::FieldView> const& views) {
  std::vector<nvinfer1::PluginField> fields;
  fields.reserve(views.size());
  for (auto const& v : views) {
    // Names come from string literals (null-terminated), so data() is a valid C string.
    fields.emplace_back(v.name.data(), v.data, toPluginFieldType(v.type), v.length);
  }
  return fields;
}

plugin::ElementType toElementType(nvinfer1::DataType type) noexcept {
  switch (type) {
    case nvinfer1::DataType::kFLOAT: return plugin::ElementType::kFloat32;
    case nvinfer1::DataType::kHALF: return plugin::ElementType::kFloat16;
    default: return plugin::ElementType::kOther;
  }
}

plugin::Layout toLayout(nvinfer1::TensorFormat format) noexcept {
  return format == nvinfer1::TensorFormat::kLINEAR ? plugin::Layout::kLinear : plugin::Layout::kOther;
}

plugin::Shape toShape(nvinfer1::Dims const& dims) noexcept {
  plugin::Shape s;
  s.rank = std::clamp<int32_t>(dims.nbDims, 0, plugin::kMaxRank);
  for (int32_t i = 0; i < s.rank; ++i) s.d[i] = dims.d[i] < 0 ? plugin::kUnknownDim : dims.d[i];
  return s;
}

plugin::Shape toShape(nvinfer1::DimsExprs const& dims) noexcept {
  plugin::Shape s;
  s.rank = std::clamp<int32_t>(dims.nbDims, 0, plugin::kMaxRank);
  for (int32_t i = 0; i < s.rank; ++i) {
    nvinfer1::IDimensionExpr const* e = dims.d[i];
    s.d[i] = (e != nullptr && e->isConstant()) ? e->getConstantValue() : plugin::kUnknownDim;
  }
  return s;
}

}  // namespace attn_deploy::trt
