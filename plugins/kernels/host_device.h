// Portability layer that lets one function body compile for the GPU (nvcc) and the CPU (g++).
//
// Under nvcc, AD_HOST_DEVICE marks a function __host__ __device__; under a plain C++ compiler it
// is an ordinary always-inline function, so the CPU build in CI runs exactly the arithmetic the
// CUDA kernels run. Loads convert to float and stores convert back: every op accumulates in float32
// whatever the storage type (float; __half on the GPU; c10::Half on the CPU).
//
// Lanes: the math functions are templates over P, the number type of "a few neighbouring pixels
// along x". P = float is one pixel: what each CUDA thread computes, and the CPU's row tails.
// P = FloatPack (CPU only) is kPackLanes consecutive pixels in one GCC vector, so the CPU loop runs
// the same function body on SIMD registers. Lanes<P> holds the few operations whose code differs
// between the two: broadcast, contiguous load/store, indexed load (gather), int conversions.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define AD_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define AD_HOST_DEVICE inline __attribute__((always_inline))
#endif

namespace attn_deploy {

template <typename T>
AD_HOST_DEVICE float toFloat(T v) {
  return static_cast<float>(v);
}

template <typename T>
AD_HOST_DEVICE T fromFloat(float v) {
  return static_cast<T>(v);
}

#if defined(__CUDACC__)
// Explicit conversions: PyTorch builds CUDA code with __CUDA_NO_HALF_CONVERSIONS__.
template <>
AD_HOST_DEVICE float toFloat<__half>(__half v) {
  return __half2float(v);
}

template <>
AD_HOST_DEVICE __half fromFloat<__half>(float v) {
  return __float2half_rn(v);
}
#endif

AD_HOST_DEVICE float bitsToFloat(int32_t bits) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// Two neighbouring elements p[0], p[1] as floats, and the converse store. On the GPU these are one
// 8-byte (float2) or 4-byte (__half2) access, so p must be aligned to two elements (the callers
// use them at even offsets of buffers with even rows); on the host, two scalar accesses.
template <typename T>
AD_HOST_DEVICE void loadPair(const T* p, float& a, float& b) {
  a = toFloat(p[0]);
  b = toFloat(p[1]);
}

template <typename T>
AD_HOST_DEVICE void storePair(T* p, float a, float b) {
  p[0] = fromFloat<T>(a);
  p[1] = fromFloat<T>(b);
}

#if defined(__CUDACC__)
template <>
AD_HOST_DEVICE void loadPair<float>(const float* p, float& a, float& b) {
#if defined(__CUDA_ARCH__)
  const float2 v = *reinterpret_cast<const float2*>(p);
  a = v.x;
  b = v.y;
#else
  a = p[0];
  b = p[1];
#endif
}

template <>
AD_HOST_DEVICE void loadPair<__half>(const __half* p, float& a, float& b) {
  const float2 v = __half22float2(*reinterpret_cast<const __half2*>(p));
  a = v.x;
  b = v.y;
}

template <>
AD_HOST_DEVICE void storePair<float>(float* p, float a, float b) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
#else
  p[0] = a;
  p[1] = b;
#endif
}

template <>
AD_HOST_DEVICE void storePair<__half>(__half* p, float a, float b) {
  *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
}
#endif

template <typename P>
struct Lanes;

// One pixel.
template <>
struct Lanes<float> {
  using Int = int32_t;
  static constexpr int count = 1;

  AD_HOST_DEVICE static float splat(float v) { return v; }
  // x coordinate of each lane when the first lane is at x
  AD_HOST_DEVICE static Int iota(int x) { return x; }
  AD_HOST_DEVICE static Int clampIndex(Int i, int size) {
    return i < 0 ? 0 : (i >= size ? size - 1 : i);
  }
  template <typename T>
  AD_HOST_DEVICE static float load(const T* p) { return toFloat(p[0]); }
  template <typename T>
  AD_HOST_DEVICE static float gather(const T* base, Int offset) { return toFloat(base[offset]); }
  // p[l * stride] for lane l
  template <typename T>
  AD_HOST_DEVICE static float loadStrided(const T* p, int64_t /*stride*/) { return toFloat(p[0]); }
  template <typename T>
  AD_HOST_DEVICE static void store(T* p, float v) { p[0] = fromFloat<T>(v); }
  // Nearest-neighbour upsampling reads (see the FloatPack version): one pixel reads one column,
  // row[first], 0 outside [0, size).
  struct Spread {};
  AD_HOST_DEVICE static Spread spread(int /*phase*/, int /*scale*/) { return {}; }
  template <typename T>
  AD_HOST_DEVICE static float loadSpread(const T* row, int size, int first, Spread) {
    return (first >= 0 && first < size) ? toFloat(row[first]) : 0.f;
  }
  AD_HOST_DEVICE static Int truncate(float v) { return static_cast<int32_t>(v); }
  AD_HOST_DEVICE static float convert(Int v) { return static_cast<float>(v); }
  AD_HOST_DEVICE static float fromBits(Int bits) { return bitsToFloat(bits); }
};

#if !defined(__CUDACC__)
#define AD_PACK_INLINE static inline __attribute__((always_inline))
// One native SIMD register: GCC spills wider vector types to the stack inside loops.
#if defined(__AVX512F__)
constexpr int kPackLanes = 16;
#elif defined(__AVX__)
constexpr int kPackLanes = 8;
#else
constexpr int kPackLanes = 4;
#endif
typedef float FloatPack __attribute__((vector_size(4 * kPackLanes)));
typedef int32_t IntPack __attribute__((vector_size(4 * kPackLanes)));

// kPackLanes consecutive pixels (CPU SIMD). Loads of contiguous float rows are single vector
// loads; everything else is written lane by lane and left to the compiler.
template <>
struct Lanes<FloatPack> {
  using Int = IntPack;
  static constexpr int count = kPackLanes;

  // v - 0 is exactly v (even -0.f), so this folds to a broadcast; v + 0 would cost an add.
  AD_PACK_INLINE FloatPack splat(float v) { return v - FloatPack{}; }
  AD_PACK_INLINE IntPack iota(int x) {
    IntPack r;
    for (int l = 0; l < count; ++l) r[l] = x + l;
    return r;
  }
  AD_PACK_INLINE IntPack clampIndex(IntPack i, int size) {
    const IntPack lo = IntPack{}, hi = IntPack{} + (size - 1);
    i = i < lo ? lo : i;
    return i > hi ? hi : i;
  }
  AD_PACK_INLINE FloatPack load(const float* p) {
    FloatPack r;
    std::memcpy(&r, p, sizeof r);
    return r;
  }
  template <typename T>
  AD_PACK_INLINE FloatPack load(const T* p) {
    FloatPack r;
    for (int l = 0; l < count; ++l) r[l] = toFloat(p[l]);
    return r;
  }
  template <typename T>
  AD_PACK_INLINE FloatPack gather(const T* base, IntPack offset) {
    FloatPack r;
    for (int l = 0; l < count; ++l) r[l] = toFloat(base[offset[l]]);
    return r;
  }
  template <typename T>
  AD_PACK_INLINE FloatPack loadStrided(const T* p, int64_t stride) {
    return stride == 1 ? load(p) : gather(p, iota(0) * int32_t(stride));
  }
  AD_PACK_INLINE void store(float* p, FloatPack v) { std::memcpy(p, &v, sizeof v); }
  template <typename T>
  AD_PACK_INLINE void store(T* p, FloatPack v) {
    for (int l = 0; l < count; ++l) p[l] = fromFloat<T>(v[l]);
  }
  // Lane l of a pack starting at pixel x = ix*scale + phase reads low-res column ix + offsets[l],
  // offsets[l] = (phase + l) / scale <= l (float division is exact for these small integers).
  struct Spread {
    IntPack offsets;
    bool contiguous;
  };
  AD_PACK_INLINE Spread spread(int phase, int scale) {
    return Spread{truncate(convert(iota(phase)) / float(scale)), scale == 1};
  }
  // row[first + offsets[l]] per lane, 0 outside [0, size). The columns a pack needs lie within
  // `count` consecutive ones, so where the CPU permutes lanes in one instruction (AVX2, NEON) a
  // vector load (moved inside the row at its ends) and a permutation replace the gather.
  template <typename T>
  AD_PACK_INLINE FloatPack loadSpread(const T* row, int size, int first, const Spread& sp) {
    if (sp.contiguous && first >= 0 && first + count <= size) return load(row + first);
    const IntPack index = sp.offsets + first;
    const IntPack inside = (index >= 0) & (index < size);
#if defined(__AVX2__) || defined(__aarch64__)
    if (size >= count) {
      const int base = first < 0 ? 0 : (first > size - count ? size - count : first);
      return inside ? __builtin_shuffle(load(row + base), index - base) : splat(0.f);
    }
#endif
    return inside ? gather(row, clampIndex(index, size)) : splat(0.f);
  }
  AD_PACK_INLINE IntPack truncate(FloatPack v) { return __builtin_convertvector(v, IntPack); }
  AD_PACK_INLINE FloatPack convert(IntPack v) { return __builtin_convertvector(v, FloatPack); }
  AD_PACK_INLINE FloatPack fromBits(IntPack bits) { return (FloatPack)bits; }  // a bit cast
};
#endif

// exp(d) for the shifted energies of a softmax (d = e - max <= 0), branch-free so that it runs on
// SIMD lanes and gives the same bits on both sides. Cody-Waite reduction d = n*ln2 + r,
// |r| <= ln2/2, then Cephes' degree-6 polynomial for e^r (about 1 ulp). Returns 0 below the
// smallest normal float (d < -87.33, also for d = -inf), 1 for d > 0, and NaN for NaN.
template <typename P>
AD_HOST_DEVICE P softmaxExp(P d) {
  using L = Lanes<P>;
  const P lowest = L::splat(-87.3365447504f);  // ln(FLT_MIN)
  const P zero = L::splat(0.f);
  const P xc = d < lowest ? lowest : (d > zero ? zero : d);
  P t = L::splat(0.5f) - xc * 1.44269504089f;  // >= 0.5, so truncation rounds d/ln2 to nearest
  t = (t == t) ? t : zero;                    // NaN stays in r (and the result), not the exponent
  const typename L::Int m = L::truncate(t);   // 0 <= m <= 126, exponent n = -m
  const P n = L::convert(m);
  const P r = xc + n * 0.693359375f - n * 2.12194440e-4f;
  P p = L::splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const P scale = L::fromBits((127 - m) << 23);
  return d < lowest ? zero : p * scale;
}

}  // namespace attn_deploy
