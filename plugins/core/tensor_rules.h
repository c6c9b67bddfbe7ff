// Type, format and shape rules shared by the plugins, without TensorRT.
//
// Both plugins take float32 or float16 tensors in linear (row-major NCHW) layout; every input and
// the output have the type of input 0 (TensorRT 11's strongly typed networks need the output type
// to follow the input type). Output shapes are written as data, one DimRule per output dimension,
// so the TensorRT glue turns the same rule into IDimensionExpr arithmetic and the tests evaluate it
// on concrete shapes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace attn_deploy::plugin {

enum class ElementType { kFloat32, kFloat16, kOther };
enum class Layout { kLinear, kOther };

char const* elementTypeName(ElementType type) noexcept;

struct TensorFormatDesc {
  ElementType type;
  Layout layout;
};

// TensorRT's supportsFormatCombination question: may tensor `pos` of inputs-then-outputs have
// inOut[pos]'s type and layout, given the (already accepted) choices for positions < pos?
bool supportsFormatCombination(int32_t pos, TensorFormatDesc const* inOut, int32_t nbInputs,
                               int32_t nbOutputs) noexcept;

// Output type for the given input types; throws PluginInputError naming the offending input when an
// input is neither float32 nor float16 or the inputs disagree.
ElementType outputElementType(std::string_view plugin, std::vector<std::string> const& inputNames,
                              ElementType const* inputs, int32_t nbInputs);

// A tensor shape; a dimension of kUnknownDim is not known yet (a dynamic dim at build time).
inline constexpr int64_t kUnknownDim = -1;
inline constexpr int32_t kMaxRank = 8;

struct Shape {
  int32_t rank = 0;
  int64_t d[kMaxRank] = {};
};

Shape makeShape(std::vector<int64_t> const& dims);
std::string shapeToString(Shape const& s);
bool operator==(Shape const& a, Shape const& b) noexcept;

// Output dimension = inputs[input].d[axis] * scale.
struct DimRule {
  int32_t input;
  int32_t axis;
  int32_t scale;
};
using ShapeRule = std::vector<DimRule>;

// Evaluate `rule` on concrete (or partly unknown) input shapes; unknown stays unknown.
Shape applyShapeRule(ShapeRule const& rule, Shape const* inputs, int32_t nbInputs);

// Helpers for input checks that tolerate unknown dims: they only compare what is known.
void requireRank(std::string_view plugin, std::string_view input, Shape const& s, int32_t rank);
void requireSameDim(std::string_view plugin, std::string_view what, std::string_view inputA,
                    Shape const& a, int32_t axisA, std::string_view inputB, Shape const& b,
                    int32_t axisB, int64_t scaleB = 1);
// The kernels index with int: every known dim must fit in int32.
void requireInt32Dims(std::string_view plugin, std::string_view input, Shape const& s);

}  // namespace attn_deploy::plugin
