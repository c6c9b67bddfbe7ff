// Criss-cross attention (CCNet), per pixel and per output element, for host and device.
//
// Pixel (y, x) attends to the H+W-1 positions of its column and row, itself counted once, with one
// softmax over them. Positions are indexed p in [0, H+W):
//   p <  H : (p, x)      the column, which includes the pixel itself (p = y);
//   p >= H : (y, p - H)  the row; slot p = H + x (the pixel again) always gets weight 0.
// Keeping that dead slot gives every pixel the same positions, so neighbouring pixels (SIMD lanes
// on the CPU, a warp on the GPU) walk the same rows in lock-step.
//
// Attention weights (and their gradients) are float buffers addressed weights[p * pStride + x],
// the pointer offset to the pixel's row by the caller: the CUDA kernels and the CPU backward use a
// workspace [N, H+W, H, W] (pStride = H*W), the CPU forward a per-row scratch [H+W, W]
// (pStride = W).
// Functions are templates over the lane type P as described in host_device.h.
#pragma once

#include "host_device.h"

namespace attn_deploy {

struct CrissCrossDims {
  int N, Cq, C, H, W;  // query/key [N, Cq, H, W], value/output [N, C, H, W]

  AD_HOST_DEVICE int positions() const { return H + W; }  // including the dead self slot
  AD_HOST_DEVICE int64_t plane() const { return int64_t(H) * W; }
};

// Offset within a channel plane of position p of pixel (y, x).
AD_HOST_DEVICE int64_t crissCrossPositionAt(const CrissCrossDims& d, int y, int x, int p) {
  return p < d.H ? int64_t(p) * d.W + x : int64_t(y) * d.W + (p - d.H);
}

// Energies q(y, x).k(position p) of pixel (y, x) for the Tile positions p_i = first + i*step
// (i < Tile; those >= H+W are left 0): the GPU weights kernel's share of one thread, each query
// value loaded once for all Tile positions. The dead self slot p = H + x gets -inf.
// query/key = &query[n], &key[n].
template <int Tile, typename T>
AD_HOST_DEVICE void crissCrossEnergyTile(const T* query, const T* key, const CrissCrossDims& d,
                                         int y, int x, int first, int step, float (&e)[Tile]) {
  const int64_t plane = d.plane(), pixel = int64_t(y) * d.W + x;
  for (int i = 0; i < Tile; ++i) e[i] = 0.f;
  for (int c = 0; c < d.Cq; ++c) {
    const float q = toFloat(query[c * plane + pixel]);
    const T* keyPlane = key + c * plane;
    for (int i = 0; i < Tile; ++i) {
      const int p = first + i * step;
      if (p < d.positions()) e[i] += q * toFloat(keyPlane[crissCrossPositionAt(d, y, x, p)]);
    }
  }
  for (int i = 0; i < Tile; ++i) {
    if (first + i * step == d.H + x) e[i] = -__builtin_huge_valf();
  }
}

// The rest of the softmax once the energies e_p of a pack of pixels are in weights[p * pStride]
// (weights offset to the pixels) and maxEnergy is their max ignoring NaN (-inf to start): in place,
// weights = exp(e - max) / sum. A NaN energy, or every energy -inf, gives NaN weights.
template <typename P>
AD_HOST_DEVICE void crissCrossNormalizeAt(float* weights, int positions, int64_t pStride,
                                          P maxEnergy) {
  using L = Lanes<P>;
  P sum = L::splat(0.f);
  for (int p = 0; p < positions; ++p) {
    const P w = softmaxExp(L::load(weights + p * pStride) - maxEnergy);
    L::store(weights + p * pStride, w);
    sum += w;
  }
  const P inv = L::splat(1.f) / sum;
  for (int p = 0; p < positions; ++p) {
    L::store(weights + p * pStride, L::load(weights + p * pStride) * inv);
  }
}

// Softmax over the energies q(y,x).k(position p) of pixel (y, x), written to weights[p*pStride + x]
// (weights points at the pixel's row). query/key = &query[n], &key[n].
template <typename P, typename T>
AD_HOST_DEVICE void crissCrossWeightsAt(const T* query, const T* key, const CrissCrossDims& d,
                                        int y, int x, float* weights, int64_t pStride) {
  using L = Lanes<P>;
  const int64_t plane = d.plane(), pixel = int64_t(y) * d.W + x;
  // The dead self slot and the running max start at -inf: exp(-inf - max) is exactly 0 for a
  // finite max, and when every energy is -inf, exp(-inf - -inf) = NaN, the reference softmax's
  // answer (a finite stand-in would give the dead slot all the weight: output = value).
  const P masked = L::splat(-__builtin_huge_valf());
  weights += x;
  P maxEnergy = masked;
  for (int p = 0; p < d.H; ++p) {  // column (p, x)
    P e = L::splat(0.f);
    for (int c = 0; c < d.Cq; ++c) {
      e += L::load(query + c * plane + pixel) * L::load(key + c * plane + int64_t(p) * d.W + x);
    }
    L::store(weights + p * pStride, e);
    maxEnergy = e > maxEnergy ? e : maxEnergy;
  }
  for (int xr = 0; xr < d.W; ++xr) {  // row (y, xr)
    P e = L::splat(0.f);
    for (int c = 0; c < d.Cq; ++c) {
      const float k = toFloat(key[c * plane + int64_t(y) * d.W + xr]);
      e += L::load(query + c * plane + pixel) * L::splat(k);
    }
    e = L::iota(x) == xr ? masked : e;
    L::store(weights + (d.H + xr) * pStride, e);
    maxEnergy = e > maxEnergy ? e : maxEnergy;
  }
  crissCrossNormalizeAt<P>(weights, d.positions(), pStride, maxEnergy);
}

// sum_p weights[p] * plane_b(position p) for pixel (y, x) and Block consecutive channel planes
// plane_b = plane + b * channelStride, written to out[b]: the forward output (weights = attention,
// plane = &value[n, c]) and the query gradient (weights = d loss/d energy, plane = &key[n, c]).
// The channels of a block share each weight load, which is what bounds this loop.
template <typename P, int Block, typename T>
AD_HOST_DEVICE void crissCrossGatherAt(const float* weights, int64_t pStride, const T* plane,
                                       int64_t channelStride, const CrissCrossDims& d, int y, int x,
                                       P* out) {
  using L = Lanes<P>;
  weights += x;
  P acc[Block];
  for (int b = 0; b < Block; ++b) acc[b] = L::splat(0.f);
  for (int p = 0; p < d.H; ++p) {  // column (p, x)
    const P w = L::load(weights + p * pStride);
    const T* at = plane + int64_t(p) * d.W + x;
    for (int b = 0; b < Block; ++b) acc[b] += w * L::load(at + b * channelStride);
  }
  const float* rowWeights = weights + d.H * pStride;
  const T* row = plane + int64_t(y) * d.W;
  for (int xr = 0; xr < d.W; ++xr) {  // row (y, xr)
    const P w = L::load(rowWeights + xr * pStride);
    for (int b = 0; b < Block; ++b) acc[b] += w * L::splat(toFloat(row[b * channelStride + xr]));
  }
  for (int b = 0; b < Block; ++b) out[b] = acc[b];
}

// The transpose of crissCrossGatherAt: for position (yt, xt), the sum over every pixel whose cross
// contains it of (that pixel's weight for it) * plane(pixel). Gives the value gradient (weights =
// attention, plane = &grad_out[n, c]) and the key gradient (weights = d loss / d energy,
// plane = &query[n, c]). weights = &workspace[n], laid out [H+W, H, W], serves the column part;
// the row part reads rowWeights[x * rowStrideX + xt * rowStrideXt] = workspace[n, H + xt, yt, x]
// (the weight pixel (yt, x) gives position (yt, xt)): on the GPU rowWeights points into the
// workspace (strides 1 and H*W); the CPU transposes the W x W block of row yt first (strides W
// and 1) so that a pack of neighbouring xt reads contiguous memory.
template <typename P, typename T>
AD_HOST_DEVICE P crissCrossScatterAt(const float* weights, const float* rowWeights,
                                     int64_t rowStrideX, int64_t rowStrideXt, const T* plane,
                                     const CrissCrossDims& d, int yt, int xt) {
  using L = Lanes<P>;
  P acc = L::splat(0.f);
  // Pixels (y, xt) of the column hold (yt, xt) at position p = yt.
  const float* columnWeights = weights + yt * d.plane();
  for (int y = 0; y < d.H; ++y) {
    const int64_t pixel = int64_t(y) * d.W + xt;
    acc += L::load(columnWeights + pixel) * L::load(plane + pixel);
  }
  // Pixels (yt, x) of the row hold it at p = H + xt (weight 0 for x = xt itself).
  rowWeights += xt * rowStrideXt;
  const T* row = plane + int64_t(yt) * d.W;
  for (int x = 0; x < d.W; ++x) {
    acc += L::loadStrided(rowWeights + x * rowStrideX, rowStrideXt) * L::splat(toFloat(row[x]));
  }
  return acc;
}

// energyGrad[p * pStride] += sum_{b < Block} gradOut[b, y, x] * value[b, position p] for pixel
// (y, x) (energyGrad already offset by x), Block channels at a time so that each energy-gradient
// load and store serves several multiply-adds.
template <typename P, int Block, typename T>
AD_HOST_DEVICE void crissCrossAddValueDots(const T* gradOut, const T* value,
                                           const CrissCrossDims& d, int y, int x,
                                           float* energyGrad, int64_t pStride) {
  using L = Lanes<P>;
  const int64_t plane = d.plane(), pixel = int64_t(y) * d.W + x;
  P g[Block];
  for (int b = 0; b < Block; ++b) g[b] = L::load(gradOut + b * plane + pixel);
  for (int p = 0; p < d.H; ++p) {  // column (p, x)
    P da = L::load(energyGrad + p * pStride);
    for (int b = 0; b < Block; ++b) da += g[b] * L::load(value + b * plane + int64_t(p) * d.W + x);
    L::store(energyGrad + p * pStride, da);
  }
  const T* row = value + int64_t(y) * d.W;
  for (int xr = 0; xr < d.W; ++xr) {  // row (y, xr)
    P da = L::load(energyGrad + (d.H + xr) * pStride);
    for (int b = 0; b < Block; ++b) da += g[b] * L::splat(toFloat(row[b * plane + xr]));
    L::store(energyGrad + (d.H + xr) * pStride, da);
  }
}

// Backward through the softmax of pixel (y, x). Given its attention weights (as written by
// crissCrossWeightsAt), writes d loss / d energy to energyGrad[p * pStride + x]:
//   da_p = sum_c gradOut[c, y, x] * value[c, position p],   de_p = a_p * (da_p - sum_q a_q da_q).
template <typename P, typename T>
AD_HOST_DEVICE void crissCrossEnergyGradAt(const float* weights, const T* gradOut, const T* value,
                                           const CrissCrossDims& d, int y, int x,
                                           float* energyGrad, int64_t pStride) {
  using L = Lanes<P>;
  const int64_t plane = d.plane();
  weights += x;
  energyGrad += x;
  for (int p = 0; p < d.positions(); ++p) L::store(energyGrad + p * pStride, L::splat(0.f));
  int c = 0;
  for (; c + 4 <= d.C; c += 4) {
    crissCrossAddValueDots<P, 4>(gradOut + c * plane, value + c * plane, d, y, x, energyGrad,
                                 pStride);
  }
  for (; c < d.C; ++c) {
    crissCrossAddValueDots<P, 1>(gradOut + c * plane, value + c * plane, d, y, x, energyGrad,
                                 pStride);
  }
  P dot = L::splat(0.f);
  for (int p = 0; p < d.positions(); ++p) {
    dot += L::load(weights + p * pStride) * L::load(energyGrad + p * pStride);
  }
  for (int p = 0; p < d.positions(); ++p) {
    const P a = L::load(weights + p * pStride);
    L::store(energyGrad + p * pStride, a * (L::load(energyGrad + p * pStride) - dot));
  }
}

}  // namespace attn_deploy
