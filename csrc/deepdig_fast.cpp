// Every operator schema of deepdig_fast, in one TORCH_LIBRARY block, plus two small ops that report
// how the extension was built and the constants its kernels use. Kernels live in cpu/<stem>.cpp and
// cuda/<stem>.cu and are registered there with TORCH_LIBRARY_IMPL.
//
// No pybind11: the Python module deepdig_fast._C is a bare CPython module whose import loads this
// library (and so runs the registrations). Only libtorch is linked, not libtorch_python.
#include <Python.h>
#include <torch/library.h>

#include <sstream>
#include <string>

#include "common/bracket.h"

#ifdef DEEPDIG_WITH_CUDA
#include <cuda.h>
#endif

namespace deepdig_fast {
namespace {

// {"name": value, ...} for one table of named constants.
template <size_t N>
void write_group(std::ostringstream& out, const char* group, const NamedConstant (&items)[N]) {
  out << '"' << group << "\": {";
  for (size_t i = 0; i < N; ++i) {
    out << (i ? ", " : "") << '"' << items[i].name << "\": " << items[i].value;
  }
  out << '}';
}

// JSON: the status codes, the methods, the state columns and the empty-row index of
// csrc/common/bracket.h, so Python can check that its mirrors (deepdig_fast.engine.Status,
// ops.METHODS, ...) agree with the kernels.
std::string constants() {
  std::ostringstream out;
  out << '{';
  write_group(out, "status", kStatusNames);
  out << ", ";
  write_group(out, "method", kMethodNames);
  out << ", ";
  write_group(out, "fstate", kFloatColNames);
  out << ", ";
  write_group(out, "istate", kIntColNames);
  out << ", ";
  write_group(out, "idx", kIdxNames);
  out << '}';
  return out.str();
}

// JSON: with_cuda, cuda_version (of the CUDA toolkit compiled against, or null), torch_version
// (compiled against) and cplusplus (the language level).
std::string build_info() {
  std::ostringstream out;
#ifdef DEEPDIG_WITH_CUDA
  out << "{\"with_cuda\": true, \"cuda_version\": \"" << CUDA_VERSION / 1000 << '.'
      << (CUDA_VERSION % 1000) / 10 << '"';
#else
  out << "{\"with_cuda\": false, \"cuda_version\": null";
#endif
  out << ", \"torch_version\": \"" << DEEPDIG_TORCH_VERSION << '"';
  out << ", \"cplusplus\": " << static_cast<long>(__cplusplus) << '}';
  return out.str();
}

}  // namespace
}  // namespace deepdig_fast

TORCH_LIBRARY(deepdig_fast, m) {
  // Borderline engine (stem: bracket). See csrc/common/bracket.h for the state layout.
  m.def("bracket_propose(Tensor a, Tensor b, Tensor idx, Tensor fstate, int method)"
        " -> (Tensor x, Tensor lam, Tensor stalled)");
  m.def("bracket_update(Tensor logits, Tensor x, Tensor idx, Tensor lam, Tensor stalled,"
        " Tensor source, Tensor target, Tensor(a!) fstate, Tensor(b!) istate, Tensor(c!) points,"
        " Tensor(d!) probs, Tensor(e!) lam_out, float beta, int max_steps, int method) -> Tensor");
  // Embedding-nearest pairs (stem: nearest_neighbor).
  m.def("nearest_neighbor(Tensor queries, Tensor refs) -> (Tensor index, Tensor distance)");
  // Trajectory oscillation (stem: trajectory): segment points, then per-segment label statistics.
  m.def("segment_points(Tensor x, Tensor i_idx, Tensor j_idx, int T) -> Tensor");
  m.def("trajectory_stats(Tensor logits, Tensor source, Tensor target, int T, float band_lo,"
        " float band_hi) -> Tensor");
  // Embedding linearity (stem: linear_distances): signed hyperplane distances and their summary.
  m.def("linear_distances(Tensor h, Tensor w, float bias, Tensor labels)"
        " -> (Tensor d, Tensor summary)");
  // Max pooling with the winners' positions, and its backward (stem: max_pool2d): the pools of the
  // classifier copy the autoencoder trainings run against (train/max_pool2d.h).
  m.def("max_pool2d(Tensor x, int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation,"
        " bool ceil_mode) -> (Tensor out, Tensor indices)");
  m.def("max_pool2d_backward(Tensor grad, Tensor x, Tensor indices, int[2] kernel_size,"
        " int[2] stride, int[2] padding, int[2] dilation, bool ceil_mode) -> Tensor");
  // A convolution whose input gradient takes ATen's unfold + GEMM path on a CPU (stem: conv2d):
  // the first convolutions of the classifier copy the autoencoder trainings run against
  // (train/conv2d.h).
  m.def("conv2d(Tensor x, Tensor weight, Tensor? bias, int[2] stride, int[2] padding) -> Tensor");
  m.def("conv2d_grad_input(Tensor grad, Tensor x, Tensor weight, int[2] stride, int[2] padding)"
        " -> Tensor");
  // The mean binary cross-entropy of probabilities and its input gradient (stem:
  // binary_cross_entropy): the autoencoder trainings' reconstruction loss
  // (train/binary_cross_entropy.h).
  m.def("binary_cross_entropy(Tensor input, Tensor target) -> Tensor");
  m.def("binary_cross_entropy_backward(Tensor grad, Tensor input, Tensor target) -> Tensor");
  // About the extension itself (no tensor arguments, one kernel for every backend; JSON strings).
  m.def("constants() -> str", &deepdig_fast::constants);
  m.def("build_info() -> str", &deepdig_fast::build_info);
}

// The module deepdig_fast._C: empty; importing it is what loads the operators above.
PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {
      PyModuleDef_HEAD_INIT,
      "_C",
      "deepdig_fast C++/CUDA operators (registered under torch.ops.deepdig_fast)",
      -1,
      nullptr,
  };
  return PyModule_Create(&module);
}
