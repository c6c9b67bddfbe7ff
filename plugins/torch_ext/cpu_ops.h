// CPU implementations of the native ops on raw, contiguous NCHW buffers (no torch tensor types, so
// the files that define them compile quickly). ops.cpp validates the tensors and calls these.
#pragma once

#include "carafe_math.h"
#include "criss_cross_math.h"

namespace attn_deploy {

template <typename T>
void carafeForwardCpu(const T* features, const T* masks, T* output, const CarafeDims& d);

template <typename T>
void carafeBackwardCpu(const T* gradOut, const T* features, const T* masks, T* gradFeatures,
                       T* gradMasks, const CarafeDims& d);

// workspace: crissCrossForwardCpuWorkspace(d) floats.
template <typename T>
void crissCrossForwardCpu(const T* query, const T* key, const T* value, T* output,
                          float* workspace, const CrissCrossDims& d);

// The forward keeps the attention weights of a band of pixel rows (n, y), one [H+W, W] block
// each: as many rows as fit in 8 MiB (the whole batch of a CCNet head at 64x64), at least one.
inline int64_t crissCrossForwardBandRows(const CrissCrossDims& d) {
  constexpr int64_t kBudgetFloats = int64_t(1) << 21;
  const int64_t rows = int64_t(d.N) * d.H, rowBlock = int64_t(d.positions()) * d.W;
  const int64_t band = rowBlock > 0 ? kBudgetFloats / rowBlock : rows;
  return band < 1 ? 1 : (band < rows ? band : rows);
}

inline int64_t crissCrossForwardCpuWorkspace(const CrissCrossDims& d) {
  return crissCrossForwardBandRows(d) * d.positions() * d.W;
}

// Value channels one forward task reads: 32 planes of a 64 x 64 map are 512 KiB, within L2.
constexpr int kCrissCrossChannelBlock = 32;

// Up to this many value floats (256 KiB) per batch item, the forward computes and uses each
// group of rows' weights in one task (one parallel region); above, in two passes over the band,
// the second per block of kCrissCrossChannelBlock channels.
constexpr int64_t kCrissCrossFusedValueFloats = int64_t(1) << 16;

// workspace: crissCrossBackwardCpuWorkspace(d) floats.
template <typename T>
void crissCrossBackwardCpu(const T* gradOut, const T* query, const T* key, const T* value,
                           T* gradQuery, T* gradKey, T* gradValue, float* workspace,
                           const CrissCrossDims& d);

// Attention weights and energy gradients of one batch item: 2 x [H+W, H, W] floats.
inline int64_t crissCrossBackwardCpuWorkspace(const CrissCrossDims& d) {
  return 2 * int64_t(d.positions()) * d.plane();
}

template <typename P>
struct LaneTag {
  using type = P;
};

// Runs body(LaneTag<P>{}, x) over a row of `width` pixels: SIMD packs (P = FloatPack) while they
// fit, then single pixels (P = float, the GPU's instantiation) for the tail.
template <typename Body>
inline void forEachLanePack(int width, const Body& body) {
  int x = 0;
  for (; x + kPackLanes <= width; x += kPackLanes) body(LaneTag<FloatPack>{}, x);
  for (; x < width; ++x) body(LaneTag<float>{}, x);
}

// Rows per parallel task: enough work (~64k multiply-adds) to pay for handing out a chunk.
inline int64_t grainRows(int64_t macsPerRow) {
  const int64_t rows = 65536 / (macsPerRow > 0 ? macsPerRow : 1);
  return rows > 0 ? rows : 1;
}

}  // namespace attn_deploy
