"""The one LeNet-style CNN, in PyTorch and as a Keras 3 twin, and the weight copy between them.

Why two frameworks: the study served a PyTorch model from Flask/Kubernetes and a
TensorFlow SavedModel from KServe.  To make a timing difference a deployment difference
and nothing else, we train once (PyTorch) and copy the *same* weights into an identical
Keras graph, then prove at export that both agree (:mod:`models.export`).

Architecture (both frameworks, "valid" convolutions, no padding)::

    (N, 28, 28) float32 normalised
    -> (N, 1, 28, 28) [torch]  |  (N, 28, 28, 1) [keras]
    -> conv 5x5, 1 -> 32, ReLU, max-pool 2     -> 32 x 12 x 12
    -> conv 5x5, 32 -> 64, ReLU, max-pool 2    -> 64 x 4 x 4
    -> flatten (1024) -> dense 128, ReLU -> dropout 0.5 (training only) -> dense 10 (logits)

Weight layout differences handled by :func:`copy_torch_to_keras`:

* conv kernels: torch ``OIHW`` -> keras ``HWIO`` (``transpose(2, 3, 1, 0)``);
* dense kernels: torch ``(out, in)`` -> keras ``(in, out)`` (transpose);
* flatten order: torch flattens NCHW as ``(C, H, W)``, keras flattens NHWC as ``(H, W, C)``.
  Rather than add a Permute layer to the served graph, the first dense layer's input
  dimension is permuted: its torch weight is viewed as ``(out, C, H, W)`` and reordered to
  ``(H, W, C, out)`` before flattening to keras ``(H*W*C, out)``.  The served Keras graph
  stays a plain NHWC network.

Keras and tensorflow are imported inside the Keras functions only, so ``import models.net``
costs just torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    import keras

__all__ = [
    "CONV1",
    "CONV2",
    "DROPOUT",
    "HIDDEN",
    "LeNet",
    "build_keras",
    "copy_torch_to_keras",
    "count_parameters",
]

CONV1: int = 32  # channels of the first convolution
CONV2: int = 64  # channels of the second convolution
HIDDEN: int = 128  # width of the hidden dense layer
DROPOUT: float = 0.5  # on the hidden layer, training only (4,000 images overfit without it)
_FEAT_HW: int = 4  # spatial size after two (conv 5x5 valid, pool 2) stages: 28->24->12->8->4


class LeNet(nn.Module):
    """LeNet-style CNN: takes normalised (N, 28, 28) or (N, 1, 28, 28), returns (N, 10) logits.

    Accepting (N, 28, 28) means the TorchScript module and the SavedModel take the very
    same array, so servers and the parity check feed both formats identical inputs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, CONV1, kernel_size=5)
        self.conv2 = nn.Conv2d(CONV1, CONV2, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(CONV2 * _FEAT_HW * _FEAT_HW, HIDDEN)
        self.drop = nn.Dropout(DROPOUT)  # identity in eval mode: exported graphs are unaffected
        self.fc2 = nn.Linear(HIDDEN, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.drop(torch.relu(self.fc1(x)))
        return self.fc2(x)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (recorded in model.json)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def build_keras(name: str = "mnist") -> keras.Model:
    """The same architecture in Keras 3: input (N, 28, 28) float32 -> (N, 10) logits."""
    from models.predict import quiet_tensorflow

    quiet_tensorflow()
    import keras
    from keras import layers

    inputs = keras.Input(shape=(28, 28), dtype="float32", name="pixels")
    x = layers.Reshape((28, 28, 1), name="reshape")(inputs)
    x = layers.Conv2D(CONV1, 5, padding="valid", activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(CONV2, 5, padding="valid", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(HIDDEN, activation="relu", name="fc1")(x)
    x = layers.Dropout(DROPOUT, name="drop")(x)  # inactive at inference, as in torch eval mode
    outputs = layers.Dense(10, name="fc2")(x)
    return keras.Model(inputs, outputs, name=name)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def copy_torch_to_keras(torch_model: LeNet, keras_model: Any) -> None:
    """Copy trained weights from the torch LeNet into the Keras twin (layouts: module doc)."""
    sd = torch_model.state_dict()
    keras_model.get_layer("conv1").set_weights([_np(sd["conv1.weight"]).transpose(2, 3, 1, 0), _np(sd["conv1.bias"])])
    keras_model.get_layer("conv2").set_weights([_np(sd["conv2.weight"]).transpose(2, 3, 1, 0), _np(sd["conv2.bias"])])
    fc1 = _np(sd["fc1.weight"]).reshape(HIDDEN, CONV2, _FEAT_HW, _FEAT_HW)  # (out, C, H, W)
    fc1 = fc1.transpose(2, 3, 1, 0).reshape(_FEAT_HW * _FEAT_HW * CONV2, HIDDEN)  # (H*W*C, out)
    keras_model.get_layer("fc1").set_weights([np.ascontiguousarray(fc1), _np(sd["fc1.bias"])])
    keras_model.get_layer("fc2").set_weights([_np(sd["fc2.weight"]).T.copy(), _np(sd["fc2.bias"])])
