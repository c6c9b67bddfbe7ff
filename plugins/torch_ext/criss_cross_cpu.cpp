// Criss-cross attention on the CPU: threads over rows of pixels, SIMD packs over the pixels of a
// row, all through the per-pixel functions of criss_cross_math.h that the CUDA kernels run. The
// backward always, the forward for small maps (criss_cross_blas.h has the large-map forward).
#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <type_traits>
#include <vector>

#include "cpu_ops.h"

namespace attn_deploy {
namespace {

// output[c, y, :] = crissCrossGatherAt over the `channels` planes of source, four channels per
// call (they share each weight load), the remainder one by one.
template <typename T>
void gatherChannels(const float* weights, int64_t pStride, const T* source, int channels,
                    T* output, const CrissCrossDims& d, int y) {
  constexpr int kBlock = 4;
  const int64_t plane = d.plane();
  int c = 0;
  for (; c + kBlock <= channels; c += kBlock) {
    T* out = output + c * plane + int64_t(y) * d.W;
    forEachLanePack(d.W, [&](auto lanes, int x) {
      using P = typename decltype(lanes)::type;
      P sums[kBlock];
      crissCrossGatherAt<P, kBlock>(weights, pStride, source + c * plane, plane, d, y, x, sums);
      for (int b = 0; b < kBlock; ++b) Lanes<P>::store(out + b * plane + x, sums[b]);
    });
  }
  for (; c < channels; ++c) {
    T* out = output + c * plane + int64_t(y) * d.W;
    forEachLanePack(d.W, [&](auto lanes, int x) {
      using P = typename decltype(lanes)::type;
      P sum;
      crissCrossGatherAt<P, 1>(weights, pStride, source + c * plane, plane, d, y, x, &sum);
      Lanes<P>::store(out + x, sum);
    });
  }
}

// output[c, y, :] = crissCrossScatterAt over the `channels` planes of source. weights is the
// workspace [H+W, H, W]; rowBlock its row part for row y transposed to [x, xt], which packs read
// contiguously. Row tails read the workspace in place, with the GPU's addressing.
template <typename T>
void scatterChannels(const float* weights, const float* rowBlock, const T* source, int channels,
                     T* output, const CrissCrossDims& d, int y) {
  const int64_t plane = d.plane();
  const float* rowInPlace = weights + d.H * plane + int64_t(y) * d.W;
  for (int c = 0; c < channels; ++c) {
    T* out = output + c * plane + int64_t(y) * d.W;
    const T* src = source + c * plane;
    forEachLanePack(d.W, [&](auto lanes, int x) {
      using P = typename decltype(lanes)::type;
      if constexpr (std::is_same_v<P, float>) {
        Lanes<P>::store(out + x,
                        crissCrossScatterAt<P>(weights, rowInPlace, 1, plane, src, d, y, x));
      } else {
        Lanes<P>::store(out + x, crissCrossScatterAt<P>(weights, rowBlock, d.W, 1, src, d, y, x));
      }
    });
  }
}

}  // namespace

template <typename T>
void crissCrossForwardCpu(const T* query, const T* key, const T* value, T* output,
                          const CrissCrossDims& d) {
  const int64_t plane = d.plane();
  const int64_t macsPerRow = int64_t(d.W) * d.positions() * (int64_t(d.Cq) + d.C);
  // One task = pixel row (n, y): its attention weights [H+W, W] live in a per-task scratch that
  // stays in cache while every value channel reads it.
  at::parallel_for(0, int64_t(d.N) * d.H, grainRows(macsPerRow), [&](int64_t begin, int64_t end) {
    std::vector<float> weights(size_t(d.positions()) * d.W);
    for (int64_t row = begin; row < end; ++row) {
      const int n = int(row / d.H), y = int(row % d.H);
      const T* q = query + int64_t(n) * d.Cq * plane;
      const T* k = key + int64_t(n) * d.Cq * plane;
      forEachLanePack(d.W, [&](auto lanes, int x) {
        using P = typename decltype(lanes)::type;
        crissCrossWeightsAt<P>(q, k, d, y, x, weights.data(), d.W);
      });
      gatherChannels(weights.data(), d.W, value + int64_t(n) * d.C * plane, d.C,
                     output + int64_t(n) * d.C * plane, d, y);
    }
  });
}

template <typename T>
void crissCrossBackwardCpu(const T* gradOut, const T* query, const T* key, const T* value,
                           T* gradQuery, T* gradKey, T* gradValue, float* workspace,
                           const CrissCrossDims& d) {
  const int64_t plane = d.plane();
  const int64_t macsPerRow = int64_t(d.W) * d.positions() * (int64_t(d.Cq) + d.C);
  // Attention weights and energy gradients of one batch item, [H+W, H, W] each: the transposed
  // gathers of pass 2 read other rows' entries, so pass 1 must finish the whole image first.
  float* const weights = workspace;
  float* const energyGrad = workspace + int64_t(d.positions()) * plane;
  for (int n = 0; n < d.N; ++n) {
    const int64_t qk = int64_t(n) * d.Cq * plane, vo = int64_t(n) * d.C * plane;
    const T *q = query + qk, *k = key + qk, *v = value + vo, *go = gradOut + vo;
    // Pass 1, per pixel: recompute the softmax, backpropagate through it, gather grad query.
    at::parallel_for(0, d.H, grainRows(macsPerRow), [&](int64_t begin, int64_t end) {
      for (int y = int(begin); y < int(end); ++y) {
        float* w = weights + int64_t(y) * d.W;
        float* e = energyGrad + int64_t(y) * d.W;
        forEachLanePack(d.W, [&](auto lanes, int x) {
          using P = typename decltype(lanes)::type;
          crissCrossWeightsAt<P>(q, k, d, y, x, w, plane);
          crissCrossEnergyGradAt<P>(w, go, v, d, y, x, e, plane);
        });
        gatherChannels(e, plane, k, d.Cq, gradQuery + qk, d, y);
      }
    });
    // Pass 2, per position: gather what every pixel sent it (grad value and grad key).
    at::parallel_for(0, d.H, grainRows(macsPerRow), [&](int64_t begin, int64_t end) {
      std::vector<float> rowWeights(size_t(d.W) * d.W), rowEnergyGrad(rowWeights.size());
      for (int y = int(begin); y < int(end); ++y) {
        for (int xt = 0; xt < d.W; ++xt) {  // row part of row y, transposed to [x, xt]
          const int64_t from = (d.H + int64_t(xt)) * plane + int64_t(y) * d.W;
          for (int x = 0; x < d.W; ++x) {
            rowWeights[size_t(x) * d.W + xt] = weights[from + x];
            rowEnergyGrad[size_t(x) * d.W + xt] = energyGrad[from + x];
          }
        }
        scatterChannels(weights, rowWeights.data(), go, d.C, gradValue + vo, d, y);
        scatterChannels(energyGrad, rowEnergyGrad.data(), q, d.Cq, gradKey + qk, d, y);
      }
    });
  }
}

template void crissCrossForwardCpu<float>(const float*, const float*, const float*, float*,
                                          const CrissCrossDims&);
template void crissCrossForwardCpu<c10::Half>(const c10::Half*, const c10::Half*,
                                              const c10::Half*, c10::Half*,
                                              const CrissCrossDims&);
template void crissCrossBackwardCpu<float>(const float*, const float*, const float*, const float*,
                                           float*, float*, float*, float*, const CrissCrossDims&);
template void crissCrossBackwardCpu<c10::Half>(const c10::Half*, const c10::Half*,
                                               const c10::Half*, const c10::Half*, c10::Half*,
                                               c10::Half*, c10::Half*, float*,
                                               const CrissCrossDims&);

}  // namespace attn_deploy
