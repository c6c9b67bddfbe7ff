#include "carafe_rules.h"

#include <limits>

#include "../kernels/op_limits.h"

namespace attn_deploy::plugin {

namespace {

// group_size * kernel_size^2, exact in 64 bits (or -1) whatever the attribute values.
int64_t maskChannelsOf(CarafeAttributes const& a) {
  return limits::checkedProduct(limits::checkedProduct(a.groupSize, a.kernelSize), a.kernelSize);
}

}  // namespace

bool operator==(CarafeAttributes const& a, CarafeAttributes const& b) noexcept {
  return a.kernelSize == b.kernelSize && a.groupSize == b.groupSize &&
         a.scaleFactor == b.scaleFactor;
}

std::vector<IntFieldSpec> const& carafeFieldSpecs() {
  static std::vector<IntFieldSpec> const specs = {
      {"kernel_size", "reassembly kernel size k, odd"},
      {"group_size", "number of channel groups sharing a mask, divides the channels"},
      {"scale_factor", "upsampling factor s"},
  };
  return specs;
}

std::vector<std::string> const& carafeInputNames() {
  static std::vector<std::string> const names = {"features", "masks"};
  return names;
}

void validateCarafe(CarafeAttributes const& a) {
  std::string const p = kCarafeName;
  // Bounds first: they keep group_size * kernel_size^2 below 2^47, so the product is exact.
  if (a.kernelSize < 1 || a.kernelSize % 2 == 0 || a.kernelSize > limits::kMaxKernelSize) {
    throw PluginInputError(p + ": kernel_size must be an odd integer in [1, " +
                           std::to_string(limits::kMaxKernelSize) + "] (the kernel is centred "
                           "on the source pixel), got " + std::to_string(a.kernelSize));
  }
  if (a.groupSize < 1) {
    throw PluginInputError(p + ": group_size must be >= 1, got " + std::to_string(a.groupSize));
  }
  if (a.scaleFactor < 1 || a.scaleFactor > limits::kMaxScaleFactor) {
    throw PluginInputError(p + ": scale_factor must be in [1, " +
                           std::to_string(limits::kMaxScaleFactor) + "], got " +
                           std::to_string(a.scaleFactor));
  }
  int64_t const maskChannels = maskChannelsOf(a);
  if (maskChannels > std::numeric_limits<int32_t>::max()) {
    throw PluginInputError(p + ": group_size * kernel_size^2 = " + std::to_string(a.groupSize) +
                           " * " + std::to_string(a.kernelSize) + "^2 = " +
                           std::to_string(maskChannels) + " mask channels does not fit in int32");
  }
}

CarafeAttributes parseCarafeFields(std::vector<FieldView> const& fields) {
  std::vector<int32_t> const v = parseIntFields(kCarafeName, carafeFieldSpecs(), fields);
  CarafeAttributes const a{v[0], v[1], v[2]};
  validateCarafe(a);
  return a;
}

std::vector<FieldView> carafeFieldsToSerialize(CarafeAttributes const& a) {
  auto const& s = carafeFieldSpecs();
  return {{s[0].name, FieldType::kInt32, &a.kernelSize, 1},
          {s[1].name, FieldType::kInt32, &a.groupSize, 1},
          {s[2].name, FieldType::kInt32, &a.scaleFactor, 1}};
}

ShapeRule carafeOutputRule(CarafeAttributes const& a) {
  return {{0, 0, 1}, {0, 1, 1}, {0, 2, a.scaleFactor}, {0, 3, a.scaleFactor}};
}

void checkCarafeInputs(CarafeAttributes const& a, Shape const& features, Shape const& masks) {
  std::string const p = kCarafeName;
  requireRank(p, "features", features, 4);
  requireRank(p, "masks", masks, 4);
  requireInt32Dims(p, "features", features);
  requireInt32Dims(p, "masks", masks);
  int64_t const channels = features.d[1];
  if (channels != kUnknownDim && channels % a.groupSize != 0) {
    throw PluginInputError(p + ": group_size " + std::to_string(a.groupSize) +
                           " must divide the channels of input 'features' " +
                           shapeToString(features) + ", got " + std::to_string(channels) +
                           " channels");
  }
  int64_t const maskChannels = maskChannelsOf(a);
  if (masks.d[1] != kUnknownDim && masks.d[1] != maskChannels) {
    throw PluginInputError(p + ": input 'masks' " + shapeToString(masks) +
                           " must have group_size * kernel_size^2 = " +
                           std::to_string(a.groupSize) + " * " + std::to_string(a.kernelSize) +
                           "^2 = " + std::to_string(maskChannels) + " channels, got " +
                           std::to_string(masks.d[1]));
  }
  requireSameDim(p, "batch", "masks", masks, 0, "features", features, 0);
  requireSameDim(p, "height", "masks", masks, 2, "features", features, 2, a.scaleFactor);
  requireSameDim(p, "width", "masks", masks, 3, "features", features, 3, a.scaleFactor);
  for (int32_t i = 2; i < 4; ++i) {
    if (features.d[i] != kUnknownDim &&
        features.d[i] * a.scaleFactor > std::numeric_limits<int32_t>::max()) {
      throw PluginInputError(p + ": output size " + std::to_string(features.d[i]) + " x " +
                             std::to_string(a.scaleFactor) + " does not fit in int32");
    }
  }
  if (features.d[2] != kUnknownDim && features.d[3] != kUnknownDim) {
    int64_t const outPlane = limits::checkedProduct(features.d[2] * a.scaleFactor,
                                                    features.d[3] * a.scaleFactor);
    if (outPlane < 0 || outPlane >= limits::kPlaneLimit) {
      throw PluginInputError(p + ": output plane H*W*scale_factor^2 = " +
                             std::to_string(features.d[2]) + "*" + std::to_string(features.d[3]) +
                             "*" + std::to_string(a.scaleFactor) + "^2 must be below 2^27 (" +
                             std::to_string(limits::kPlaneLimit) + ") for input 'features' " +
                             shapeToString(features));
    }
  }
}

std::string carafeDescription(CarafeAttributes const& a) {
  return "kernel_size=" + std::to_string(a.kernelSize) +
         ",group_size=" + std::to_string(a.groupSize) +
         ",scale_factor=" + std::to_string(a.scaleFactor);
}

}  // namespace attn_deploy::plugin
