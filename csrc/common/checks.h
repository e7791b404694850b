// Argument checks shared by the CPU and CUDA kernels. Messages name the argument and what was
// expected; the Python wrappers in deepdig_fast/ops.py check the same things first with friendlier
// wording, so these guard direct torch.ops calls.
#pragma once

#include <ATen/ATen.h>

namespace deepdig_fast {

inline void check_dim(const at::Tensor& t, int64_t dim, const char* name) {
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got shape ", t.sizes());
}

inline void check_rows(const at::Tensor& t, int64_t rows, const char* name, const char* what) {
  TORCH_CHECK(t.size(0) == rows, name, " must have ", rows, " rows (", what, "), got shape ",
              t.sizes());
}

inline void check_dtype(const at::Tensor& t, at::ScalarType dtype, const char* name) {
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ",
              t.scalar_type());
}

inline void check_floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), name, " must be a floating-point tensor, got ",
              t.scalar_type());
}

inline void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* name) {
  TORCH_CHECK(t.device() == ref.device(), name, " must be on ", ref.device(), ", got ", t.device());
}

inline void check_contiguous(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// Checks shared by both backends of bracket_propose.
inline void check_propose_args(const at::Tensor& a, const at::Tensor& b, const at::Tensor& idx,
                               const at::Tensor& fstate) {
  check_dim(a, 2, "a");
  check_floating(a, "a");
  TORCH_CHECK(b.sizes() == a.sizes(), "b must have the shape of a ", a.sizes(), ", got ",
              b.sizes());
  TORCH_CHECK(b.scalar_type() == a.scalar_type(), "b must have the dtype of a (", a.scalar_type(),
              "), got ", b.scalar_type());
  check_dim(idx, 1, "idx");
  check_dtype(idx, at::kLong, "idx");
  check_dim(fstate, 2, "fstate");
  check_dtype(fstate, at::kDouble, "fstate");
  TORCH_CHECK(fstate.size(0) == a.size(0) && fstate.size(1) == 4, "fstate must have shape [",
              a.size(0), ", 4], got ", fstate.sizes());
  check_same_device(b, a, "b");
  check_same_device(idx, a, "idx");
  check_same_device(fstate, a, "fstate");
}

// Checks shared by both backends of bracket_update.
inline void check_update_args(const at::Tensor& logits, const at::Tensor& x, const at::Tensor& idx,
                              const at::Tensor& lam, const at::Tensor& stalled,
                              const at::Tensor& source, const at::Tensor& target,
                              const at::Tensor& fstate, const at::Tensor& istate,
                              const at::Tensor& points, const at::Tensor& probs,
                              const at::Tensor& lam_out) {
  check_dim(logits, 2, "logits");
  check_floating(logits, "logits");
  const int64_t M = logits.size(0), C = logits.size(1);
  TORCH_CHECK(C >= 2, "logits must have at least 2 classes, got shape ", logits.sizes());
  check_dim(x, 2, "x");
  check_rows(x, M, "x", "one per logits row");
  check_dim(idx, 1, "idx");
  check_rows(idx, M, "idx", "one per logits row");
  check_dtype(idx, at::kLong, "idx");
  check_dim(lam, 1, "lam");
  check_rows(lam, M, "lam", "one per logits row");
  check_dtype(lam, at::kDouble, "lam");
  check_dim(stalled, 1, "stalled");
  check_rows(stalled, M, "stalled", "one per logits row");
  check_dtype(stalled, at::kBool, "stalled");
  check_dim(fstate, 2, "fstate");
  const int64_t P = fstate.size(0);
  TORCH_CHECK(fstate.size(1) == 4, "fstate must have shape [P, 4], got ", fstate.sizes());
  check_dtype(fstate, at::kDouble, "fstate");
  TORCH_CHECK(istate.dim() == 2 && istate.size(0) == P && istate.size(1) == 4,
              "istate must have shape [", P, ", 4], got ", istate.sizes());
  check_dtype(istate, at::kLong, "istate");
  TORCH_CHECK(source.dim() == 1 && source.size(0) == P, "source must have shape [", P, "], got ",
              source.sizes());
  TORCH_CHECK(target.dim() == 1 && target.size(0) == P, "target must have shape [", P, "], got ",
              target.sizes());
  check_dtype(source, at::kLong, "source");
  check_dtype(target, at::kLong, "target");
  TORCH_CHECK(points.dim() == 2 && points.size(0) == P && points.size(1) == x.size(1),
              "points must have shape [", P, ", ", x.size(1), "], got ", points.sizes());
  TORCH_CHECK(points.scalar_type() == x.scalar_type(), "points must have the dtype of x (",
              x.scalar_type(), "), got ", points.scalar_type());
  TORCH_CHECK(probs.dim() == 2 && probs.size(0) == P && probs.size(1) == C,
              "probs must have shape [", P, ", ", C, "], got ", probs.sizes());
  check_dtype(probs, at::kDouble, "probs");
  TORCH_CHECK(lam_out.dim() == 1 && lam_out.size(0) == P, "lam_out must have shape [", P, "], got ",
              lam_out.sizes());
  check_dtype(lam_out, at::kDouble, "lam_out");
  for (const at::Tensor* t : {&fstate, &istate, &points, &probs, &lam_out}) {
    TORCH_CHECK(t->is_contiguous(), "state and output tensors (fstate, istate, points, probs, "
                                    "lam_out) must be contiguous");
  }
  const at::Tensor* all[] = {&x,      &idx,    &lam,    &stalled, &source, &target,
                             &fstate, &istate, &points, &probs,   &lam_out};
  const char* names[] = {"x",      "idx",    "lam",    "stalled", "source", "target",
                         "fstate", "istate", "points", "probs",   "lam_out"};
  for (int i = 0; i < 11; ++i) check_same_device(*all[i], logits, names[i]);
}

// Checks shared by both backends of nearest_neighbor.
inline void check_nearest_neighbor_args(const at::Tensor& queries, const at::Tensor& refs) {
  check_dim(queries, 2, "queries");
  check_dim(refs, 2, "refs");
  check_floating(queries, "queries");
  TORCH_CHECK(refs.scalar_type() == queries.scalar_type(), "refs must have the dtype of queries (",
              queries.scalar_type(), "), got ", refs.scalar_type());
  TORCH_CHECK(refs.size(1) == queries.size(1), "refs must have ", queries.size(1),
              " columns like queries, got shape ", refs.sizes());
  check_same_device(refs, queries, "refs");
  TORCH_CHECK(refs.size(0) > 0 || queries.size(0) == 0,
              "refs must have at least one row when queries is not empty");
}

// Checks shared by both backends of segment_points.
inline void check_segment_args(const at::Tensor& x, const at::Tensor& i_idx,
                               const at::Tensor& j_idx, int64_t T) {
  check_dim(x, 2, "x");
  check_floating(x, "x");
  check_dim(i_idx, 1, "i_idx");
  check_dtype(i_idx, at::kLong, "i_idx");
  TORCH_CHECK(j_idx.dim() == 1 && j_idx.size(0) == i_idx.size(0), "j_idx must have shape [",
              i_idx.size(0), "] like i_idx, got ", j_idx.sizes());
  check_dtype(j_idx, at::kLong, "j_idx");
  TORCH_CHECK(T >= 1, "T must be >= 1, got ", T);
  check_same_device(i_idx, x, "i_idx");
  check_same_device(j_idx, x, "j_idx");
}

// Checks shared by both backends of trajectory_stats.
inline void check_trajectory_stats_args(const at::Tensor& logits, const at::Tensor& source,
                                        const at::Tensor& target, int64_t T) {
  check_dim(logits, 2, "logits");
  check_floating(logits, "logits");
  TORCH_CHECK(T >= 1, "T must be >= 1, got ", T);
  check_dim(source, 1, "source");
  check_dtype(source, at::kLong, "source");
  const int64_t S = source.size(0);
  TORCH_CHECK(target.dim() == 1 && target.size(0) == S, "target must have shape [", S,
              "] like source, got ", target.sizes());
  check_dtype(target, at::kLong, "target");
  TORCH_CHECK(logits.size(0) == S * T, "logits must have S*T = ", S * T, " rows, got shape ",
              logits.sizes());
  check_same_device(source, logits, "source");
  check_same_device(target, logits, "target");
}

// Checks shared by both backends of linear_distances.
inline void check_linear_args(const at::Tensor& h, const at::Tensor& w, const at::Tensor& labels) {
  check_dim(h, 2, "h");
  check_floating(h, "h");
  TORCH_CHECK(w.dim() == 1 && w.size(0) == h.size(1), "w must have shape [", h.size(1),
              "] (one weight per embedding feature), got ", w.sizes());
  check_dtype(w, at::kDouble, "w");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == h.size(0), "labels must have shape [",
              h.size(0), "], got ", labels.sizes());
  check_dtype(labels, at::kLong, "labels");
  check_same_device(w, h, "w");
  check_same_device(labels, h, "labels");
}

}  // namespace deepdig_fast
