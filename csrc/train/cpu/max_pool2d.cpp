// CPU kernels of max_pool2d (the autoencoder trainings' classifier pools; see train/max_pool2d.h
// for the contract). NCHW: one task per (n, c) plane. NHWC: one task per output row of an image,
// the channels innermost (contiguous loads and stores). The backward zeroes and fills one plane
// (NCHW) or one image (NHWC) per task, so no two tasks write the same element and every element
// adds its gradients in output order.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common/checks.h"
#include "train/max_pool2d.h"

namespace deepdig_fast {
namespace {

// One window position's update of a running maximum m and its winner a, written as selects so
// that the compiler can vectorise it (over a block of channels in NHWC, over output columns in
// NCHW).
template <typename scalar_t, typename index_t>
inline void select_max(scalar_t v, index_t at, scalar_t& m, index_t& a) {
  const bool take = beats(v, m);
  m = take ? v : m;
  a = take ? at : a;
}

// One tap (a row ih and a window column kw) for the output columns [lo, hi) of an NCHW output row:
// input column ow * S + off. S is a compile-time stride (1, 2) where it can be, so the loop over
// the columns vectorises (contiguous or pairwise loads); 0 means the run-time stride s.
template <int64_t S, typename scalar_t, typename index_t>
inline void take_columns(const scalar_t* __restrict__ row, index_t base, int64_t off, int64_t s,
                         int64_t lo, int64_t hi, scalar_t* __restrict__ m,
                         index_t* __restrict__ a) {
  const int64_t st = S ? S : s;
  for (int64_t ow = lo; ow < hi; ++ow) {
    select_max(row[ow * st + off], static_cast<index_t>(base + ow * st), m[ow], a[ow]);
  }
}

// NCHW: one task per (n, c) plane. For each output row the maxima and winners of all its columns
// sit in local arrays and the window's taps are the outer loops (rows, then columns, as ATen scans
// a window), the output columns the inner one: each output still sees its taps in ATen's order,
// and the inner loop runs over contiguous outputs, which the compiler vectorises (3x the former
// per-window scalar scan at the MNIST CNN's first pool; benchmarks/bench_max_pool2d.py).
template <typename scalar_t>
void pool_nchw(const PoolGeometry& g_in, const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
               int64_t* __restrict__ idx) {
  using index_t = std::conditional_t<sizeof(scalar_t) == 4, int32_t, int64_t>;
  const int64_t plane = g_in.H * g_in.W, oplane = g_in.OH * g_in.OW;
  at::parallel_for(0, g_in.N * g_in.C, 1, [&](int64_t begin, int64_t end) {
    const PoolGeometry g = g_in;  // a local copy: stores through idx cannot alias it
    std::vector<scalar_t> m_buf(static_cast<size_t>(g.OW));
    std::vector<index_t> a_buf(static_cast<size_t>(g.OW));
    scalar_t* __restrict__ m = m_buf.data();
    index_t* __restrict__ a = a_buf.data();
    for (int64_t p = begin; p < end; ++p) {
      const scalar_t* xp = x + p * plane;
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const Window w = pool_window(g, oh, ow);
          m[ow] = -std::numeric_limits<scalar_t>::infinity();
          a[ow] = static_cast<index_t>(w.h0 * g.W + w.w0);
        }
        const Window rows = pool_window(g, oh, 0);  // the window's rows do not depend on ow
        for (int64_t ih = rows.h0; ih < rows.h1; ih += g.dh) {
          const scalar_t* row = xp + ih * g.W;
          for (int64_t kw = 0; kw < g.kw; ++kw) {
            // the columns ow whose tap kw lies inside the row: 0 <= ow * sw + off < W
            const int64_t off = kw * g.dw - g.pw;
            const int64_t lo = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
            const int64_t hi = g.W - 1 - off < 0 ? 0 : std::min(g.OW, (g.W - 1 - off) / g.sw + 1);
            const index_t base = static_cast<index_t>(ih * g.W + off);
            if (g.sw == 1) {
              take_columns<1>(row, base, off, 1, lo, hi, m, a);
            } else if (g.sw == 2) {
              take_columns<2>(row, base, off, 2, lo, hi, m, a);
            } else {
              take_columns<0>(row, base, off, g.sw, lo, hi, m, a);
            }
          }
        }
        scalar_t* o = out + p * oplane + oh * g.OW;
        int64_t* id = idx + p * oplane + oh * g.OW;
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          o[ow] = m[ow];
          id[ow] = static_cast<int64_t>(a[ow]);
        }
      }
    }
  });
}

// NHWC: channels in blocks of kBlock, each block's maxima and winners in local arrays, the winners
// in an integer type as wide as the values (int32 for float): then the compiler vectorises the
// compare-and-select over the block (SSE2 and up) instead of branching per channel. The loop's trip
// count is a run-time value even for a whole block: with the constant 16, GCC unrolled the loop
// completely before vectorising it and branched per channel (8x slower than ATen on random data for
// 16 and 32 channels; benchmarks/bench_max_pool2d.py now times 10 and 64).
constexpr int64_t kBlock = 16;

template <typename scalar_t, typename index_t>
inline void take_max(const scalar_t* __restrict__ v, scalar_t* __restrict__ m,
                     index_t* __restrict__ a, index_t at, int64_t nb) {
  for (int64_t c = 0; c < nb; ++c) select_max(v[c], at, m[c], a[c]);
}

template <typename scalar_t>
void pool_nhwc(const PoolGeometry& g_in, const scalar_t* __restrict__ x, scalar_t* __restrict__ out,
               int64_t* __restrict__ idx) {
  using index_t = std::conditional_t<sizeof(scalar_t) == 4, int32_t, int64_t>;
  at::parallel_for(0, g_in.N * g_in.OH, 1, [&](int64_t begin, int64_t end) {
    const PoolGeometry g = g_in;  // a local copy: stores through idx cannot alias it
    const int64_t C = g.C;
    scalar_t m[kBlock];
    index_t a[kBlock];
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / g.OH, oh = r % g.OH;
      const scalar_t* xn = x + n * g.H * g.W * C;
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const Window w = pool_window(g, oh, ow);
        const index_t first = static_cast<index_t>(w.h0 * g.W + w.w0);
        for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
          const int64_t nb = C - c0 < kBlock ? C - c0 : kBlock;
          for (int64_t c = 0; c < kBlock; ++c) {
            m[c] = -std::numeric_limits<scalar_t>::infinity();
            a[c] = first;
          }
          for (int64_t ih = w.h0; ih < w.h1; ih += g.dh) {
            for (int64_t iw = w.w0; iw < w.w1; iw += g.dw) {
              const int64_t at = ih * g.W + iw;
              take_max<scalar_t, index_t>(xn + at * C + c0, m, a, static_cast<index_t>(at), nb);
            }
          }
          scalar_t* o = out + (r * g.OW + ow) * C + c0;
          int64_t* id = idx + (r * g.OW + ow) * C + c0;
          for (int64_t c = 0; c < nb; ++c) {
            o[c] = m[c];
            id[c] = static_cast<int64_t>(a[c]);
          }
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_cpu(const at::Tensor& x_in,
                                                  at::IntArrayRef kernel_size,
                                                  at::IntArrayRef stride, at::IntArrayRef padding,
                                                  at::IntArrayRef dilation, bool ceil_mode) {
  const PoolGeometry g = pool_geometry(x_in, kernel_size, stride, padding, dilation, ceil_mode);
  const at::MemoryFormat fmt = layout_of(g.nhwc);
  const at::Tensor x = x_in.contiguous(fmt);
  at::Tensor out = at::empty({g.N, g.C, g.OH, g.OW}, x.options().memory_format(fmt));
  at::Tensor idx =
      at::empty({g.N, g.C, g.OH, g.OW}, x.options().dtype(at::kLong).memory_format(fmt));
  if (out.numel() == 0) return {out, idx};
  // the NHWC float kernel keeps winners as int32 (positions in a plane)
  TORCH_CHECK(g.H * g.W <= INT32_MAX, "x's plane must have at most 2^31 - 1 elements, got ",
              g.H * g.W);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "max_pool2d", [&] {
    if (g.nhwc) {
      pool_nhwc<scalar_t>(g, x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                          idx.data_ptr<int64_t>());
    } else {
      pool_nchw<scalar_t>(g, x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                          idx.data_ptr<int64_t>());
    }
  });
  return {out, idx};
}

at::Tensor max_pool2d_backward_cpu(const at::Tensor& grad_in, const at::Tensor& x,
                                   const at::Tensor& idx_in, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   at::IntArrayRef dilation, bool ceil_mode) {
  const bool nhwc = check_pool_backward_args(grad_in, x, idx_in, kernel_size, stride, padding,
                                             dilation, ceil_mode)
                        .nhwc;
  const at::MemoryFormat fmt = layout_of(nhwc);
  // channels_last outputs' gradient into an NCHW x: read in their own layout and scattered into
  // NCHW planes (no transposing copy: the autoencoder training copy's first pool gives its
  // gradient to ops.conv2d's input gradient, which takes NCHW operands;
  // adversarial._KernelMaxPool2d)
  const bool to_planes = !nhwc && is_nhwc(grad_in) && is_nhwc(idx_in);
  const at::MemoryFormat src = to_planes ? at::MemoryFormat::ChannelsLast : fmt;
  const at::Tensor grad = grad_in.contiguous(src), idx = idx_in.contiguous(src);
  const int64_t N = x.size(0), C = x.size(1), plane = x.size(2) * x.size(3);
  const int64_t oplane = grad.size(2) * grad.size(3);
  at::Tensor gi = at::empty(x.sizes(), x.options().memory_format(fmt));
  if (gi.numel() == 0) return gi;
  const int64_t* ip = idx.data_ptr<int64_t>();
  // an index outside the plane is counted (and skipped) where it is met; any makes the call fail
  std::atomic<int64_t> bad{0};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "max_pool2d_backward", [&] {
    const scalar_t* gp = grad.data_ptr<scalar_t>();
    scalar_t* op = gi.data_ptr<scalar_t>();
    if (nhwc || to_planes) {
      // element (c, i) of an image sits at i * C + c in channels_last, at c * plane + i in planes;
      // either way it gets its winners' gradients in output order (the same sums, bit for bit)
      const int64_t ci = to_planes ? 1 : C, cc = to_planes ? plane : 1;
      at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          scalar_t* o = op + n * plane * C;
          std::fill(o, o + plane * C, scalar_t(0));
          const scalar_t* g = gp + n * oplane * C;
          const int64_t* id = ip + n * oplane * C;
          int64_t wrong = 0;
          for (int64_t k = 0; k < oplane; ++k) {
            for (int64_t c = 0; c < C; ++c) {
              const int64_t i = id[k * C + c];
              const bool ok = i >= 0 && i < plane;
              wrong += ok ? 0 : 1;
              o[(ok ? i : 0) * ci + c * cc] += ok ? g[k * C + c] : scalar_t(0);
            }
          }
          if (wrong) bad += wrong;
        }
      });
    } else {
      at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p) {
          scalar_t* o = op + p * plane;
          std::fill(o, o + plane, scalar_t(0));
          const scalar_t* g = gp + p * oplane;
          const int64_t* id = ip + p * oplane;
          int64_t wrong = 0;
          for (int64_t k = 0; k < oplane; ++k) {
            const int64_t i = id[k];
            const bool ok = i >= 0 && i < plane;
            wrong += ok ? 0 : 1;
            o[ok ? i : 0] += ok ? g[k] : scalar_t(0);
          }
          if (wrong) bad += wrong;
        }
      });
    }
  });
  TORCH_CHECK(bad.load() == 0, "indices must lie in [0, ", plane,
              ") (positions in the input plane); ", bad.load(), " do not");
  return gi;
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CPU, m) {
  m.impl("max_pool2d", &max_pool2d_cpu);
  m.impl("max_pool2d_backward", &max_pool2d_backward_cpu);
}

}  // namespace deepdig_fast
