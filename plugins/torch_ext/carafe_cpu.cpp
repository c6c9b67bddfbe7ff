// CARAFE on the CPU: threads over output rows, SIMD packs over the pixels of a row, all through
// the per-element functions of carafe_math.h that the CUDA kernels run. Packs read mask and
// grad_output rows from a contiguous copy: in place, rows of neighbouring planes lie a power of
// two apart, fall into one cache set and evict each other on every pixel. Row tails (P = float)
// read them in place, with the GPU's addressing, so the CPU tests cover that too.
#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <type_traits>
#include <vector>

#include "cpu_ops.h"

namespace attn_deploy {

template <typename T>
void carafeForwardCpu(const T* features, const T* masks, T* output, const CarafeDims& d) {
  const int outH = d.outH(), outW = d.outW(), taps = d.taps(), cpg = d.channelsPerGroup();
  const int64_t outPlane = d.outPlane();
  // One task = output row (n, y) of every channel; a group's k*k mask rows serve its C/G channels.
  at::parallel_for(0, int64_t(d.N) * outH, grainRows(int64_t(d.C) * outW * taps),
                   [&](int64_t begin, int64_t end) {
    std::vector<float> maskRows(size_t(taps) * outW);
    for (int64_t row = begin; row < end; ++row) {
      const int n = int(row / outH), y = int(row % outH);
      for (int g = 0; g < d.groupSize; ++g) {
        const T* maskTaps = masks + (int64_t(n) * d.groupSize + g) * taps * outPlane +
                            int64_t(y) * outW;  // &masks[n, g*k*k, y, 0]
        for (int t = 0; t < taps; ++t) {
          for (int x = 0; x < outW; ++x) {
            maskRows[size_t(t) * outW + x] = toFloat(maskTaps[t * outPlane + x]);
          }
        }
        for (int c = g * cpg; c < (g + 1) * cpg; ++c) {
          const T* featurePlane = features + (int64_t(n) * d.C + c) * d.inPlane();
          T* out = output + (int64_t(n) * d.C + c) * outPlane + int64_t(y) * outW;
          forEachLanePack(outW, [&](auto lanes, int x) {
            using P = typename decltype(lanes)::type;
            if constexpr (std::is_same_v<P, float>) {
              Lanes<P>::store(out + x,
                              carafeOutputAt<P>(featurePlane, maskTaps, outPlane, d, y, x));
            } else {
              Lanes<P>::store(out + x,
                              carafeOutputAt<P>(featurePlane, maskRows.data(), outW, d, y, x));
            }
          });
        }
      }
    }
  });
}

template <typename T>
void carafeBackwardCpu(const T* gradOut, const T* features, const T* masks, T* gradFeatures,
                       T* gradMasks, const CarafeDims& d) {
  const int outH = d.outH(), outW = d.outW(), taps = d.taps(), cpg = d.channelsPerGroup();
  const int64_t outPlane = d.outPlane(), s2 = int64_t(d.scaleFactor) * d.scaleFactor;
  // grad features: one task = feature row (n, fy) of every channel.
  at::parallel_for(0, int64_t(d.N) * d.H, grainRows(int64_t(d.C) * d.W * taps * s2),
                   [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int n = int(row / d.H), fy = int(row % d.H);
      for (int c = 0; c < d.C; ++c) {
        const T* gradOutPlane = gradOut + (int64_t(n) * d.C + c) * outPlane;
        const T* maskGroup = masks + (int64_t(n) * d.groupSize + c / cpg) * taps * outPlane;
        T* out = gradFeatures + (int64_t(n) * d.C + c) * d.inPlane() + int64_t(fy) * d.W;
        forEachLanePack(d.W, [&](auto lanes, int fx) {
          using P = typename decltype(lanes)::type;
          Lanes<P>::store(out + fx, carafeGradFeatureAt<P>(gradOutPlane, maskGroup, d, fy, fx));
        });
      }
    }
  });
  // grad masks: one task = output row (n, y) of every group and tap.
  at::parallel_for(0, int64_t(d.N) * outH, grainRows(int64_t(d.C) * outW * taps),
                   [&](int64_t begin, int64_t end) {
    std::vector<float> gradRows(size_t(cpg) * outW);
    for (int64_t row = begin; row < end; ++row) {
      const int n = int(row / outH), y = int(row % outH);
      for (int g = 0; g < d.groupSize; ++g) {
        const int64_t firstChannel = int64_t(n) * d.C + int64_t(g) * cpg;
        const T* gradOutRows = gradOut + firstChannel * outPlane + int64_t(y) * outW;
        for (int c = 0; c < cpg; ++c) {
          for (int x = 0; x < outW; ++x) {
            gradRows[size_t(c) * outW + x] = toFloat(gradOutRows[c * outPlane + x]);
          }
        }
        const T* featureGroup = features + firstChannel * d.inPlane();
        for (int tap = 0; tap < taps; ++tap) {
          T* out = gradMasks + ((int64_t(n) * d.groupSize + g) * taps + tap) * outPlane +
                   int64_t(y) * outW;
          forEachLanePack(outW, [&](auto lanes, int x) {
            using P = typename decltype(lanes)::type;
            if constexpr (std::is_same_v<P, float>) {
              Lanes<P>::store(out + x, carafeGradMaskAt<P>(gradOutRows, outPlane, featureGroup, d,
                                                           tap, y, x));
            } else {
              Lanes<P>::store(out + x, carafeGradMaskAt<P>(gradRows.data(), outW, featureGroup, d,
                                                           tap, y, x));
            }
          });
        }
      }
    }
  });
}

template void carafeForwardCpu<float>(const float*, const float*, float*, const CarafeDims&);
template void carafeForwardCpu<c10::Half>(const c10::Half*, const c10::Half*, c10::Half*,
                                          const CarafeDims&);
template void carafeBackwardCpu<float>(const float*, const float*, const float*, float*, float*,
                                       const CarafeDims&);
template void carafeBackwardCpu<c10::Half>(const c10::Half*, const c10::Half*, const c10::Half*,
                                           c10::Half*, c10::Half*, const CarafeDims&);

}  // namespace attn_deploy
