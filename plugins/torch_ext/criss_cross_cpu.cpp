// Criss-cross attention on the CPU: threads over rows of pixels (and channel blocks), SIMD packs
// over the pixels of a row, all through the per-pixel functions of criss_cross_math.h that the
// CUDA kernels run.
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

// Pass 1 of the forward, for the pixel rows y0 .. y0 + Rows of one batch item: the energies of
// every pixel into its rows' weight blocks ([H+W, W] each, rowBlock floats apart), then the
// softmax over them. The same numbers as crissCrossWeightsAt (each energy summed over the
// channels in order), computed in register tiles that reuse each load: a tile of the column part
// shares its query loads across Cols key rows and its key loads across the Rows pixel rows; the
// row part is a small matrix product (key values broadcast against query packs).
template <typename P, int Rows, int Cols, typename T>
void columnEnergyTile(const T* query, const T* key, const CrissCrossDims& d, int y0, int yk,
                      int x, float* weights, int64_t rowBlock) {
  using L = Lanes<P>;
  const int64_t plane = d.plane();
  P acc[Rows][Cols];
  for (int i = 0; i < Rows; ++i) {
    for (int j = 0; j < Cols; ++j) acc[i][j] = L::splat(0.f);
  }
  for (int c = 0; c < d.Cq; ++c) {
    P q[Rows];
    for (int i = 0; i < Rows; ++i) q[i] = L::load(query + c * plane + int64_t(y0 + i) * d.W + x);
    for (int j = 0; j < Cols; ++j) {
      const P k = L::load(key + c * plane + int64_t(yk + j) * d.W + x);
      for (int i = 0; i < Rows; ++i) acc[i][j] += q[i] * k;
    }
  }
  for (int i = 0; i < Rows; ++i) {
    for (int j = 0; j < Cols; ++j) {
      L::store(weights + i * rowBlock + int64_t(yk + j) * d.W + x, acc[i][j]);
    }
  }
}

template <typename P, int Packs, int Cols, typename T>
void rowEnergyTile(const T* query, const T* key, const CrissCrossDims& d, int y, int xk, int x,
                   float* weights) {
  using L = Lanes<P>;
  constexpr int kPacks = Packs;  // pixel packs x, x + lanes, ...
  const int64_t plane = d.plane();
  const int64_t pixelRow = int64_t(y) * d.W;
  P acc[Cols][kPacks];
  for (int j = 0; j < Cols; ++j) {
    for (int b = 0; b < kPacks; ++b) acc[j][b] = L::splat(0.f);
  }
  for (int c = 0; c < d.Cq; ++c) {
    P q[kPacks];
    const T* queryRow = query + c * plane + pixelRow + x;
    for (int b = 0; b < kPacks; ++b) q[b] = L::load(queryRow + b * L::count);
    for (int j = 0; j < Cols; ++j) {
      const P k = L::splat(toFloat(key[c * plane + pixelRow + xk + j]));
      for (int b = 0; b < kPacks; ++b) acc[j][b] += q[b] * k;
    }
  }
  for (int j = 0; j < Cols; ++j) {
    for (int b = 0; b < kPacks; ++b) {
      L::store(weights + int64_t(d.H + xk + j) * d.W + x + b * L::count, acc[j][b]);
    }
  }
}

// Row energies of pixel row y: every key position xk against the pixels [x, x + Packs * lanes).
template <typename P, int Packs, typename T>
void rowEnergies(const T* query, const T* key, const CrissCrossDims& d, int y, int x,
                 float* weights) {
  constexpr int kCols = 4;
  int xk = 0;
  for (; xk + kCols <= d.W; xk += kCols) {
    rowEnergyTile<P, Packs, kCols>(query, key, d, y, xk, x, weights);
  }
  for (; xk < d.W; ++xk) rowEnergyTile<P, Packs, 1>(query, key, d, y, xk, x, weights);
}

template <int Rows, typename T>
void energyRows(const T* query, const T* key, const CrissCrossDims& d, int y0, float* weights,
                int64_t rowBlock) {
  constexpr int kCols = 4;
  auto columns = [&](auto lanes, int x) {
    using P = typename decltype(lanes)::type;
    int yk = 0;
    for (; yk + kCols <= d.H; yk += kCols) {
      columnEnergyTile<P, Rows, kCols>(query, key, d, y0, yk, x, weights, rowBlock);
    }
    for (; yk < d.H; ++yk) {
      columnEnergyTile<P, Rows, 1>(query, key, d, y0, yk, x, weights, rowBlock);
    }
  };
  forEachLanePack(d.W, columns);
  for (int i = 0; i < Rows; ++i) {
    float* w = weights + i * rowBlock;
    int x = 0;
    for (; x + 2 * kPackLanes <= d.W; x += 2 * kPackLanes) {
      rowEnergies<FloatPack, 2>(query, key, d, y0 + i, x, w);
    }
    for (; x + kPackLanes <= d.W; x += kPackLanes) {
      rowEnergies<FloatPack, 1>(query, key, d, y0 + i, x, w);
    }
    for (; x < d.W; ++x) rowEnergies<float, 1>(query, key, d, y0 + i, x, w);
    // The dead self slot, then the softmax of each pack of pixels over its H+W positions.
    for (int xs = 0; xs < d.W; ++xs) w[int64_t(d.H + xs) * d.W + xs] = -__builtin_huge_valf();
    forEachLanePack(d.W, [&](auto lanes, int x) {
      using P = typename decltype(lanes)::type;
      using L = Lanes<P>;
      P maxEnergy = L::splat(-__builtin_huge_valf());
      for (int p = 0; p < d.positions(); ++p) {
        const P e = L::load(w + int64_t(p) * d.W + x);
        maxEnergy = e > maxEnergy ? e : maxEnergy;
      }
      crissCrossNormalizeAt<P>(w + x, d.positions(), d.W, maxEnergy);
    });
  }
}

}  // namespace

template <typename T>
void crissCrossForwardCpu(const T* query, const T* key, const T* value, T* output,
                          float* workspace, const CrissCrossDims& d) {
  const int64_t plane = d.plane();
  const int64_t rowBlock = int64_t(d.positions()) * d.W;  // weights of one pixel row
  const int64_t rows = int64_t(d.N) * d.H;                // pixel rows (n, y) of the batch
  const int64_t band = crissCrossForwardBandRows(d);
  const int blocks = (d.C + kCrissCrossChannelBlock - 1) / kCrissCrossChannelBlock;
  constexpr int kEnergyRows = 4;
  // The attention weights [H+W, W] of pixel rows [first, last) of the band starting at r0, in
  // groups of kEnergyRows rows of one batch item; a group that would straddle an item or the
  // band's end goes row by row.
  auto weightsOfRows = [&](int64_t r0, int64_t first, int64_t last) {
    const int n = int(first / d.H), y0 = int(first % d.H);
    if (last - first == kEnergyRows && y0 + kEnergyRows <= d.H) {
      energyRows<kEnergyRows>(query + int64_t(n) * d.Cq * plane, key + int64_t(n) * d.Cq * plane,
                              d, y0, workspace + (first - r0) * rowBlock, rowBlock);
      return;
    }
    for (int64_t row = first; row < last; ++row) {
      const int64_t item = row / d.H;
      energyRows<1>(query + item * d.Cq * plane, key + item * d.Cq * plane, d, int(row % d.H),
                    workspace + (row - r0) * rowBlock, rowBlock);
    }
  };
  const int64_t energyMacsPerGroup = int64_t(kEnergyRows) * d.W * d.positions() * d.Cq;
  // Value planes that fit in L2 (the blocks at their default dims): one parallel region, each
  // group of rows gathers every channel right after its weights.
  if (int64_t(d.C) * plane <= kCrissCrossFusedValueFloats) {
    const int64_t gatherMacsPerGroup = int64_t(kEnergyRows) * d.W * d.positions() * d.C;
    for (int64_t r0 = 0; r0 < rows; r0 += band) {
      const int64_t r1 = r0 + band < rows ? r0 + band : rows;
      at::parallel_for(0, (r1 - r0 + kEnergyRows - 1) / kEnergyRows,
                       grainRows(energyMacsPerGroup + gatherMacsPerGroup),
                       [&](int64_t begin, int64_t end) {
        for (int64_t group = begin; group < end; ++group) {
          const int64_t first = r0 + group * kEnergyRows;
          const int64_t last = first + kEnergyRows < r1 ? first + kEnergyRows : r1;
          weightsOfRows(r0, first, last);
          for (int64_t row = first; row < last; ++row) {
            const int64_t offset = row / d.H * d.C * plane;
            gatherChannels(workspace + (row - r0) * rowBlock, d.W, value + offset, d.C,
                           output + offset, d, int(row % d.H));
          }
        }
      });
    }
    return;
  }
  for (int64_t r0 = 0; r0 < rows; r0 += band) {  // bands of pixel rows, their weights in workspace
    const int64_t r1 = r0 + band < rows ? r0 + band : rows;
    // Pass 1, per group of rows: their attention weights, kept for pass 2.
    at::parallel_for(0, (r1 - r0 + kEnergyRows - 1) / kEnergyRows, grainRows(energyMacsPerGroup),
                     [&](int64_t begin, int64_t end) {
      for (int64_t group = begin; group < end; ++group) {
        const int64_t first = r0 + group * kEnergyRows;
        weightsOfRows(r0, first, first + kEnergyRows < r1 ? first + kEnergyRows : r1);
      }
    });
    // Pass 2, per (channel block, pixel row), rows innermost: a thread walks the rows of one
    // block of value planes, which their column parts read in full, so that block stays in L2
    // instead of all of value streaming from memory once per row.
    const int64_t bandRows = r1 - r0;
    const int64_t macsPerTask = int64_t(kCrissCrossChannelBlock) * d.W * d.positions();
    at::parallel_for(0, blocks * bandRows, grainRows(macsPerTask), [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t row = r0 + task % bandRows;
        const int n = int(row / d.H), y = int(row % d.H);
        const int c0 = int(task / bandRows) * kCrissCrossChannelBlock;
        const int channels =
            d.C - c0 < kCrissCrossChannelBlock ? d.C - c0 : kCrissCrossChannelBlock;
        const int64_t offset = (int64_t(n) * d.C + c0) * plane;
        gatherChannels(workspace + (row - r0) * rowBlock, d.W, value + offset, channels,
                       output + offset, d, y);
      }
    });
  }
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
                                          float*, const CrissCrossDims&);
template void crissCrossForwardCpu<c10::Half>(const c10::Half*, const c10::Half*,
                                              const c10::Half*, c10::Half*, float*,
                                              const CrissCrossDims&);
template void crissCrossBackwardCpu<float>(const float*, const float*, const float*, const float*,
                                           float*, float*, float*, float*, const CrissCrossDims&);
template void crissCrossBackwardCpu<c10::Half>(const c10::Half*, const c10::Half*,
                                               const c10::Half*, const c10::Half*, c10::Half*,
                                               c10::Half*, c10::Half*, float*,
                                               const CrissCrossDims&);

}  // namespace attn_deploy
