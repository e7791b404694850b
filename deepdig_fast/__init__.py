"""deepdig_fast: find and characterize the decision boundaries of deep classifiers (DeepDIG).

The public API is imported lazily, so `import deepdig_fast` and `deepdig --help` stay fast and the
pure-Python modules (data, models, ...) work before the C++ extension is built.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "build_info": "deepdig_fast.ops",
    "Status": "deepdig_fast.engine",
    "BorderlineResult": "deepdig_fast.engine",
    "refine_borderline": "deepdig_fast.engine",
    "capture_embeddings": "deepdig_fast.hooks",
    "embed": "deepdig_fast.forward",
    "load_mnist": "deepdig_fast.data",
    "load_fashion_mnist": "deepdig_fast.data",
    "load_cifar10": "deepdig_fast.data",
    "load_idx_dataset": "deepdig_fast.data",
    "ClassificationData": "deepdig_fast.data",
    "build_classifier": "deepdig_fast.models",
    "train_classifier": "deepdig_fast.models",
    "TrainRecipe": "deepdig_fast.training",
    "PGDConfig": "deepdig_fast.training",
    "recipe": "deepdig_fast.training",
    "pgd_attack": "deepdig_fast.training",
    "write_tables": "deepdig_fast.tables",
    "save_classifier": "deepdig_fast.checkpoint",
    "load_classifier": "deepdig_fast.checkpoint",
    "check_fits": "deepdig_fast.checkpoint",
    "load_model": "deepdig_fast.zoo",
    "Preprocessed": "deepdig_fast.zoo",
    "find_embedding_layer": "deepdig_fast.zoo",
    "resolve_embedding_layer": "deepdig_fast.zoo",
    "parse_normalize": "deepdig_fast.zoo",
    "NORMALIZATIONS": "deepdig_fast.zoo",
    "AdversarialConfig": "deepdig_fast.configs",
    "AutoStop": "deepdig_fast.configs",
    "train_adversarial_autoencoder": "deepdig_fast.adversarial",
    "train_adversarial_autoencoders": "deepdig_fast.adversarial",
    "train_in_processes": "deepdig_fast.adversarial",
    "train_jointly": "deepdig_fast.adversarial",
    "prepare_classifier": "deepdig_fast.fast",
    "PreparedClassifier": "deepdig_fast.fast",
    "component_one": "deepdig_fast.adversarial",
    "component_two": "deepdig_fast.adversarial",
    "random_pairs": "deepdig_fast.baselines",
    "embedding_nearest_pairs": "deepdig_fast.baselines",
    "PairConfig": "deepdig_fast.configs",
    "PairResult": "deepdig_fast.pipeline",
    "run_pair": "deepdig_fast.pipeline",
    "AtlasConfig": "deepdig_fast.configs",
    "AtlasResult": "deepdig_fast.atlas",
    "run_atlas": "deepdig_fast.atlas",
    "atlas_directions": "deepdig_fast.atlas",
    "load_atlas": "deepdig_fast.atlas_report",
    "write_atlas_report": "deepdig_fast.atlas_report",
    "compare_atlases": "deepdig_fast.atlas_report",
    "load_results": "deepdig_fast.sweep.results",
    "summarize_results": "deepdig_fast.sweep.results",
    "results_rows": "deepdig_fast.sweep.results",
    "read_spec": "deepdig_fast.sweep.spec",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'deepdig_fast' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
