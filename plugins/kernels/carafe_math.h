// CARAFE (Content-Aware ReAssembly of FEatures), one output element at a time, for host and device.
//
//   out[n,c,y,x] = sum_{i,j < k} features[n, c, y/s + i - r, x/s + j - r]
//                                * masks[n, (c / (C/G))*k*k + i*k + j, y, x],   r = (k-1)/2,
// features outside the image count as 0. Each function computes ONE element of its output (forward
// output, grad of features, grad of masks) -- or, with P = FloatPack on the CPU, the same element
// for a few neighbouring x at once (see host_device.h). Every function gathers, never scatters: no
// atomics, deterministic results, and the CPU loops and CUDA kernels share the body unchanged.
// Out-of-image reads use a clamped index and a select, so lanes never branch apart.
#pragma once

#include "host_device.h"

namespace attn_deploy {

struct CarafeDims {
  int N, C, H, W;  // features [N, C, H, W]
  int kernelSize, groupSize, scaleFactor;

  AD_HOST_DEVICE int outH() const { return H * scaleFactor; }
  AD_HOST_DEVICE int outW() const { return W * scaleFactor; }
  AD_HOST_DEVICE int64_t outPlane() const { return int64_t(outH()) * outW(); }
  AD_HOST_DEVICE int64_t inPlane() const { return int64_t(H) * W; }
  AD_HOST_DEVICE int taps() const { return kernelSize * kernelSize; }
  AD_HOST_DEVICE int channelsPerGroup() const { return C / groupSize; }
  AD_HOST_DEVICE int radius() const { return (kernelSize - 1) / 2; }
};

// out[c0 + b, y, x + px] for b < count (<= CB) channels of one group and PX (1 or 2) neighbouring
// output pixels: what one CUDA thread computes. Each of the pixels' k*k mask values is loaded
// once and serves all CB channels (a pair load for PX = 2: x even, outW even). Out-of-image
// features count as 0 and are multiplied like the others, so a NaN/Inf mask value there gives NaN
// as in the reference (0 * NaN). featureGroup = &features[n, c0, 0, 0]; maskPixel =
// &masks[n, g*k*k, y, x]; tapStride = H*s*W*s.
template <int CB, int PX, typename TF, typename TM>
AD_HOST_DEVICE void carafeOutputChannels(const TF* featureGroup, int count, const TM* maskPixel,
                                         int64_t tapStride, const CarafeDims& d, int y, int x,
                                         float (&out)[CB][PX]) {
  const int k = d.kernelSize, r = d.radius(), s = d.scaleFactor, iy = y / s;
  const int64_t inPlane = d.inPlane();
  int ix[PX];
  for (int px = 0; px < PX; ++px) ix[px] = (x + px) / s;
  for (int b = 0; b < CB; ++b) {
    for (int px = 0; px < PX; ++px) out[b][px] = 0.f;
  }
  for (int i = 0; i < k; ++i) {
    const int fy = iy + i - r;
    const bool rowInside = fy >= 0 && fy < d.H;
    for (int j = 0; j < k; ++j) {
      float m[PX];
      const TM* tap = maskPixel + int64_t(i * k + j) * tapStride;
      if constexpr (PX == 2) {
        loadPair(tap, m[0], m[1]);
      } else {
        m[0] = toFloat(tap[0]);
      }
      bool inside[PX];
      int64_t at[PX];
      for (int px = 0; px < PX; ++px) {
        const int fx = ix[px] + j - r;
        inside[px] = rowInside && fx >= 0 && fx < d.W;
        at[px] = inside[px] ? int64_t(fy) * d.W + fx : 0;
      }
      for (int b = 0; b < CB; ++b) {
        if (b >= count) break;
        const TF* plane = featureGroup + b * inPlane;
        const float f0 = inside[0] ? toFloat(plane[at[0]]) : 0.f;
        out[b][0] += f0 * m[0];
        if constexpr (PX == 2) {  // both pixels read one feature unless x + 1 starts a new one
          const float f1 = ix[1] == ix[0] ? f0 : (inside[1] ? toFloat(plane[at[1]]) : 0.f);
          out[b][1] += f1 * m[1];
        }
      }
    }
  }
}

// d loss / d features[n, c, fy, fx]: every output pixel whose window covers (fy, fx), i.e. the
// s x s outputs of the low-res pixel (fy - i + r, fx - j + r), weighted by their tap (i, j).
// gradOutPlane = &grad_out[n, c, 0, 0]; maskGroup = &masks[n, g*k*k, 0, 0] for the group g of c.
template <typename P, typename T>
AD_HOST_DEVICE P carafeGradFeatureAt(const T* gradOutPlane, const T* maskGroup,
                                     const CarafeDims& d, int fy, int fx) {
  using L = Lanes<P>;
  const int k = d.kernelSize, r = d.radius(), s = d.scaleFactor, outW = d.outW();
  const int64_t tapStride = d.outPlane();
  const int iBegin = fy + r - (d.H - 1) > 0 ? fy + r - (d.H - 1) : 0;  // keeps fy - i + r < H
  const int iEnd = fy + r + 1 < k ? fy + r + 1 : k;                    // keeps fy - i + r >= 0
  const typename L::Int lanes = L::iota(fx);
  const P zero = L::splat(0.f);
  P acc = zero;
  for (int i = iBegin; i < iEnd; ++i) {
    const int iy = fy - i + r;
    for (int j = 0; j < k; ++j) {
      const typename L::Int ix = lanes + (r - j);
      const typename L::Int column = L::clampIndex(ix, d.W) * s;
      const T* maskTap = maskGroup + (i * k + j) * tapStride;
      P tapSum = zero;
      for (int dy = 0; dy < s; ++dy) {
        const int64_t row = int64_t(iy * s + dy) * outW;
        for (int dx = 0; dx < s; ++dx) {
          tapSum += L::gather(gradOutPlane + row + dx, column) *
                    L::gather(maskTap + row + dx, column);
        }
      }
      acc += ((ix >= 0) & (ix < d.W)) ? tapSum : zero;
    }
  }
  return acc;
}

// d loss / d masks[n, g*k*k + tap, y, x]: the tap's feature times grad_out, summed over the
// channels of group g. featureGroup = &features[n, g*C/G, 0, 0]; gradOutRows[c * channelStride + x]
// is grad_out[n, g*C/G + c, y, x]: on the GPU gradOutRows = &grad_out[n, g*C/G, y, 0] and
// channelStride = H*s*W*s, the CPU copies the rows into a contiguous buffer (channelStride = W*s).
template <typename P, typename TF, typename TG>
AD_HOST_DEVICE P carafeGradMaskAt(const TG* gradOutRows, int64_t channelStride,
                                  const TF* featureGroup, const CarafeDims& d, int tap, int y,
                                  int x) {
  using L = Lanes<P>;
  const int k = d.kernelSize, r = d.radius(), s = d.scaleFactor;
  const int fy = y / s + tap / k - r, ix = x / s;
  if (fy < 0 || fy >= d.H) return L::splat(0.f);  // the same for every lane
  const typename L::Spread spread = L::spread(x - ix * s, s);
  const TF* featureRow = featureGroup + int64_t(fy) * d.W;
  P acc = L::splat(0.f);
  for (int c = 0; c < d.channelsPerGroup(); ++c) {
    acc += L::load(gradOutRows + c * channelStride + x) *
           L::loadSpread(featureRow + c * d.inPlane(), d.W, ix + tap % k - r, spread);
  }
  return acc;
}

}  // namespace attn_deploy
