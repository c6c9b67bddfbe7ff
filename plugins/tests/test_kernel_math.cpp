// Host build of the kernels' shared math (plugins/kernels/*_math.h, compiled by g++ exactly as
// nvcc compiles it for the device), run in the CUDA kernels' loop structure, against float64
// loops written from the ops' definitions (DESIGN.md). Plus the criss-cross workspace tiling.
// No GPU, CUDA or TensorRT needed: this is how CI checks the arithmetic the GPU runs.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "carafe_math.h"
#include "check.h"
#include "criss_cross_math.h"
#include "criss_cross_tiling.h"

using namespace attn_deploy;

namespace {

std::vector<float> randomValues(size_t count, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(count);
  for (float& x : v) x = normal(gen);
  return v;
}

// |a - e| <= tol * max|e| elementwise, NaN exactly where expected has NaN.
bool closeTo(std::vector<float> const& actual, std::vector<double> const& expected, double tol) {
  double scale = 1e-30;
  for (double e : expected) {
    if (!std::isnan(e)) scale = std::max(scale, std::fabs(e));
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::isnan(expected[i]) != std::isnan(actual[i])) return false;
    if (!std::isnan(expected[i]) && std::fabs(actual[i] - expected[i]) > tol * scale) return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------ CARAFE
std::vector<double> carafeOracle(std::vector<float> const& f, std::vector<float> const& m,
                                 CarafeDims const& d) {
  const int k = d.kernelSize, r = d.radius(), s = d.scaleFactor, oh = d.outH(), ow = d.outW();
  std::vector<double> out(size_t(d.N) * d.C * oh * ow, 0.0);
  for (int n = 0; n < d.N; ++n)
    for (int c = 0; c < d.C; ++c)
      for (int y = 0; y < oh; ++y)
        for (int x = 0; x < ow; ++x) {
          double acc = 0;
          const int g = c / d.channelsPerGroup();
          for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) {
              const int fy = y / s + i - r, fx = x / s + j - r;
              const bool inside = fy >= 0 && fy < d.H && fx >= 0 && fx < d.W;
              const double feature = inside ? f[((size_t(n) * d.C + c) * d.H + fy) * d.W + fx] : 0.0;
              acc += feature * m[((size_t(n) * d.groupSize + g) * k * k + i * k + j) * oh * ow +
                                 size_t(y) * ow + x];
            }
          out[((size_t(n) * d.C + c) * oh + y) * ow + x] = acc;
        }
  return out;
}

// The forward kernel's thread loop (carafe_kernel.cu) on the host: threads of PX pixels x CB
// channels; the output starts NaN-poisoned so an element no thread writes shows up.
template <int CB, int PX>
std::vector<float> carafeLikeTheKernel(std::vector<float> const& f, std::vector<float> const& m,
                                       CarafeDims const& d) {
  const int oh = d.outH(), ow = d.outW(), cpg = d.channelsPerGroup();
  const int64_t outPlane = d.outPlane();
  std::vector<float> out(size_t(d.N) * d.C * outPlane, std::numeric_limits<float>::quiet_NaN());
  for (int n = 0; n < d.N; ++n)
    for (int g = 0; g < d.groupSize; ++g)
      for (int chunk = 0; chunk * CB < cpg; ++chunk)
        for (int y = 0; y < oh; ++y)
          for (int x = 0; x < ow; x += PX) {
            const int c0 = g * cpg + chunk * CB, count = std::min(CB, cpg - chunk * CB);
            float acc[CB][PX];
            carafeOutputChannels<CB, PX>(
                f.data() + (size_t(n) * d.C + c0) * d.inPlane(), count,
                m.data() + (size_t(n) * d.groupSize + g) * d.taps() * outPlane + size_t(y) * ow + x,
                outPlane, d, y, x, acc);
            for (int b = 0; b < count; ++b)
              for (int px = 0; px < PX; ++px)
                out[(size_t(n) * d.C + c0 + b) * outPlane + size_t(y) * ow + x + px] = acc[b][px];
          }
  return out;
}

// ------------------------------------------------------------------------- criss-cross attention
std::vector<double> crissCrossOracle(std::vector<float> const& q, std::vector<float> const& k,
                                     std::vector<float> const& v, CrissCrossDims const& d) {
  const int64_t plane = d.plane();
  std::vector<double> out(size_t(d.N) * d.C * plane);
  for (int n = 0; n < d.N; ++n)
    for (int y = 0; y < d.H; ++y)
      for (int x = 0; x < d.W; ++x) {
        // positions: column (p, x) for every p, row (y, xr) for xr != x
        std::vector<int64_t> at;
        for (int p = 0; p < d.H; ++p) at.push_back(int64_t(p) * d.W + x);
        for (int xr = 0; xr < d.W; ++xr)
          if (xr != x) at.push_back(int64_t(y) * d.W + xr);
        std::vector<double> e(at.size(), 0.0);
        for (size_t i = 0; i < at.size(); ++i)
          for (int c = 0; c < d.Cq; ++c)
            e[i] += double(q[(size_t(n) * d.Cq + c) * plane + y * d.W + x]) *
                    k[(size_t(n) * d.Cq + c) * plane + at[i]];
        double mx = -INFINITY, sum = 0;
        for (double x2 : e) mx = std::max(mx, x2);
        for (double& x2 : e) sum += (x2 = std::exp(x2 - mx));  // all -inf: NaN, as softmax
        for (int c = 0; c < d.C; ++c) {
          double acc = 0;
          for (size_t i = 0; i < at.size(); ++i)
            acc += e[i] / sum * v[(size_t(n) * d.C + c) * plane + at[i]];
          out[(size_t(n) * d.C + c) * plane + y * d.W + x] = acc;
        }
      }
  return out;
}

// The forward kernels (criss_cross_kernel.cu) on the host, tile by tile within `workspaceBytes`:
// weights kernel (8 position groups per pixel, energy tiles of 8, block max and sum), then the
// gather of 4 channels per weight load.
std::vector<float> crissCrossLikeTheKernels(std::vector<float> const& q, std::vector<float> const& k,
                                            std::vector<float> const& v, CrissCrossDims const& d,
                                            int64_t workspaceBytes) {
  constexpr int kGroups = 8, kTile = 8, kChannels = 4;
  const int64_t plane = d.plane();
  const int P = d.positions();
  std::vector<float> out(size_t(d.N) * d.C * plane, std::numeric_limits<float>::quiet_NaN());
  const CrissCrossTiling tiling = crissCrossTiling(d.N, d.H, d.W, workspaceBytes);
  CHECK(tiling.items >= 1 && tiling.rows >= 1);
  std::vector<float> weights(size_t(workspaceBytes / sizeof(float)),
                             std::numeric_limits<float>::quiet_NaN());
  for (int n0 = 0; n0 < d.N; n0 += int(tiling.items))
    for (int y0 = 0; y0 < d.H; y0 += int(tiling.rows)) {
      const int items = int(std::min<int64_t>(tiling.items, d.N - n0));
      const int rows = int(std::min<int64_t>(tiling.rows, d.H - y0));
      const int64_t pStride = int64_t(rows) * d.W;
      CHECK(int64_t(items) * P * pStride * int64_t(sizeof(float)) <= workspaceBytes);
      for (int item = 0; item < items; ++item)
        for (int row = 0; row < rows; ++row) {
          const int n = n0 + item, y = y0 + row;
          float* base = weights.data() + item * P * pStride + row * d.W;
          for (int x = 0; x < d.W; ++x) {
            float* w = base + x;
            float partial[kGroups];
            for (int g = 0; g < kGroups; ++g) {
              partial[g] = -INFINITY;
              for (int first = g; first < P; first += kGroups * kTile) {
                float e[kTile];
                crissCrossEnergyTile<kTile>(q.data() + size_t(n) * d.Cq * plane,
                                            k.data() + size_t(n) * d.Cq * plane, d, y, x, first,
                                            kGroups, e);
                for (int i = 0; i < kTile; ++i) {
                  const int p = first + i * kGroups;
                  if (p < P) {
                    w[p * pStride] = e[i];
                    partial[g] = e[i] > partial[g] ? e[i] : partial[g];
                  }
                }
              }
            }
            float mx = -INFINITY;
            for (float pm : partial) mx = pm > mx ? pm : mx;
            float sum = 0;
            for (int g = 0; g < kGroups; ++g) {
              float local = 0;
              for (int p = g; p < P; p += kGroups) local += (w[p * pStride] = softmaxExp(w[p * pStride] - mx));
              sum += local;
            }
            for (int p = 0; p < P; ++p) w[p * pStride] *= 1.f / sum;
          }
          for (int c0 = 0; c0 < d.C; c0 += kChannels)
            for (int x = 0; x < d.W; ++x) {
              const float* vp = v.data() + (size_t(n) * d.C + c0) * plane;
              float* o = out.data() + (size_t(n) * d.C + c0) * plane + y * d.W + x;
              if (c0 + kChannels <= d.C) {
                float acc[kChannels];
                crissCrossGatherAt<float, kChannels>(base, pStride, vp, plane, d, y, x, acc);
                for (int b = 0; b < kChannels; ++b) o[b * plane] = acc[b];
              } else {
                for (int b = 0; c0 + b < d.C; ++b) {
                  float acc;
                  crissCrossGatherAt<float, 1>(base, pStride, vp + b * plane, plane, d, y, x, &acc);
                  o[b * plane] = acc;
                }
              }
            }
        }
    }
  return out;
}

}  // namespace

TEST(carafe_thread_function_matches_float64_oracle) {
  CarafeDims const shapes[] = {{1, 4, 3, 4, 5, 1, 2},  {2, 12, 5, 9, 3, 3, 2},
                               {1, 20, 4, 7, 1, 2, 3}, {1, 9, 3, 11, 7, 1, 1},
                               {1, 3, 2, 5, 3, 1, 5},  {1, 17, 6, 6, 5, 1, 2}};
  uint32_t seed = 1;
  for (CarafeDims const& d : shapes) {
    auto const f = randomValues(size_t(d.N) * d.C * d.inPlane(), seed++);
    auto const m = randomValues(size_t(d.N) * d.groupSize * d.taps() * d.outPlane(), seed++);
    auto const expected = carafeOracle(f, m, d);
    CHECK(closeTo(carafeLikeTheKernel<8, 1>(f, m, d), expected, 1e-5));
    if (d.outW() % 2 == 0) CHECK(closeTo(carafeLikeTheKernel<8, 2>(f, m, d), expected, 1e-5));
  }
}

TEST(carafe_nan_mask_outside_the_image_propagates) {
  CarafeDims const d{1, 3, 3, 4, 5, 1, 2};
  auto const f = randomValues(size_t(d.C) * d.inPlane(), 11);
  auto m = randomValues(size_t(d.taps()) * d.outPlane(), 12);
  m[0 * d.outPlane() + 1] = std::numeric_limits<float>::quiet_NaN();  // tap (0,0) of (0,1): row -2
  m[24 * d.outPlane() + d.outPlane() - 1] = std::numeric_limits<float>::infinity();  // (2,2) tap
  auto const expected = carafeOracle(f, m, d);
  CHECK(std::isnan(expected[1]) && std::isnan(expected[d.outPlane() - 1]));
  CHECK(closeTo(carafeLikeTheKernel<8, 1>(f, m, d), expected, 1e-5));
  CHECK(closeTo(carafeLikeTheKernel<8, 2>(f, m, d), expected, 1e-5));
}

TEST(criss_cross_kernels_match_float64_oracle_in_any_tiling) {
  CrissCrossDims const shapes[] = {{2, 3, 9, 5, 7}, {1, 1, 2, 1, 1}, {3, 2, 5, 4, 9},
                                   {1, 17, 6, 3, 20}};
  uint32_t seed = 21;
  for (CrissCrossDims const& d : shapes) {
    auto const q = randomValues(size_t(d.N) * d.Cq * d.plane(), seed++);
    auto const k = randomValues(size_t(d.N) * d.Cq * d.plane(), seed++);
    auto const v = randomValues(size_t(d.N) * d.C * d.plane(), seed++);
    auto const expected = crissCrossOracle(q, k, v, d);
    int64_t const row = crissCrossRowBytes(d.H, d.W), all = d.N * d.H * row;
    for (int64_t bytes : {all, row, 2 * row + 4, row * d.H, row * d.H * 2 - 1}) {
      CHECK(closeTo(crissCrossLikeTheKernels(q, k, v, d, std::max(bytes, row)), expected, 1e-5));
    }
  }
}

TEST(criss_cross_all_minus_inf_energies_give_nan) {
  CrissCrossDims const d{1, 2, 3, 4, 5};
  auto q = randomValues(size_t(d.Cq) * d.plane(), 31);
  auto k = randomValues(size_t(d.Cq) * d.plane(), 32);
  for (float& x : k) x = -std::fabs(x) - 0.1f;
  auto const v = randomValues(size_t(d.C) * d.plane(), 33);
  for (int c = 0; c < d.Cq; ++c) q[c * d.plane() + 1 * d.W + 2] = INFINITY;
  auto const expected = crissCrossOracle(q, k, v, d);
  CHECK(std::isnan(expected[1 * d.W + 2]));
  CHECK(closeTo(crissCrossLikeTheKernels(q, k, v, d, crissCrossRowBytes(d.H, d.W) * d.H), expected,
                1e-5));
}

TEST(criss_cross_workspace_is_bounded_and_monotone) {
  CHECK_EQ(kCrissCrossWorkspaceBudget, int64_t(ATTN_DEPLOY_CCA_WORKSPACE_MIB) << 20);
  int64_t const budget = int64_t(256) << 20;  // the default
  // 8 x 256 x 256: 1 GiB unbounded, 256 MiB now (two items per tile).
  CHECK_EQ(int64_t(8) * 512 * 256 * 256 * 4, int64_t(1) << 30);
  CHECK_EQ(crissCrossWorkspaceBytes(8, 256, 256, budget), budget);
  CrissCrossTiling const t = crissCrossTiling(8, 256, 256, budget);
  CHECK(t.items == 2 && t.rows == 256);
  // One item above the budget (512 x 512: 1 GiB): tiles of 128 rows (2 MiB each).
  CrissCrossTiling const r = crissCrossTiling(1, 512, 512, crissCrossWorkspaceBytes(1, 512, 512, budget));
  CHECK(r.items == 1 && r.rows == 128);
  // Small inputs take only what they need; a single row larger than the budget is still served.
  CHECK_EQ(crissCrossWorkspaceBytes(1, 4, 6, budget), int64_t(10) * 6 * 4 * 4);
  int64_t const bigRow = crissCrossRowBytes(4, 1 << 24);
  CHECK(bigRow > budget && crissCrossWorkspaceBytes(1, 4, 1 << 24, budget) == bigRow);
  CHECK_EQ(crissCrossTiling(1, 4, 6, 10).items, int64_t(0));  // not even a row: refused
  // Monotone in N, H, W: the reservation for a profile's largest shapes covers every smaller one.
  for (int64_t b : {int64_t(1) << 12, int64_t(1) << 20, budget})
    for (int64_t n = 1; n <= 9; n += 4)
      for (int64_t h = 1; h <= 600; h += 37)
        for (int64_t w = 1; w <= 600; w += 53) {
          int64_t const here = crissCrossWorkspaceBytes(n, h, w, b);
          CHECK(here <= crissCrossWorkspaceBytes(n + 1, h, w, b));
          CHECK(here <= crissCrossWorkspaceBytes(n, h + 1, w, b));
          CHECK(here <= crissCrossWorkspaceBytes(n, h, w + 1, b));
          CrissCrossTiling const tl = crissCrossTiling(n, h, w, here);
          CHECK(tl.items >= 1 && tl.rows >= 1 && tl.items <= n && tl.rows <= h);
          CHECK(tl.items * tl.rows * crissCrossRowBytes(h, w) <= here);
          CHECK(tl.items == 1 || tl.rows == h);
        }
}

CHECK_MAIN()
