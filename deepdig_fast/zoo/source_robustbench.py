"""`robustbench:[DATASET/THREAT/]NAME`: a model of robustbench's zoo, its architecture for a
weights file or its own cache file in ./models (it normalises inside the model). robustbench is
imported only when a spec names it."""

from __future__ import annotations

from pathlib import Path

from deepdig_fast.zoo.build import Built, import_optional, load_state

__all__ = ["build_robustbench"]


def build_robustbench(name: str, spec: str, state, pretrained: bool, num_classes, in_shape) -> Built:
    import_optional("robustbench", spec, extra="git+https://github.com/RobustBench/robustbench")
    from robustbench.utils import load_model as rb_load

    parts = name.split("/")
    if len(parts) == 1:
        dataset, threat, model_name = "cifar10", "Linf", parts[0]
    elif len(parts) == 3:
        dataset, threat, model_name = parts
    else:
        raise ValueError(
            f"{spec}: expected robustbench:NAME or robustbench:DATASET/THREAT/NAME (e.g. cifar10/Linf/Standard)"
        )
    model_dir = Path("models")  # robustbench's own default cache folder
    if state is None and pretrained and not (model_dir / dataset / threat / f"{model_name}.pt").is_file():
        raise FileNotFoundError(
            f"{spec}: {model_dir / dataset / threat / (model_name + '.pt')} is not there; fetch it once "
            f"with python -c \"from robustbench.utils import load_model; load_model('{model_name}', "
            f"dataset='{dataset}', threat_model='{threat}')\" in this folder"
        )
    if state is not None:
        from robustbench.model_zoo import model_dicts
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

        model = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat)][model_name]["model"]()
        load_state(model, state, spec)
    else:
        model = rb_load(model_name=model_name, dataset=dataset, threat_model=threat, model_dir=str(model_dir))
    # robustbench models take [0, 1] inputs and normalise inside
    return Built(
        model,
        "" if state is not None else f"robustbench cache {model_dir}",
        num_classes,
        None,
        None,
        "inside the robustbench model",
    )
