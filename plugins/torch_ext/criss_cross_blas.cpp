// Criss-cross attention forward as batched GEMMs, per batch item n:
//   row energies     Er[y, x, x'] = sum_c q[c, y, x] k[c, y, x']      bmm over the H rows
//   column energies  Ec[x, y, y'] = sum_c q[c, y, x] k[c, y', x]      bmm over the W columns
//   one fused softmax per pixel over Ec[x, y, :] (without y' = y) and Er[y, x, :]
//   row part         out[:, y, :] = v[:, y, :] @ Er[y]^T              bmm into out viewed [H, C, W]
//   column part      colT[:, x, :] = vT[:, x, :] @ Ec[x]^T            bmm on transposed planes
// then out += colT with its planes transposed back. The columns of q, k and v are no BLAS operands
// in place (neither stride is 1), hence the transposed copies [C, W, H]. Energies and weights are
// float32 whatever the input dtype.
#include "criss_cross_blas.h"

#include <ATen/Parallel.h>
#include <ATen/ops/baddbmm.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <limits>

#include "cpu_ops.h"

namespace attn_deploy {
namespace {

using Pack = Lanes<FloatPack>;

float maxOf(FloatPack v) {
  float m = v[0];
  for (int l = 1; l < kPackLanes; ++l) m = v[l] > m ? v[l] : m;
  return m;
}

float sumOf(FloatPack v) {
  float s = 0.f;
  for (int l = 0; l < kPackLanes; ++l) s += v[l];
  return s;
}

// max over e[0, n), NaN ignored (it reaches the weights through exp(NaN - max) instead).
float maxEnergy(const float* e, int n, float m) {
  int i = 0;
  if (n >= kPackLanes) {
    FloatPack mp = Pack::splat(m);
    for (; i + kPackLanes <= n; i += kPackLanes) {
      const FloatPack v = Pack::load(e + i);
      mp = v > mp ? v : mp;
    }
    m = maxOf(mp);
  }
  for (; i < n; ++i) m = e[i] > m ? e[i] : m;
  return m;
}

// e[i] = exp(e[i] - m) in place; returns their sum.
float expShifted(float* e, int n, float m) {
  int i = 0;
  float sum = 0.f;
  if (n >= kPackLanes) {
    FloatPack sp = Pack::splat(0.f);
    for (; i + kPackLanes <= n; i += kPackLanes) {
      const FloatPack w = softmaxExp(Pack::load(e + i) - m);
      Pack::store(e + i, w);
      sp += w;
    }
    sum = sumOf(sp);
  }
  for (; i < n; ++i) {
    e[i] = softmaxExp(e[i] - m);
    sum += e[i];
  }
  return sum;
}

void scale(float* e, int n, float factor) {
  int i = 0;
  for (; i + kPackLanes <= n; i += kPackLanes) Pack::store(e + i, Pack::load(e + i) * factor);
  for (; i < n; ++i) e[i] *= factor;
}

// dst[c, x, y] = src[c, y, x] (or += with accumulate) for `planes` planes of rows x cols floats,
// in square tiles that stay in L1 on both sides.
void transposePlanes(const float* src, float* dst, int64_t planes, int rows, int cols,
                     bool accumulate) {
  constexpr int kTile = 16;
  const int64_t plane = int64_t(rows) * cols;
  at::parallel_for(0, planes, grainRows(plane), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const float* from = src + c * plane;
      float* to = dst + c * plane;
      for (int y0 = 0; y0 < rows; y0 += kTile) {
        const int y1 = y0 + kTile < rows ? y0 + kTile : rows;
        for (int x0 = 0; x0 < cols; x0 += kTile) {
          const int x1 = x0 + kTile < cols ? x0 + kTile : cols;
          for (int x = x0; x < x1; ++x) {
            float* t = to + int64_t(x) * rows;
            if (accumulate) {
              for (int y = y0; y < y1; ++y) t[y] += from[int64_t(y) * cols + x];
            } else {
              for (int y = y0; y < y1; ++y) t[y] = from[int64_t(y) * cols + x];
            }
          }
        }
      }
    }
  });
}

}  // namespace

void crissCrossSoftmaxCpu(float* column, int H, int self, float* row, int W) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  column[self] = -kInf;  // exp(-inf - max) = 0 for finite max; NaN when every energy is -inf
  const float m = maxEnergy(row, W, maxEnergy(column, H, -kInf));
  const float inv = 1.f / (expShifted(column, H, m) + expShifted(row, W, m));
  scale(column, H, inv);
  scale(row, W, inv);
}

at::Tensor crissCrossForwardBlas(const at::Tensor& query, const at::Tensor& key,
                                 const at::Tensor& value, const CrissCrossDims& d) {
  const at::Tensor q = query.to(at::kFloat), k = key.to(at::kFloat), v = value.to(at::kFloat);
  at::Tensor out = at::empty(value.sizes(), v.options());
  // Per batch item, reused: value and the column part of the output with transposed planes.
  at::Tensor valueT = at::empty({d.C, d.W, d.H}, v.options());
  at::Tensor columnPartT = at::empty({d.C, d.W, d.H}, v.options());
  at::Tensor queryT = at::empty({d.Cq, d.W, d.H}, v.options()), keyT = at::empty_like(queryT);
  const int64_t plane = d.plane();
  for (int n = 0; n < d.N; ++n) {
    const at::Tensor qn = q[n], kn = k[n], vn = v[n];
    // Energies. Er[y] = q[:, y, :]^T @ k[:, y, :]; Ec[x] = qT[:, x, :]^T @ kT[:, x, :] on
    // transposed planes (the columns of q and k are no BLAS operands in place).
    at::Tensor rowWeights = at::bmm(qn.permute({1, 2, 0}), kn.permute({1, 0, 2}));  // [H, W, W']
    transposePlanes(qn.const_data_ptr<float>(), queryT.mutable_data_ptr<float>(), d.Cq, d.H, d.W,
                    false);
    transposePlanes(kn.const_data_ptr<float>(), keyT.mutable_data_ptr<float>(), d.Cq, d.H, d.W,
                    false);
    at::Tensor columnWeights =
        at::bmm(queryT.permute({1, 2, 0}), keyT.permute({1, 0, 2}));  // [W, H, H']
    float* er = rowWeights.mutable_data_ptr<float>();
    float* ec = columnWeights.mutable_data_ptr<float>();
    at::parallel_for(0, d.H, grainRows(int64_t(d.W) * d.positions() * 8),
                     [&](int64_t begin, int64_t end) {
      for (int y = int(begin); y < int(end); ++y) {
        for (int x = 0; x < d.W; ++x) {
          crissCrossSoftmaxCpu(ec + (int64_t(x) * d.H + y) * d.H, d.H, y,
                               er + (int64_t(y) * d.W + x) * d.W, d.W);
        }
      }
    });
    // Row part, straight into out[n] viewed [H, C, W]: out[:, y, :] = v[:, y, :] @ Er[y]^T.
    at::Tensor rowPart = out[n].permute({1, 0, 2});
    at::bmm_out(rowPart, vn.permute({1, 0, 2}), rowWeights.transpose(1, 2));
    // Column part on transposed planes, [W, C, H] views: colT[:, x, :] = vT[:, x, :] @ Ec[x]^T.
    float* vt = valueT.mutable_data_ptr<float>();
    float* ct = columnPartT.mutable_data_ptr<float>();
    const float* vp = vn.const_data_ptr<float>();
    float* op = out.mutable_data_ptr<float>() + int64_t(n) * d.C * plane;
    transposePlanes(vp, vt, d.C, d.H, d.W, false);
    at::Tensor columnPart = columnPartT.permute({1, 0, 2});
    at::bmm_out(columnPart, valueT.permute({1, 0, 2}), columnWeights.transpose(1, 2));
    transposePlanes(ct, op, d.C, d.W, d.H, true);
  }
  return value.scalar_type() == at::kFloat ? out : out.to(value.scalar_type());
}

}  // namespace attn_deploy
