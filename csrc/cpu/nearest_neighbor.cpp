// CPU kernel of nearest_neighbor: for every query row, the index of the reference row at the
// smallest Euclidean distance (the lowest index among exact ties) and that distance. Memory is
// O(Q + R): no [Q, R] distance matrix is formed. Squared distances accumulate in double.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "common/checks.h"

namespace deepdig_fast {
namespace {

std::tuple<at::Tensor, at::Tensor> nearest_neighbor_cpu(const at::Tensor& queries_in,
                                                        const at::Tensor& refs_in) {
  check_nearest_neighbor_args(queries_in, refs_in);
  const int64_t Q = queries_in.size(0), R = refs_in.size(0), E = queries_in.size(1);
  const at::Tensor q = queries_in.contiguous(), ref = refs_in.contiguous();
  at::Tensor index = at::empty({Q}, q.options().dtype(at::kLong));
  at::Tensor dist = at::empty({Q}, q.options());
  if (Q == 0) return {index, dist};
  int64_t* ip = index.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, q.scalar_type(), "nearest_neighbor", [&] {
        const scalar_t* qp = q.data_ptr<scalar_t>();
        const scalar_t* rp = ref.data_ptr<scalar_t>();
        scalar_t* dp = dist.data_ptr<scalar_t>();
        // Reference blocks keep a tile of refs hot in cache while a group of queries scans it.
        constexpr int64_t kRefBlock = 256;
        at::parallel_for(0, Q, 8, [&](int64_t begin, int64_t end) {
          std::vector<double> qrow(E);
          std::vector<double> best(end - begin, std::numeric_limits<double>::infinity());
          std::vector<int64_t> arg(end - begin, 0);
          for (int64_t r0 = 0; r0 < R; r0 += kRefBlock) {
            const int64_t r1 = std::min(R, r0 + kRefBlock);
            for (int64_t i = begin; i < end; ++i) {
              for (int64_t e = 0; e < E; ++e) qrow[e] = static_cast<double>(qp[i * E + e]);
              double b = best[i - begin];
              int64_t a = arg[i - begin];
              for (int64_t r = r0; r < r1; ++r) {
                const scalar_t* rr = rp + r * E;
                double acc = 0.0;
                for (int64_t e = 0; e < E; ++e) {
                  const double d = qrow[e] - static_cast<double>(rr[e]);
                  acc += d * d;
                }
                if (acc < b) {
                  b = acc;
                  a = r;
                }
              }
              best[i - begin] = b;
              arg[i - begin] = a;
            }
          }
          for (int64_t i = begin; i < end; ++i) {
            ip[i] = arg[i - begin];
            dp[i] = static_cast<scalar_t>(std::sqrt(best[i - begin]));
          }
        });
      });
  return {index, dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CPU, m) {
  m.impl("nearest_neighbor", &nearest_neighbor_cpu);
}

}  // namespace deepdig_fast
