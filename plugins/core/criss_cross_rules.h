// CrissCrossAttention plugin rules without TensorRT: fields (none), shapes.
//
//   query [N, Cq, H, W], key [N, Cq, H, W], value [N, C, H, W]  ->  output [N, C, H, W]
// Each pixel attends over its row and column (H + W - 1 positions, itself once), one softmax.
#pragma once

#include <string>
#include <vector>

#include "plugin_fields.h"
#include "tensor_rules.h"

namespace attn_deploy::plugin {

inline constexpr char kCrissCrossName[] = "CrissCrossAttention";

std::vector<std::string> const& crissCrossInputNames();  // query, key, value

// The op has no attributes: any field is rejected with a message naming it.
void parseCrissCrossFields(std::vector<FieldView> const& fields);

ShapeRule crissCrossOutputRule();

// Unknown dims are skipped (build time); see checkCarafeInputs.
void checkCrissCrossInputs(Shape const& query, Shape const& key, Shape const& value);

}  // namespace attn_deploy::plugin
