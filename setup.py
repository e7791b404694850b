"""Build the deepdig_fast._C extension.

CPU kernels are always built. CUDA kernels are built when torch is a CUDA build and either a GPU is
visible or FORCE_CUDA=1 is set (the compile-and-link check on a machine without a GPU). The whole
configuration is computed once, up front, and printed.
"""

import glob
import os
import sys

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:  # pragma: no cover - explained to the user
    sys.exit(
        "deepdig_fast: torch must be installed before building (pip install torch), and the build "
        "must run with --no-build-isolation: pip install --no-build-isolation -e ."
    )

ROOT = os.path.dirname(os.path.abspath(__file__))


def _config():
    force_cuda = os.environ.get("FORCE_CUDA", "0") == "1"
    torch_has_cuda = torch.version.cuda is not None
    with_cuda = torch_has_cuda and CUDA_HOME is not None and (force_cuda or torch.cuda.is_available())
    if force_cuda and not with_cuda:
        sys.exit(
            f"deepdig_fast: FORCE_CUDA=1 but torch {torch.__version__} is "
            f"{'a CUDA build' if torch_has_cuda else 'a CPU-only build'} and CUDA_HOME={CUDA_HOME}; "
            "install a CUDA build of torch and set CUDA_HOME (e.g. /usr/local/cuda)."
        )
    arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if with_cuda and not arch_list and not torch.cuda.is_available():
        # Without a visible GPU torch cannot guess the architecture (it raises IndexError).
        arch_list = "8.0;9.0"
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
    debug = os.environ.get("DEBUG", "0") == "1"
    return {
        "with_cuda": with_cuda,
        "arch_list": arch_list if with_cuda else None,
        "torch_version": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_home": CUDA_HOME if with_cuda else None,
        "debug": debug,
    }


CONFIG = _config()
print("deepdig_fast build configuration: " + ", ".join(f"{k}={v}" for k, v in CONFIG.items()), flush=True)


def _without_torch_python(ext):
    # The module is a bare CPython module (csrc/deepdig_fast.cpp, no pybind11): it needs libtorch
    # only. torch's helpers add libtorch_python for pybind11 users; leaving it out keeps the
    # extension independent of torch's Python bindings.
    ext.libraries = [lib for lib in ext.libraries if lib != "torch_python"]
    return ext


def _extension():
    # the method's ops (csrc/, csrc/cpu/) and the training accelerator's (csrc/train/)
    sources = [*sorted(glob.glob("csrc/*.cpp")), *sorted(glob.glob("csrc/cpu/*.cpp"))]
    sources += [*sorted(glob.glob("csrc/train/*.cpp")), *sorted(glob.glob("csrc/train/cpu/*.cpp"))]
    opt = ["-O0", "-g"] if CONFIG["debug"] else ["-O3", "-g0"]
    # No -std flag: torch's BuildExtension picks the language level its headers need (C++17 up to
    # torch 2.13, C++20 from 2.14); the sources themselves are valid C++17.
    cxx = [*opt, "-fopenmp"]
    define_macros = [("DEEPDIG_TORCH_VERSION", f'"{CONFIG["torch_version"]}"')]
    extra_link = ["-fopenmp"]
    if CONFIG["with_cuda"]:
        sources += [*sorted(glob.glob("csrc/cuda/*.cu")), *sorted(glob.glob("csrc/train/cuda/*.cu"))]
        define_macros += [("DEEPDIG_WITH_CUDA", None)]
        nvcc = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"] if not CONFIG["debug"] else ["-G"]
        return _without_torch_python(
            CUDAExtension(
                "deepdig_fast._C",
                sources,
                include_dirs=[os.path.join(ROOT, "csrc")],
                define_macros=define_macros,
                extra_compile_args={"cxx": cxx, "nvcc": nvcc},
                extra_link_args=extra_link,
            )
        )
    return _without_torch_python(
        CppExtension(
            "deepdig_fast._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx},
            extra_link_args=extra_link,
        )
    )


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
