// Between TensorRT's plugin types and the TensorRT-free core (plugins/core).
#pragma once

#include <NvInferRuntime.h>

#include <vector>

#include "../core/plugin_fields.h"
#include "../core/tensor_rules.h"

namespace attn_deploy::trt {

// Views of a TensorRT field collection; throws PluginInputError for a null field name.
std::vector<plugin::FieldView> toFieldViews(nvinfer1::PluginFieldCollection const* fc);

// TensorRT fields for the views (names and data stay owned by the views' sources).
std::vector<nvinfer1::PluginField> toPluginFields(std::vector<plugin::FieldView> const& views);

plugin::ElementType toElementType(nvinfer1::DataType type) noexcept;
plugin::Layout toLayout(nvinfer1::TensorFormat format) noexcept;
plugin::Shape toShape(nvinfer1::Dims const& dims) noexcept;

// Known dims of symbolic shapes: a constant expression gives its value, others kUnknownDim.
plugin::Shape toShape(nvinfer1::DimsExprs const& dims) noexcept;

}  // namespace attn_deploy::trt
