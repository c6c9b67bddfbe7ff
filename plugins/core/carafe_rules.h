// CARAFE plugin rules without TensorRT: fields, validation, shapes.
//
//   features [N, C, H, W], masks [N, G*k*k, s*H, s*W]  ->  output [N, C, s*H, s*W]
// with k = kernel_size (odd), G = group_size (divides C), s = scale_factor. The masks are already
// normalised (softmax over the k*k taps) by the graph; the plugin only reassembles.
#pragma once

#include <string>
#include <vector>

#include "plugin_fields.h"
#include "tensor_rules.h"

namespace attn_deploy::plugin {

inline constexpr char kCarafeName[] = "CARAFE";

struct CarafeAttributes {
  int32_t kernelSize = 0;
  int32_t groupSize = 0;
  int32_t scaleFactor = 0;
};

bool operator==(CarafeAttributes const& a, CarafeAttributes const& b) noexcept;

// kernel_size, group_size, scale_factor: the ONNX attribute names, one list for creation and
// serialization.
std::vector<IntFieldSpec> const& carafeFieldSpecs();
std::vector<std::string> const& carafeInputNames();  // features, masks

// Parse and validate; throws PluginInputError.
CarafeAttributes parseCarafeFields(std::vector<FieldView> const& fields);
void validateCarafe(CarafeAttributes const& a);

// Views into `a`'s members (int32, one element each), in spec order; valid while `a` lives.
std::vector<FieldView> carafeFieldsToSerialize(CarafeAttributes const& a);

ShapeRule carafeOutputRule(CarafeAttributes const& a);

// Check the input shapes against each other and the attributes; unknown dims are skipped, so the
// same check serves build time (dynamic dims unknown) and run time (all known).
void checkCarafeInputs(CarafeAttributes const& a, Shape const& features, Shape const& masks);

// "kernel_size=5,group_size=1,scale_factor=2": TensorRT's metadata string and timing-cache id.
std::string carafeDescription(CarafeAttributes const& a);

}  // namespace attn_deploy::plugin
