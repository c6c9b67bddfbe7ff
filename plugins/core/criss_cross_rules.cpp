#include "criss_cross_rules.h"

#include "../kernels/op_limits.h"

namespace attn_deploy::plugin {

std::vector<std::string> const& crissCrossInputNames() {
  static std::vector<std::string> const names = {"query", "key", "value"};
  return names;
}

void parseCrissCrossFields(std::vector<FieldView> const& fields) {
  parseIntFields(kCrissCrossName, {}, fields);
}

ShapeRule crissCrossOutputRule() {
  return {{2, 0, 1}, {2, 1, 1}, {2, 2, 1}, {2, 3, 1}};
}

void checkCrissCrossInputs(Shape const& query, Shape const& key, Shape const& value) {
  std::string const p = kCrissCrossName;
  requireRank(p, "query", query, 4);
  requireRank(p, "key", key, 4);
  requireRank(p, "value", value, 4);
  requireInt32Dims(p, "query", query);
  requireInt32Dims(p, "key", key);
  requireInt32Dims(p, "value", value);
  char const* const axes[] = {"batch", "channels", "height", "width"};
  for (int32_t i = 0; i < 4; ++i) {
    requireSameDim(p, std::string(axes[i]) + " of key and query", "key", key, i, "query", query, i);
  }
  for (int32_t i : {0, 2, 3}) requireSameDim(p, axes[i], "value", value, i, "query", query, i);
  if (query.d[2] != kUnknownDim && query.d[3] != kUnknownDim) {
    int64_t const plane = limits::checkedProduct(query.d[2], query.d[3]);
    if (plane < 0 || plane >= limits::kPlaneLimit) {
      throw PluginInputError(p + ": H*W = " + std::to_string(query.d[2]) + "*" +
                             std::to_string(query.d[3]) + " must be below 2^27 (" +
                             std::to_string(limits::kPlaneLimit) + ") for input 'query' " +
                             shapeToString(query));
    }
  }
}

}  // namespace attn_deploy::plugin
