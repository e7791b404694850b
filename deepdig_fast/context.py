"""The run context: the set-up every run of the method shares, done once, before any expensive work.

    ctx, config = prepare_run(classifier, data, (s, t), config, embedding_layer=..., autoencoder=...)

It checks (the classifier's fit to the data and the embedding layer, one forward; the input-contract
accuracy guard), prepares the classifier for inference-only forwards (deepdig_fast.fast), fixes
the engine's settings, the joint-training mode and the identity of the model and the data -- the
entries every stage key starts from. run_pair and run_atlas (and whatever composes the method
next) start from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from deepdig_fast.adversarial import AutoencoderSpec, autoencoder_key, joint_training_mode, resolve_lr
from deepdig_fast.checkpoint import check_accuracy, check_fits
from deepdig_fast.data import ClassificationData
from deepdig_fast.engine import choose_batch_size, default_batch_size, default_loop
from deepdig_fast.fast import PreparedClassifier, inference_record, prepare_classifier, probe_inputs
from deepdig_fast.hooks import model_device
from deepdig_fast.identity import data_fingerprint, model_identity
from deepdig_fast.rundir import KEY_SCHEMA
from deepdig_fast.stages import EngineSettings
from deepdig_fast.zoo import resolve_embedding_layer

#: the live-batch cap when the engine's batch size is measured ("auto")
AUTO_BATCH_LIMIT = 1 << 16


@dataclass(frozen=True)
class RunContext:
    """What a run knows once it is set up.

    model: the user's classifier; classifier: the same, prepared for inference-only forwards
    (every stage's classifier). classes: the classes the run covers, in the caller's order.
    accuracy: the guard's test accuracy per class. identity / data: model_identity and
    data_fingerprint. engine: component III's settings. joint_training: the mode that trains the
    autoencoders ("vectorized", "processes" or "sequential")."""

    model: nn.Module
    classifier: PreparedClassifier
    data: ClassificationData
    classes: tuple[int, ...]
    embedding_layer: str | None
    autoencoder: AutoencoderSpec
    accuracy: dict[int, float | None]
    identity: dict
    data_print: dict
    engine: EngineSettings
    joint_training: str

    @property
    def device(self) -> Any:
        return model_device(self.model)

    def key(self) -> dict[str, Any]:
        """The entries every stage key starts from: the key schema, the function and its weights,
        the data, the autoencoder and how inference ran (optimised logits differ from eager ones
        in the last bits, so a resumed run never mixes the two)."""
        return {
            "key_schema": KEY_SCHEMA,
            "classifier": self.identity,
            "data": self.data_print,
            "autoencoder": autoencoder_key(self.autoencoder, self.data.sample_shape),
            "inference": self.classifier.key(),
        }

    def classifier_record(self) -> dict[str, Any]:
        """manifest.json's "classifier" entry."""
        return {
            "sha256": self.identity["weights"],
            "structure": self.identity["structure"],
            "class": type(self.model).__name__,
            "embedding_layer": self.embedding_layer,
            "class_accuracy": {str(c): a for c, a in self.accuracy.items()},
        }

    def inference_record(self) -> dict[str, Any]:
        """manifest.json's "inference" entry (no wall times)."""
        return {**inference_record(self.classifier), "engine_loop": self.engine.loop}

    def inference_timing(self) -> dict[str, Any]:
        """timings.json's "inference" entry."""
        return {"mode": self.classifier.mode, "prepare_seconds": self.classifier.seconds}


def prepare_run(
    classifier: nn.Module,
    data: ClassificationData,
    classes: Sequence[int],
    config: Any,
    *,
    embedding_layer: str | None,
    autoencoder: AutoencoderSpec,
    min_accuracy: float | None,
    processes: int = 1,
    probe_per_class: int = 32,
) -> tuple[RunContext, Any]:
    """Check and set up a run of `classifier` on `classes` of `data` (see the module docstring).

    config: a PairConfig or an AtlasConfig; returned resolved: the autoencoders' learning rate
    (AdversarialConfig.lr "auto": resolve_lr), a fixed engine batch size (None:
    the device's default, "auto": measured here, once, so that the value enters every key), and
    with compile off, the autoencoders' training loss eager too. processes: how many processes
    share the run (torch.distributed ranks); with several, each trains its autoencoders one at a
    time ("sequential"). probe_per_class: training inputs per class in the inference guard's probe.
    """
    embedding_layer = resolve_embedding_layer(classifier, embedding_layer, data.probe_inputs(2))
    check_fits(classifier, data, embedding_layer=embedding_layer)  # one forward
    accuracy = check_accuracy(classifier, data, classes, min_accuracy)  # the input-contract guard
    # the learning rate "auto" stands for with these autoencoders, before anything is keyed
    config = dataclasses.replace(config, adversarial=resolve_lr(config.adversarial, autoencoder, data.sample_shape))
    if config.compile in (False, "eager"):  # everything eager, the autoencoders' training loss too
        config = dataclasses.replace(config, adversarial=dataclasses.replace(config.adversarial, compile=False))
    device = model_device(classifier)
    fast = prepare_classifier(
        classifier,
        probe_inputs(data, classes, device, per_class=probe_per_class),
        embedding_layer=embedding_layer,
        compile=config.compile,
    )
    if config.engine_batch_size is None:
        config = dataclasses.replace(config, engine_batch_size=default_batch_size(device, data.sample_shape))
    elif config.engine_batch_size == "auto":
        probe = data.class_inputs(classes[0], "train")[:64].to(device)
        config = dataclasses.replace(config, engine_batch_size=choose_batch_size(fast, probe, AUTO_BATCH_LIMIT))
    engine = EngineSettings(
        beta=config.beta,
        max_steps=config.max_steps,
        method=config.method,
        batch_size=config.engine_batch_size,
        loop=default_loop(device, config.compile),
    )
    joint = "sequential"
    if processes == 1:
        joint = joint_training_mode(
            config.joint_training, device, classifier, autoencoder, steps=config.adversarial.steps
        )
    ctx = RunContext(
        model=classifier,
        classifier=fast,
        data=data,
        classes=tuple(classes),
        embedding_layer=embedding_layer,
        autoencoder=autoencoder,
        accuracy=accuracy,
        identity=model_identity(classifier),
        data_print=data_fingerprint(data),
        engine=engine,
        joint_training=joint,
    )
    return ctx, config
