// CARAFE on the CPU. Forward: its own loop nest (below), which loads each output pixel's k*k mask
// values once and runs the channels innermost. Backward: threads over rows, SIMD packs over the
// pixels of a row, through the per-element functions of carafe_math.h that the CUDA kernels run.
// Its packs read mask and grad_output rows from a contiguous copy: in place, rows of neighbouring
// planes lie a power of two apart, fall into one cache set and evict each other on every pixel.
// Row tails (P = float) read them in place, with the GPU's addressing, so the CPU tests cover that
// too.
#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#if defined(__SSE__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cpu_ops.h"

namespace attn_deploy {

namespace {

constexpr int L = kPackLanes;
using Pack = Lanes<FloatPack>;

// Outputs at least this large are written with non-temporal (streaming) stores: the kernel never
// reads them back, and a normal store first reads each line from memory (16 MiB of extra reads at
// the CARAFE FPN size, which made two threads memory-bound). Smaller outputs stay in the cache for
// the next op.
constexpr int64_t kStreamOutputBytes = int64_t(4) << 20;

// Stores one pack; streaming when asked and the address is aligned to the pack (the streaming
// instructions require it). Only float outputs stream; fp16 ones convert lane by lane anyway.
template <typename T>
inline void storePack(T* p, FloatPack v, bool stream) {
  if constexpr (std::is_same_v<T, float>) {
    if (stream && reinterpret_cast<uintptr_t>(p) % sizeof(FloatPack) == 0) {
#if defined(__AVX512F__)
      _mm512_stream_ps(p, reinterpret_cast<__m512>(v));
      return;
#elif defined(__AVX__)
      _mm256_stream_ps(p, reinterpret_cast<__m256>(v));
      return;
#elif defined(__SSE__)
      _mm_stream_ps(p, reinterpret_cast<__m128>(v));
      return;
#endif
    }
  }
  Pack::store(p, v);
}

// Orders this thread's streaming stores before whatever follows the parallel region.
inline void fenceStreamingStores() {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

// Zero-padded float rows of the features for the k window rows of one low-res row, a ring per
// thread: [C][k][Wp] with Wp = ceil(W/L)*L + 2r; padded row py = fy + r (fy the feature row) sits
// in slot py % k, image column fx at r + fx. Every tap of every lane then reads memory: taps
// outside the image read 0, so a NaN or Inf mask value there gives NaN as in the reference
// (0 * NaN), and the lanes of the last pack that run past W read zeros, not a neighbour's pixels.
// Moving down one row refills one slot per channel, just before the rows are read (in cache; a
// padded copy of all the features cost a pass of its own over memory).
template <typename T>
class PaddedRows {
 public:
  PaddedRows(const T* features, const CarafeDims& d, int Wp)
      : features_(features), d_(d), Wp_(Wp), rows_(size_t(d.C) * d.kernelSize * Wp) {}

  // Fills the ring with padded rows iy .. iy + k - 1 of image n (feature rows iy - r .. iy + r).
  void moveTo(int n, int iy) {
    const int k = d_.kernelSize;
    const int first = (n == n_ && iy == iy_ + 1) ? iy + k - 1 : iy;
    for (int py = first; py < iy + k; ++py) fill(n, py);
    n_ = n;
    iy_ = iy;
  }
  // Offset of padded row py (any channel) from the start of its channel's rows.
  int64_t rowOffset(int py) const { return int64_t(py % d_.kernelSize) * Wp_; }
  int64_t channelStride() const { return int64_t(d_.kernelSize) * Wp_; }
  // &row[channel c, padded row 0 of the ring's order, column x]: add rowOffset(py) for row py.
  const float* channel(int c, int x) const { return rows_.data() + c * channelStride() + x; }

 private:
  void fill(int n, int py) {
    const int r = d_.radius(), fy = py - r;
    for (int c = 0; c < d_.C; ++c) {
      float* row = rows_.data() + c * channelStride() + rowOffset(py);
      if (fy < 0 || fy >= d_.H) {
        std::fill(row, row + Wp_, 0.f);
        continue;
      }
      const T* in = features_ + ((int64_t(n) * d_.C + c) * d_.H + fy) * d_.W;
      std::fill(row, row + r, 0.f);
      for (int fx = 0; fx < d_.W; ++fx) row[r + fx] = toFloat(in[fx]);
      std::fill(row + r + d_.W, row + Wp_, 0.f);
    }
  }

  const T* features_;
  const CarafeDims& d_;
  int Wp_;
  std::vector<float> rows_;
  int n_ = -1, iy_ = -1;
};

// Output phases: low-res pixel (iy, ix) feeds the s*s outputs (iy*s + dy, ix*s + dx), phase
// p = dy*s + dx. A block of PB phases shares every feature load (PB = 4 covers s = 2 whole).
inline int phaseBlock(int s) { return s == 1 ? 1 : (s % 2 == 0 ? 4 : (s % 3 == 0 ? 3 : 1)); }

// Channels per block (each mask load serves them all): as many accumulators as the registers
// hold, CB * PB of them, beside the CB feature and PB mask vectors.
template <int PB>
constexpr int channelBlock() {
  return (L == 16 ? 16 : 8) / (PB == 1 ? 2 : 4);
}

// acc[b][p] = sum over the k*k taps of feature (channel b) * mask (phase p), for one pack of L
// low-res pixels. rows + tapRows[i] = &padded row iy + i of channel c0 at column ix0 (the tap
// (i, 0) of lane 0); masks [PB][k*k][L].
template <int CB, int PB>
inline __attribute__((always_inline)) void carafeAccumulate(const float* rows,
                                                           const int64_t* tapRows,
                                                           int64_t channelStride, int k,
                                                           const float* masks,
                                                           FloatPack (&acc)[CB][PB]) {
  const int taps = k * k;
  for (int b = 0; b < CB; ++b) {
    for (int p = 0; p < PB; ++p) acc[b][p] = Pack::splat(0.f);
  }
  for (int i = 0; i < k; ++i) {
    const float* row = rows + tapRows[i];
    for (int j = 0; j < k; ++j) {
      FloatPack m[PB];
      for (int p = 0; p < PB; ++p) m[p] = Pack::load(masks + (int64_t(p) * taps + i * k + j) * L);
      for (int b = 0; b < CB; ++b) {
        const FloatPack f = Pack::load(row + b * channelStride + j);
        for (int p = 0; p < PB; ++p) acc[b][p] += f * m[p];
      }
    }
  }
}

// Writes phases [p0, p0 + PB) of `valid` lanes to one output channel plane. s = 2 with all four
// phases interleaves the dx pairs in registers (two full-width stores per output row); other
// cases write lane by lane.
template <int PB, typename T>
inline void storePhases(const FloatPack (&acc)[PB], int p0, T* outPlane, const CarafeDims& d,
                        int iy, int ix0, int valid, bool stream) {
  const int s = d.scaleFactor, outW = d.outW();
  if constexpr (PB == 1) {
    if (s == 1 && valid == L) {
      storePack(outPlane + int64_t(iy) * outW + ix0, acc[0], stream);
      return;
    }
  }
  if constexpr (PB == 4) {
    if (s == 2 && valid == L) {
      IntPack low, high;  // lane l of the output row: phase dx = l % 2 of pixel l / 2
      for (int l = 0; l < L; ++l) {
        low[l] = l / 2 + (l % 2) * L;
        high[l] = L / 2 + l / 2 + (l % 2) * L;
      }
      for (int dy = 0; dy < 2; ++dy) {
        T* out = outPlane + int64_t(iy * 2 + dy) * outW + ix0 * 2;
        storePack(out, __builtin_shuffle(acc[2 * dy], acc[2 * dy + 1], low), stream);
        storePack(out + L, __builtin_shuffle(acc[2 * dy], acc[2 * dy + 1], high), stream);
      }
      return;
    }
  }
  for (int p = 0; p < PB; ++p) {
    const int dy = (p0 + p) / s, dx = (p0 + p) % s;
    T* out = outPlane + int64_t(iy * s + dy) * outW + dx;
    for (int l = 0; l < valid; ++l) out[int64_t(ix0 + l) * s] = fromFloat<T>(acc[p][l]);
  }
}

// Asks for the cache lines of the k window rows (L + 2r floats each) of `count` channels: the
// next block's, while this one computes (they come from L2; waiting for them cost ~5%).
inline void prefetchWindows(const float* rows, const int64_t* tapRows, int count,
                            int64_t channelStride, int k) {
  constexpr int kLineFloats = 64 / sizeof(float);
  for (int b = 0; b < count; ++b) {
    for (int i = 0; i < k; ++i) {
      const float* row = rows + b * channelStride + tapRows[i];
      for (int x = 0; x < L + k - 1; x += kLineFloats) __builtin_prefetch(row + x);
      __builtin_prefetch(row + L + k - 2);
    }
  }
}

// Channels [c0, c1) in blocks of CB; tapRows[i] = offset of padded row iy + i in the ring.
template <int CB, int PB, typename T, typename TF>
inline void carafeChannels(int c0, int c1, const PaddedRows<TF>& padded, const int64_t* tapRows,
                           const float* maskBlock, int p0, T* output, const CarafeDims& d, int n,
                           int iy, int ix0, int valid, bool stream) {
  const int64_t channelStride = padded.channelStride();
  for (int c = c0; c + CB <= c1; c += CB) {
    FloatPack acc[CB][PB];
    const int64_t plane = int64_t(n) * d.C + c;
    if (c + 2 * CB <= c1) {
      prefetchWindows(padded.channel(c + CB, ix0), tapRows, CB, channelStride, d.kernelSize);
    }
    carafeAccumulate<CB, PB>(padded.channel(c, ix0), tapRows, channelStride, d.kernelSize,
                             maskBlock, acc);
    for (int b = 0; b < CB; ++b) {
      storePhases<PB>(acc[b], p0, output + (plane + b) * d.outPlane(), d, iy, ix0, valid, stream);
    }
  }
}

// The [phase][tap][lane] mask block of s = 2 and a whole pack: phase (dy, dx) of lane l is
// column 2l + dx of output row dy, so each tap's two rows (2L floats each) load as four packs and
// split into even and odd columns by shuffles. rows = &masks[n, g*k*k, 2*iy, 2*ix0].
template <typename T>
inline void loadMaskPairs(const T* rows, int outW, int taps, int64_t tapStride, float* block) {
  IntPack even, odd;
  for (int l = 0; l < L; ++l) {
    even[l] = 2 * l;
    odd[l] = 2 * l + 1;
  }
  for (int t = 0; t < taps; ++t) {
    for (int dy = 0; dy < 2; ++dy) {
      const T* row = rows + t * tapStride + int64_t(dy) * outW;
      const FloatPack a = Pack::load(row), b = Pack::load(row + L);
      Pack::store(block + (size_t(2 * dy) * taps + t) * L, __builtin_shuffle(a, b, even));
      Pack::store(block + (size_t(2 * dy + 1) * taps + t) * L, __builtin_shuffle(a, b, odd));
    }
  }
}

// Output rows iy*s .. iy*s + s-1 of every channel, for the low-res rows [begin, end) of (n, iy).
template <int PB, typename T>
void carafeForwardRows(int64_t begin, int64_t end, const T* features, int Wp, const T* masks,
                       T* output, const CarafeDims& d, bool stream) {
  constexpr int CB = channelBlock<PB>();
  const int s = d.scaleFactor, taps = d.taps(), cpg = d.channelsPerGroup(), outW = d.outW();
  const int64_t outPlane = d.outPlane();
  std::vector<float> maskBlock(static_cast<size_t>(PB) * taps * L);
  PaddedRows<T> padded(features, d, Wp);
  std::vector<int64_t> tapRows(d.kernelSize);
  for (int64_t row = begin; row < end; ++row) {
    const int n = int(row / d.H), iy = int(row % d.H);
    padded.moveTo(n, iy);
    for (int i = 0; i < d.kernelSize; ++i) tapRows[i] = padded.rowOffset(iy + i);
    for (int g = 0; g < d.groupSize; ++g) {
      const T* groupMasks = masks + (int64_t(n) * d.groupSize + g) * taps * outPlane;
      for (int ix0 = 0; ix0 < d.W; ix0 += L) {
        const int valid = d.W - ix0 < L ? d.W - ix0 : L;
        for (int p0 = 0; p0 < s * s; p0 += PB) {
          // Each mask value is read once: [phase][tap][lane], zero in lanes past W.
          if (PB == 4 && s == 2 && valid == L) {
            loadMaskPairs(groupMasks + int64_t(iy) * 2 * outW + int64_t(ix0) * 2, outW, taps,
                          outPlane, maskBlock.data());
          } else {
            for (int p = 0; p < PB; ++p) {
              const int dy = (p0 + p) / s, dx = (p0 + p) % s;
              const T* at = groupMasks + int64_t(iy * s + dy) * outW + int64_t(ix0) * s + dx;
              for (int t = 0; t < taps; ++t) {
                float* to = maskBlock.data() + (size_t(p) * taps + t) * L;
                const T* from = at + t * outPlane;
                for (int l = 0; l < valid; ++l) to[l] = toFloat(from[l * s]);
                std::fill(to + valid, to + L, 0.f);
              }
            }
          }
          const int c0 = g * cpg, c1 = c0 + cpg, blocked = c0 + cpg / CB * CB;
          carafeChannels<CB, PB>(c0, blocked, padded, tapRows.data(), maskBlock.data(), p0,
                                 output, d, n, iy, ix0, valid, stream);
          carafeChannels<1, PB>(blocked, c1, padded, tapRows.data(), maskBlock.data(), p0,
                                output, d, n, iy, ix0, valid, stream);
        }
      }
    }
  }
  if (stream) fenceStreamingStores();
}

}  // namespace

// CARAFE forward on the CPU: one task = the s output rows of low-res row (n, iy), every channel.
// Lanes are L neighbouring low-res pixels; each computes the PB output phases of its pixel with
// the k*k mask values loaded once per pixel (into a [phase][tap][lane] block) and reused for all
// channels of the group, channels innermost in blocks of CB. Features come from zero-padded
// float rows (PaddedRows), so no tap needs a bounds check.
template <typename T>
void carafeForwardCpu(const T* features, const T* masks, T* output, const CarafeDims& d) {
  const int Wp = (d.W + L - 1) / L * L + 2 * d.radius();
  const int64_t macsPerRow = int64_t(d.C) * d.outW() * d.scaleFactor * d.taps();
  const bool stream = int64_t(d.N) * d.C * d.outPlane() * int64_t(sizeof(T)) >= kStreamOutputBytes;
  at::parallel_for(0, int64_t(d.N) * d.H, grainRows(macsPerRow), [&](int64_t begin, int64_t end) {
    switch (phaseBlock(d.scaleFactor)) {
      case 4:
        carafeForwardRows<4>(begin, end, features, Wp, masks, output, d, stream);
        break;
      case 3:
        carafeForwardRows<3>(begin, end, features, Wp, masks, output, d, stream);
        break;
      default:
        carafeForwardRows<1>(begin, end, features, Wp, masks, output, d, stream);
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
