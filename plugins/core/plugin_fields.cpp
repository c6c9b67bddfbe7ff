#include "plugin_fields.h"

#include <cstring>
#include <limits>
#include <sstream>

namespace attn_deploy::plugin {

char const* fieldTypeName(FieldType type) noexcept {
  switch (type) {
    case FieldType::kInt32: return "int32";
    case FieldType::kInt64: return "int64";
    case FieldType::kFloat32: return "float32";
    case FieldType::kFloat16: return "float16";
    case FieldType::kChar: return "char (string)";
    case FieldType::kOther: break;
  }
  return "an unsupported type";
}

namespace {

std::string specNames(std::vector<IntFieldSpec> const& specs) {
  std::string names;
  for (auto const& s : specs) names += (names.empty() ? "" : ", ") + std::string(s.name);
  return names;
}

int32_t readInt(std::string_view plugin, IntFieldSpec const& spec, FieldView const& f) {
  std::ostringstream where;
  where << plugin << ": field '" << spec.name << "' (" << spec.meaning << ")";
  if (f.type != FieldType::kInt32 && f.type != FieldType::kInt64) {
    throw PluginInputError(where.str() + ": expected one int32 value, got " +
                           fieldTypeName(f.type) + " data");
  }
  if (f.length != 1 || f.data == nullptr) {
    throw PluginInputError(where.str() + ": expected exactly one value, got " +
                           std::to_string(f.data == nullptr ? 0 : f.length));
  }
  int64_t value;
  if (f.type == FieldType::kInt32) {
    int32_t v;
    std::memcpy(&v, f.data, sizeof v);
    value = v;
  } else {
    std::memcpy(&value, f.data, sizeof value);
  }
  if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max()) {
    throw PluginInputError(where.str() + ": value " + std::to_string(value) +
                           " does not fit in int32");
  }
  return static_cast<int32_t>(value);
}

}  // namespace

std::vector<int32_t> parseIntFields(std::string_view plugin, std::vector<IntFieldSpec> const& specs,
                                    std::vector<FieldView> const& fields) {
  std::vector<int32_t> values(specs.size());
  std::vector<bool> seen(specs.size(), false);
  for (auto const& f : fields) {
    size_t i = 0;
    while (i < specs.size() && f.name != specs[i].name) ++i;
    if (i == specs.size()) {
      std::string expected = specs.empty() ? "this plugin takes no fields" : "fields are " + specNames(specs);
      throw PluginInputError(std::string(plugin) + ": unknown field '" + std::string(f.name) +
                             "'; " + expected);
    }
    if (seen[i]) {
      throw PluginInputError(std::string(plugin) + ": field '" + specs[i].name + "' given twice");
    }
    values[i] = readInt(plugin, specs[i], f);
    seen[i] = true;
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!seen[i]) {
      throw PluginInputError(std::string(plugin) + ": missing field '" + specs[i].name + "' (" +
                             specs[i].meaning + "); fields are " + specNames(specs) +
                             ". In ONNX these are the node's int attributes of the same names.");
    }
  }
  return values;
}

}  // namespace attn_deploy::plugin
