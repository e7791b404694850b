// Every operator schema of deepdig_fast, in one TORCH_LIBRARY block, plus the Python module that
// reports how the extension was built. Kernels live in cpu/<stem>.cpp and cuda/<stem>.cu and are
// registered there with TORCH_LIBRARY_IMPL.
#include <torch/extension.h>

#ifdef DEEPDIG_WITH_CUDA
#include <cuda.h>
#endif

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
}

namespace {

pybind11::dict build_info() {
  pybind11::dict info;
#ifdef DEEPDIG_WITH_CUDA
  info["with_cuda"] = true;
  info["cuda_version"] =
      std::to_string(CUDA_VERSION / 1000) + "." + std::to_string((CUDA_VERSION % 1000) / 10);
#else
  info["with_cuda"] = false;
  info["cuda_version"] = pybind11::none();
#endif
  info["torch_version"] = DEEPDIG_TORCH_VERSION;
  info["cplusplus"] = static_cast<long>(__cplusplus);
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "deepdig_fast C++/CUDA operators (registered under torch.ops.deepdig_fast)";
  m.def("build_info", &build_info, "How this extension was compiled");
}
