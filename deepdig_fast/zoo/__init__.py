"""Any classifier: model zoos, their normalisation, and the embedding layer found without naming it.

The model contract: DeepDIG works in the data's pixel space, values in [0, 1]. Interpolation,
autoencoders, baselines and distances all stay there. Whatever preprocessing a classifier needs
(mean/std normalisation, a resize to the resolution it was trained at) happens inside the model, in
a `Preprocessed` wrapper, so it is part of every forward -- and of every gradient that flows back to
the pixels.

    model, info = load_model("timm:resnet18", weights="ft.safetensors", in_shape=(3, 32, 32))
    # info: source, weights, num_classes, classes, normalisation, resize, embedding layer

Model sources (`spec`):
    package.module:factory   your own code (checkpoint.load_user_model); file.py:factory works too
    torchvision:NAME         torchvision.models.get_model(NAME)
    timm:NAME                timm.create_model(NAME)
    hf:MODEL_ID_OR_DIR       transformers.AutoModelForImageClassification, wrapped to return logits
    robustbench:[DATASET/THREAT/]NAME   robustbench's model zoo (its normalisation is inside the model)

Weights: a state_dict file (`.pt`/`.pth`, read with weights_only=True, or `.safetensors`), or the
library's own pretrained weights when they already are in the local cache (torch hub cache, Hugging
Face cache). Nothing is ever downloaded here: without the cache the error says how to fetch them.

torchvision, timm, transformers, safetensors and robustbench are optional (`pip install
deepdig_fast[zoo]`) and imported only when a spec needs them; `Preprocessed`, `parse_normalize` and
`find_embedding_layer` need none of them.

The modules:
    load.py                 load_model: the spec parsed and dispatched, the model wrapped, its layer found
    normalize.py            Normalization, NORMALIZATIONS, parse_normalize, parse_resize, Preprocessed
    embedding.py            find_embedding_layer, resolve_embedding_layer, the classifier layer by structure
    build.py                what the builders share: Built, import_optional, read_weights, class counts
    source_torchvision.py   torchvision:NAME
    source_timm.py          timm:NAME
    source_hf.py            hf:MODEL_ID_OR_DIR and HFClassifier
    source_robustbench.py   robustbench:[DATASET/THREAT/]NAME
"""

from deepdig_fast.zoo.build import read_weights
from deepdig_fast.zoo.embedding import find_embedding_layer, resolve_embedding_layer
from deepdig_fast.zoo.load import ZOO_SOURCES, load_model
from deepdig_fast.zoo.normalize import NORMALIZATIONS, Normalization, Preprocessed, parse_normalize, parse_resize
from deepdig_fast.zoo.source_hf import HFClassifier

__all__ = [
    "Normalization",
    "NORMALIZATIONS",
    "parse_normalize",
    "parse_resize",
    "Preprocessed",
    "HFClassifier",
    "find_embedding_layer",
    "resolve_embedding_layer",
    "read_weights",
    "load_model",
    "ZOO_SOURCES",
]
