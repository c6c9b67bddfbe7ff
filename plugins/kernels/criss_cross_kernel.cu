// CUDA kernels for criss-cross attention, each thread calling shared functions of
// criss_cross_math.h (the host tests and the CPU build run the same functions). Forward, per tile
// of the batch (bounded workspace): a block per 32-pixel row segment computes the softmax weights
// with kGroups threads per pixel splitting its H+W positions; the gather reuses each weight load
// across kGatherChannels channels. Backward: one thread per pixel for the softmax backward, one per
// output element for the weighted sums, over a full [2, N, H+W, H, W] workspace.
#include "criss_cross_kernel.h"

#include "criss_cross_math.h"
#include "criss_cross_tiling.h"
#include "launch_config.h"

namespace attn_deploy {
namespace {

// Forward, per tile of the batch (criss_cross_tiling.h): `items` batch items from n0, `rows` pixel
// rows from y0, attention weights float [items, H+W, rows, W] (pStride = rows * W).
struct Tile {
  int n0, items, y0, rows;
};

constexpr int kRowPixels = 32;  // pixels of a row per block: a warp, coalesced along x
constexpr int kGroups = 8;      // weights: position groups per pixel; gather: channel chunks
constexpr int kEnergyTile = 8;  // energies one thread accumulates per pass over Cq
constexpr int kGatherChannels = 4;  // channels sharing each weight load in the gather

// Softmax weights of the tile's pixels. Block (32, kGroups): threadIdx.x = pixel of a 32-pixel
// row segment, threadIdx.y = position group: thread (x, g) computes the energies of positions
// g, g + kGroups, ... (kEnergyTile at a time, each query value loaded once for them) and writes
// them to the workspace; the block then reduces max and sum over the groups in shared memory.
// Grid: (row segments, rows, items), with loops where the tile exceeds the grid limits.
template <typename T>
__global__ void crissCrossWeightsKernel(const T* query, const T* key, float* weights,
                                        CrissCrossDims d, Tile tile) {
  __shared__ float partial[kGroups][kRowPixels];
  const int g = threadIdx.y, lane = threadIdx.x;
  const int x = blockIdx.x * kRowPixels + lane;
  const bool active = x < d.W;
  const int positions = d.positions();
  const int64_t plane = d.plane(), pStride = int64_t(tile.rows) * d.W;
  for (int item = blockIdx.z; item < tile.items; item += gridDim.z) {
    const int n = tile.n0 + item;
    const T* q = query + int64_t(n) * d.Cq * plane;
    const T* k = key + int64_t(n) * d.Cq * plane;
    for (int row = blockIdx.y; row < tile.rows; row += gridDim.y) {  // uniform in the block
      const int y = tile.y0 + row;
      float* w = weights + int64_t(item) * positions * pStride + int64_t(row) * d.W + x;
      float localMax = -__builtin_huge_valf();
      if (active) {
        for (int first = g; first < positions; first += kGroups * kEnergyTile) {
          float e[kEnergyTile];
          crissCrossEnergyTile<kEnergyTile>(q, k, d, y, x, first, kGroups, e);
          for (int i = 0; i < kEnergyTile; ++i) {
            const int p = first + i * kGroups;
            if (p < positions) {
              w[p * pStride] = e[i];
              localMax = e[i] > localMax ? e[i] : localMax;  // NaN reaches the weights via exp
            }
          }
        }
      }
      partial[g][lane] = localMax;
      __syncthreads();
      float maxEnergy = -__builtin_huge_valf();
      for (int j = 0; j < kGroups; ++j) {
        maxEnergy = partial[j][lane] > maxEnergy ? partial[j][lane] : maxEnergy;
      }
      __syncthreads();
      float localSum = 0.f;
      if (active) {
        for (int p = g; p < positions; p += kGroups) {
          const float e = softmaxExp(w[p * pStride] - maxEnergy);  // -inf everywhere: NaN
          w[p * pStride] = e;
          localSum += e;
        }
      }
      partial[g][lane] = localSum;
      __syncthreads();
      float sum = 0.f;
      for (int j = 0; j < kGroups; ++j) sum += partial[j][lane];
      __syncthreads();
      const float inv = 1.f / sum;
      if (active) {
        for (int p = g; p < positions; p += kGroups) w[p * pStride] *= inv;
      }
    }
  }
}

// output[n, c, y, x] = sum_p weights[p, y, x] * value[n, c, position p] over the tile. Block
// (32, kGroups): threadIdx.x = pixel, threadIdx.y = chunk of kGatherChannels channels, which share
// every weight load (crissCrossGatherAt). Grid: (row segments, rows x channel blocks, items).
template <typename T>
__global__ void crissCrossGatherTileKernel(const float* weights, const T* value, T* output,
                                           CrissCrossDims d, Tile tile) {
  constexpr int perBlock = kGroups * kGatherChannels;
  const int x = blockIdx.x * kRowPixels + threadIdx.x;
  if (x >= d.W) return;  // no shared memory or barriers below
  const int channelBlocks = (d.C + perBlock - 1) / perBlock;
  const int64_t plane = d.plane(), pStride = int64_t(tile.rows) * d.W;
  const int64_t rowBlocks = int64_t(tile.rows) * channelBlocks;
  for (int item = blockIdx.z; item < tile.items; item += gridDim.z) {
    const int n = tile.n0 + item;
    for (int64_t rb = blockIdx.y; rb < rowBlocks; rb += gridDim.y) {
      const int row = int(rb / channelBlocks), y = tile.y0 + row;
      const int c0 = int(rb % channelBlocks) * perBlock + threadIdx.y * kGatherChannels;
      const float* w = weights + int64_t(item) * d.positions() * pStride + int64_t(row) * d.W;
      const T* v = value + (int64_t(n) * d.C + c0) * plane;
      T* o = output + (int64_t(n) * d.C + c0) * plane + int64_t(y) * d.W + x;
      if (c0 + kGatherChannels <= d.C) {
        float out[kGatherChannels];
        crissCrossGatherAt<float, kGatherChannels>(w, pStride, v, plane, d, y, x, out);
        for (int b = 0; b < kGatherChannels; ++b) o[b * plane] = fromFloat<T>(out[b]);
      } else {
        for (int b = 0; c0 + b < d.C; ++b) {
          float out;
          crissCrossGatherAt<float, 1>(w, pStride, v + b * plane, plane, d, y, x, &out);
          o[b * plane] = fromFloat<T>(out);
        }
      }
    }
  }
}

// out[n, c, y, x] = sum_p weights[n, p, y, x] * source[n, c, position p] over the whole batch
// (weights [N, H+W, H, W]); `channels` = C of source. The backward's query gradient.
template <typename T>
__global__ void crissCrossGatherKernel(const float* weights, const T* source, T* output,
                                       int channels, CrissCrossDims d) {
  const int64_t plane = d.plane(), total = int64_t(d.N) * channels * plane;
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int64_t nc = idx / plane;
    const int n = int(nc / channels), y = int(idx % plane / d.W), x = int(idx % d.W);
    const float* w = weights + int64_t(n) * d.positions() * plane + int64_t(y) * d.W;
    float out;
    crissCrossGatherAt<float, 1>(w, plane, source + nc * plane, plane, d, y, x, &out);
    output[idx] = fromFloat<T>(out);
  }
}

// Per pixel: attention weights again, then d loss / d energy.
template <typename T>
__global__ void crissCrossEnergyGradKernel(const T* gradOutput, const T* query, const T* key,
                                           const T* value, float* weights, float* energyGrad,
                                           CrissCrossDims d) {
  const int64_t plane = d.plane(), total = int64_t(d.N) * plane;
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int n = int(idx / plane), y = int(idx % plane / d.W), x = int(idx % d.W);
    const int64_t rowOffset = int64_t(n) * d.positions() * plane + int64_t(y) * d.W;
    const int64_t qk = int64_t(n) * d.Cq * plane, vo = int64_t(n) * d.C * plane;
    crissCrossWeightsAt<float>(query + qk, key + qk, d, y, x, weights + rowOffset, plane);
    crissCrossEnergyGradAt<float>(weights + rowOffset, gradOutput + vo, value + vo, d, y, x,
                                  energyGrad + rowOffset, plane);
  }
}

// grad value (channels [0, C): attention x grad output) and grad key (channels [C, C+Cq): energy
// gradient x query), gathered per position.
template <typename T>
__global__ void crissCrossScatterKernel(const float* weights, const float* energyGrad,
                                        const T* gradOutput, const T* query, T* gradValue,
                                        T* gradKey, CrissCrossDims d) {
  // C + Cq in 64 bits: each fits in int32, their sum need not.
  const int64_t channels = int64_t(d.C) + d.Cq;
  const int64_t plane = d.plane(), total = int64_t(d.N) * channels * plane;
  for (int64_t idx = firstIndex(); idx < total; idx += indexStride()) {
    const int64_t nc = idx / plane;
    const int n = int(nc / channels), c = int(nc % channels);
    const int y = int(idx % plane / d.W), x = int(idx % d.W);
    const int64_t workspaceOffset = int64_t(n) * d.positions() * plane;
    const bool valueChannel = c < d.C;
    const float* w = (valueChannel ? weights : energyGrad) + workspaceOffset;
    const float* rowWeights = w + d.H * plane + int64_t(y) * d.W;
    if (valueChannel) {
      const int64_t at = (int64_t(n) * d.C + c) * plane;
      gradValue[at + idx % plane] = fromFloat<T>(
          crissCrossScatterAt<float>(w, rowWeights, 1, plane, gradOutput + at, d, y, x));
    } else {
      const int64_t at = (int64_t(n) * d.Cq + (c - d.C)) * plane;
      gradKey[at + idx % plane] = fromFloat<T>(
          crissCrossScatterAt<float>(w, rowWeights, 1, plane, query + at, d, y, x));
    }
  }
}

int64_t weightCount(int N, int H, int W) { return int64_t(N) * (int64_t(H) + W) * H * W; }

bool crissCrossArgumentsValid(int N, int Cq, int C, int H, int W) {
  return N >= 0 && Cq >= 0 && C >= 0 && H >= 0 && W >= 0;
}

}  // namespace
}  // namespace attn_deploy

using attn_deploy::CrissCrossDims;

size_t crissCrossAttentionWorkspaceSize(int N, int Cq, int C, int H, int W, size_t budget) {
  if (!attn_deploy::crissCrossArgumentsValid(N, Cq, C, H, W)) return 0;
  if (int64_t(N) * H * W == 0) return 0;
  const int64_t limit = budget > size_t(INT64_MAX) ? INT64_MAX : int64_t(budget);
  return size_t(attn_deploy::crissCrossWorkspaceBytes(N, H, W, limit));
}

size_t crissCrossAttentionBackwardWorkspaceSize(int N, int Cq, int C, int H, int W) {
  if (!attn_deploy::crissCrossArgumentsValid(N, Cq, C, H, W)) return 0;
  return 2 * size_t(attn_deploy::weightCount(N, H, W)) * sizeof(float);
}

template <typename T>
cudaError_t launchCrissCrossAttention(const T* query, const T* key, const T* value, T* output,
                                      int N, int Cq, int C, int H, int W, void* workspace,
                                      size_t workspaceBytes, cudaStream_t stream) {
  using namespace attn_deploy;
  if (!crissCrossArgumentsValid(N, Cq, C, H, W)) return cudaErrorInvalidValue;
  const CrissCrossDims d{N, Cq, C, H, W};
  const int64_t pixels = int64_t(N) * d.plane();
  if (pixels == 0 || C == 0) return cudaSuccess;
  if ((Cq > 0 && (query == nullptr || key == nullptr)) || value == nullptr || output == nullptr ||
      workspace == nullptr) {
    return cudaErrorInvalidValue;
  }
  const int64_t bytes = workspaceBytes > size_t(INT64_MAX) ? INT64_MAX : int64_t(workspaceBytes);
  const CrissCrossTiling tiling = crissCrossTiling(N, H, W, bytes);
  if (tiling.items == 0) return cudaErrorInvalidValue;  // not even one row fits
  float* weights = static_cast<float*>(workspace);
  const unsigned segments = unsigned((W + kRowPixels - 1) / kRowPixels);
  const int64_t channelBlocks = (C + kGroups * kGatherChannels - 1) / (kGroups * kGatherChannels);
  const dim3 block(kRowPixels, kGroups);
  for (int n0 = 0; n0 < N; n0 += int(tiling.items)) {
    const int items = int(N - n0 < tiling.items ? N - n0 : tiling.items);
    for (int y0 = 0; y0 < H; y0 += int(tiling.rows)) {
      const int rows = int(H - y0 < tiling.rows ? H - y0 : tiling.rows);
      const Tile tile{n0, items, y0, rows};
      const unsigned gridItems = unsigned(items < 65535 ? items : 65535);
      const dim3 weightsGrid(segments, unsigned(rows < 65535 ? rows : 65535), gridItems);
      crissCrossWeightsKernel<T><<<weightsGrid, block, 0, stream>>>(query, key, weights, d, tile);
      const int64_t rowBlocks = int64_t(rows) * channelBlocks;
      const dim3 gatherGrid(segments, unsigned(rowBlocks < 65535 ? rowBlocks : 65535), gridItems);
      crissCrossGatherTileKernel<T><<<gatherGrid, block, 0, stream>>>(weights, value, output, d,
                                                                      tile);
      const cudaError_t status = cudaGetLastError();
      if (status != cudaSuccess) return status;
    }
  }
  return cudaSuccess;
}

template <typename T>
cudaError_t launchCrissCrossAttentionBackward(const T* gradOutput, const T* query, const T* key,
                                              const T* value, T* gradQuery, T* gradKey,
                                              T* gradValue, int N, int Cq, int C, int H, int W,
                                              void* workspace, cudaStream_t stream) {
  using namespace attn_deploy;
  if (!crissCrossArgumentsValid(N, Cq, C, H, W)) return cudaErrorInvalidValue;
  const CrissCrossDims d{N, Cq, C, H, W};
  const int64_t pixels = int64_t(N) * d.plane();
  const int64_t channels = int64_t(C) + Cq;  // may exceed int32
  if (pixels == 0 || channels == 0) return cudaSuccess;
  const bool queryKeyMissing =
      query == nullptr || key == nullptr || gradQuery == nullptr || gradKey == nullptr;
  const bool valueMissing = gradOutput == nullptr || value == nullptr || gradValue == nullptr;
  if ((Cq > 0 && queryKeyMissing) || (C > 0 && valueMissing) || workspace == nullptr) {
    return cudaErrorInvalidValue;
  }
  float* weights = static_cast<float*>(workspace);
  float* energyGrad = weights + weightCount(N, H, W);
  crissCrossEnergyGradKernel<T><<<blocksFor(pixels), kThreads, 0, stream>>>(
      gradOutput, query, key, value, weights, energyGrad, d);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) return status;
  if (Cq > 0) {
    crissCrossGatherKernel<T><<<blocksFor(pixels * Cq), kThreads, 0, stream>>>(
        energyGrad, key, gradQuery, Cq, d);
    status = cudaGetLastError();
    if (status != cudaSuccess) return status;
  }
  crissCrossScatterKernel<T><<<blocksFor(pixels * channels), kThreads, 0, stream>>>(
      weights, energyGrad, gradOutput, query, gradValue, gradKey, d);
  return cudaGetLastError();
}

template cudaError_t launchCrissCrossAttention<float>(const float*, const float*, const float*,
                                                      float*, int, int, int, int, int, void*,
                                                      size_t, cudaStream_t);
template cudaError_t launchCrissCrossAttention<__half>(const __half*, const __half*, const __half*,
                                                       __half*, int, int, int, int, int, void*,
                                                       size_t, cudaStream_t);
template cudaError_t launchCrissCrossAttentionBackward<float>(
    const float*, const float*, const float*, const float*, float*, float*, float*, int, int, int,
    int, int, void*, cudaStream_t);
template cudaError_t launchCrissCrossAttentionBackward<__half>(
    const __half*, const __half*, const __half*, const __half*, __half*, __half*, __half*, int,
    int, int, int, int, void*, cudaStream_t);
