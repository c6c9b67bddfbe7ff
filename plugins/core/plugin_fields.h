// Plugin fields without TensorRT: a field is a name, an element type, a pointer and a count, the
// same four things a TensorRT PluginField carries. The TensorRT glue converts its PluginFields to
// FieldViews, so parsing and validation live (and are tested) here, with no TensorRT in sight.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace attn_deploy::plugin {

// The plugin library's identity: TensorRT looks a creator up by (name, version, namespace).
inline constexpr char kPluginVersion[] = "1";
inline constexpr char kPluginNamespace[] = "attn_deploy";

// Element types a field can hold. The ONNX parser passes an ONNX INT attribute as kInt32 (one
// element); kInt64 is accepted too, for networks built through the API.
enum class FieldType { kInt32, kInt64, kFloat32, kFloat16, kChar, kOther };

char const* fieldTypeName(FieldType type) noexcept;

struct FieldView {
  std::string_view name;
  FieldType type;
  void const* data;
  int32_t length;
};

// A mistake in what a user gave the plugin (an attribute value, a field, a tensor shape or type).
// The message names the plugin, the input and what was expected and seen. Internal invariants use
// assertions instead.
class PluginInputError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// One integer field a plugin declares: its name (the ONNX attribute name) and what it means. The
// values it accepts are checked by the plugin's own validate function (validateCarafe), not here.
struct IntFieldSpec {
  char const* name;
  char const* meaning;  // for messages: "the reassembly kernel size k_up"
};

// The integer fields, in spec order, from `fields`. Every spec must be present exactly once, as
// one int32 or int64 element fitting in int32; fields not in the spec are rejected (TensorRT only
// ever passes the fields a creator advertises, so an unknown one is a caller's typo).
std::vector<int32_t> parseIntFields(std::string_view plugin, std::vector<IntFieldSpec> const& specs,
                                    std::vector<FieldView> const& fields);

}  // namespace attn_deploy::plugin
