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
  TORCH_CHECK(t.scalar_type() == dtype, name, " must have dtype ", dtype, ", got ", t.scalar_type());
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
  TORCH_CHECK(b.sizes() == a.sizes(), "b must have the shape of a ", a.sizes(), ", got ", b.sizes());
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
  TORCH_CHECK(lam_out.dim() == 1 && lam_out.size(0) == P, "lam_out must have shape [", P,
              "], got ", lam_out.sizes());
  check_dtype(lam_out, at::kDouble, "lam_out");
  for (const at::Tensor* t : {&fstate, &istate, &points, &probs, &lam_out}) {
    TORCH_CHECK(t->is_contiguous(), "state and output tensors (fstate, istate, points, probs, "
                "lam_out) must be contiguous");
  }
  const at::Tensor* all[] = {&x, &idx, &lam, &stalled, &source, &target,
                             &fstate, &istate, &points, &probs, &lam_out};
  const char* names[] = {"x", "idx", "lam", "stalled", "source", "target",
                         "fstate", "istate", "points", "probs", "lam_out"};
  for (int i = 0; i < 11; ++i) check_same_device(*all[i], logits, names[i]);
}

}  // namespace deepdig_fast
