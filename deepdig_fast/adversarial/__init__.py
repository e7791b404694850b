"""DeepDIG Components I and II: adversarial autoencoders that push inputs across a decision boundary.

Component I trains an autoencoder AE_I on the training inputs of a source class s so that its
outputs x' = AE_I(x) stay close to x (reconstruction BCE) while the classifier f assigns them to a
target class t (BCE between softmax(f(x')) and onehot(t)). The outputs with f(x) = s and f(x') = t
form the adversarial set A(s→t).

Component II trains a fresh autoencoder AE_II of the same shape on A(s→t) with target s; the pairs
(a, a'') with a'' = AE_II(a), f(a) = t and f(a'') = s straddle the s|t boundary and feed the
bisection of Component III.

Loss (docs/METHOD-NOTES.md, both terms ``torch.nn.BCELoss`` with mean reduction)::

    L = BCE(x', x) + alpha * BCE(softmax(f(x')), onehot(target))

Shapes: the classifier maps ``[N, *in_shape] -> [N, C]`` logits; autoencoders map
``[N, *in_shape] -> [N, *in_shape]`` with outputs in (0, 1). All inputs must lie in [0, 1].

Modules:
    autoencoders   the architectures (the paper's MLP, the convolutional family), user factories,
                   autoencoder_key, build_autoencoder, apply_autoencoder
    config         TrainHistory, training_layout, training_key (AdversarialConfig and AutoStop are
                   declared in deepdig_fast.configs)
    training       train_adversarial_autoencoder (one), train_adversarial_autoencoders (vmapped)
    accelerate     the training accelerator: the frozen channels_last copy with kernel pools / convs
    joint          training several at once: joint_training_mode, JointTraining, TrainingPool
    components     apply_generator, component_one, component_two and their results
"""

from __future__ import annotations

from deepdig_fast.adversarial.autoencoders import (
    AutoencoderSpec,
    Classifier,
    ConvAutoencoder,
    MLPAutoencoder,
    apply_autoencoder,
    autoencoder_from_spec,
    autoencoder_key,
    build_autoencoder,
    conv_plan,
    default_autoencoder,
)
from deepdig_fast.adversarial.components import (
    ComponentOneResult,
    ComponentTwoResult,
    GeneratorOutput,
    SplitStats,
    apply_generator,
    component_one,
    component_two,
    retry_seed,
    train_until_sound,
)
from deepdig_fast.adversarial.config import TrainHistory, resolve_lr, resolved_lr, training_key, training_layout
from deepdig_fast.adversarial.joint import (
    JOINT_TRAINING,
    JointTraining,
    TrainingJob,
    TrainingPool,
    can_train_in_processes,
    joint_training_mode,
    train_in_processes,
    train_jointly,
    train_one_thread,
)
from deepdig_fast.adversarial.training import train_adversarial_autoencoder, train_adversarial_autoencoders
from deepdig_fast.configs import AdversarialConfig, AutoStop

__all__ = [
    "AutoencoderSpec",
    "Classifier",
    "MLPAutoencoder",
    "ConvAutoencoder",
    "default_autoencoder",
    "conv_plan",
    "autoencoder_key",
    "autoencoder_from_spec",
    "build_autoencoder",
    "apply_autoencoder",
    "AdversarialConfig",
    "AutoStop",
    "TrainHistory",
    "training_layout",
    "training_key",
    "resolved_lr",
    "resolve_lr",
    "train_adversarial_autoencoder",
    "train_adversarial_autoencoders",
    "JOINT_TRAINING",
    "JointTraining",
    "TrainingJob",
    "TrainingPool",
    "joint_training_mode",
    "train_jointly",
    "train_in_processes",
    "can_train_in_processes",
    "train_one_thread",
    "SplitStats",
    "GeneratorOutput",
    "apply_generator",
    "ComponentOneResult",
    "ComponentTwoResult",
    "component_one",
    "component_two",
    "retry_seed",
    "train_until_sound",
]
