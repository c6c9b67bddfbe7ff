#include "tensor_rules.h"

#include <cassert>
#include <limits>

#include "plugin_fields.h"

namespace attn_deploy::plugin {

char const* elementTypeName(ElementType type) noexcept {
  switch (type) {
    case ElementType::kFloat32: return "float32";
    case ElementType::kFloat16: return "float16";
    case ElementType::kOther: break;
  }
  return "an unsupported type";
}

bool supportsFormatCombination(int32_t pos, TensorFormatDesc const* inOut, int32_t nbInputs,
                               int32_t nbOutputs) noexcept {
  if (inOut == nullptr || pos < 0 || pos >= nbInputs + nbOutputs) return false;
  TensorFormatDesc const& t = inOut[pos];
  if (t.layout != Layout::kLinear) return false;
  if (pos == 0) return t.type == ElementType::kFloat32 || t.type == ElementType::kFloat16;
  return t.type == inOut[0].type;
}

ElementType outputElementType(std::string_view plugin, std::vector<std::string> const& inputNames,
                              ElementType const* inputs, int32_t nbInputs) {
  assert(inputs != nullptr && nbInputs == static_cast<int32_t>(inputNames.size()));
  for (int32_t i = 0; i < nbInputs; ++i) {
    if (inputs[i] != ElementType::kFloat32 && inputs[i] != ElementType::kFloat16) {
      throw PluginInputError(std::string(plugin) + ": input '" + inputNames[i] +
                             "' must be float32 or float16, got " + elementTypeName(inputs[i]));
    }
    if (inputs[i] != inputs[0]) {
      throw PluginInputError(std::string(plugin) + ": input '" + inputNames[i] + "' is " +
                             elementTypeName(inputs[i]) + " but '" + inputNames[0] + "' is " +
                             elementTypeName(inputs[0]) + "; all inputs must have one type");
    }
  }
  return inputs[0];
}

Shape makeShape(std::vector<int64_t> const& dims) {
  assert(dims.size() <= static_cast<size_t>(kMaxRank));
  Shape s;
  s.rank = static_cast<int32_t>(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) s.d[i] = dims[i];
  return s;
}

std::string shapeToString(Shape const& s) {
  std::string out = "[";
  for (int32_t i = 0; i < s.rank; ++i) {
    out += (i ? ", " : "") + (s.d[i] == kUnknownDim ? std::string("?") : std::to_string(s.d[i]));
  }
  return out + "]";
}

bool operator==(Shape const& a, Shape const& b) noexcept {
  if (a.rank != b.rank) return false;
  for (int32_t i = 0; i < a.rank; ++i) {
    if (a.d[i] != b.d[i]) return false;
  }
  return true;
}

Shape applyShapeRule(ShapeRule const& rule, Shape const* inputs, int32_t nbInputs) {
  Shape out;
  out.rank = static_cast<int32_t>(rule.size());
  for (size_t i = 0; i < rule.size(); ++i) {
    DimRule const& r = rule[i];
    assert(r.input >= 0 && r.input < nbInputs && r.axis < inputs[r.input].rank);
    int64_t const v = inputs[r.input].d[r.axis];
    out.d[i] = v == kUnknownDim ? kUnknownDim : v * r.scale;
  }
  return out;
}

void requireRank(std::string_view plugin, std::string_view input, Shape const& s, int32_t rank) {
  if (s.rank != rank) {
    throw PluginInputError(std::string(plugin) + ": input '" + std::string(input) + "' must have " +
                           std::to_string(rank) + " dimensions, got " + shapeToString(s));
  }
}

void requireSameDim(std::string_view plugin, std::string_view what, std::string_view inputA,
                    Shape const& a, int32_t axisA, std::string_view inputB, Shape const& b,
                    int32_t axisB, int64_t scaleB) {
  int64_t const va = a.d[axisA], vb = b.d[axisB];
  if (va == kUnknownDim || vb == kUnknownDim || va == vb * scaleB) return;
  std::string expected = scaleB == 1 ? std::to_string(vb)
                                     : std::to_string(scaleB) + " x " + std::to_string(vb) +
                                           " = " + std::to_string(vb * scaleB);
  throw PluginInputError(std::string(plugin) + ": " + std::string(what) + ": input '" +
                         std::string(inputA) + "' " + shapeToString(a) + " dim " +
                         std::to_string(axisA) + " must be " + expected + " (from '" +
                         std::string(inputB) + "' " + shapeToString(b) + "), got " +
                         std::to_string(va));
}

void requireInt32Dims(std::string_view plugin, std::string_view input, Shape const& s) {
  for (int32_t i = 0; i < s.rank; ++i) {
    if (s.d[i] > std::numeric_limits<int32_t>::max()) {
      throw PluginInputError(std::string(plugin) + ": input '" + std::string(input) + "' " +
                             shapeToString(s) + " dim " + std::to_string(i) +
                             " does not fit in int32");
    }
  }
}

}  // namespace attn_deploy::plugin
