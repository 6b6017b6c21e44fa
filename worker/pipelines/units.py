"""Units: how a layer's activation becomes one number per unit and image.

A :class:`UnitSetSpec` says which layer (and whether its module's input or output) and which kind
of unit; a :class:`UnitProjector` turns that layer's activation into ``[batch, units]``:

- ``channels``: each channel averaged over space (or tokens).
- ``neurons``: each channel at one spatial position (default the centre).
- ``dictionary``: codes of a fitted NMF or TopK sparse autoencoder, computed at every spatial
  position and then averaged over space.
- ``pca``: projections on the principal components of the layer's activation vectors.
- ``random``: projections on random orthonormal directions (the rotation baseline).

Fitted projectors save as a JSON-able config plus a dict of tensors (:meth:`UnitProjector.state`,
:func:`save_projector`), so a worker can rebuild exactly the units an experiment used.

Activations are ``[batch, C, H, W]`` (convolutional), ``[batch, tokens, C]`` (transformer) or
``[batch, C]``; inside, they are viewed as position vectors ``[batch, positions, C]``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from worker.pipelines.networks import LayerTap

if TYPE_CHECKING:
    from worker.pipelines.dictionary import FittedDictionary

__all__ = [
    "UNIT_KINDS",
    "UnitError",
    "UnitProjector",
    "UnitSetSpec",
    "build_projector",
    "channel_count",
    "load_projector",
    "PopulationProjector",
    "nnls_codes",
    "position_vectors",
    "save_projector",
]

UnitKind = Literal["channels", "neurons", "dictionary", "pca", "random"]
UNIT_KINDS: tuple[str, ...] = ("channels", "neurons", "dictionary", "pca", "random")
FITTED_KINDS = ("dictionary", "pca", "random")


class UnitError(ValueError):
    """A unit set cannot be built or applied; the message is one line for a researcher."""


@dataclass(frozen=True)
class UnitSetSpec:
    """How units are defined on one layer (the JSON-able part of a UnitSet)."""

    kind: UnitKind
    layer: str
    point: Literal["output", "input"] = "output"
    n_units: int | None = None  # dictionary / pca / random: how many atoms or directions
    method: Literal["nmf", "sae"] | None = None  # dictionary only
    position: tuple[int, int] | None = None  # neurons only: (row, col); None means the centre
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in UNIT_KINDS:
            raise UnitError(f"unknown unit kind {self.kind!r}; known: {', '.join(UNIT_KINDS)}")
        if self.kind == "dictionary" and self.method not in ("nmf", "sae"):
            raise UnitError("a dictionary unit set needs method 'nmf' or 'sae'")
        if self.kind in FITTED_KINDS and (self.n_units is None or self.n_units < 1):
            raise UnitError(f"a {self.kind} unit set needs n_units >= 1")
        if self.point not in ("output", "input"):
            raise UnitError("point must be 'output' or 'input'")

    @property
    def tap(self) -> LayerTap:
        return LayerTap(self.layer, self.point)

    @property
    def needs_fit(self) -> bool:
        return self.kind in FITTED_KINDS

    @property
    def fit_kind(self) -> str:
        """The :class:`FittedDictionary` kind this spec needs (nmf, sae, pca, random)."""
        return str(self.method) if self.kind == "dictionary" else self.kind

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["position"] = list(self.position) if self.position is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnitSetSpec:
        values = dict(data)
        if values.get("position") is not None:
            values["position"] = tuple(values["position"])
        return cls(**values)


# --------------------------------------------------------------------------------------------
# Activation layout


def position_vectors(acts: Tensor) -> Tensor:
    """``acts`` -> ``[batch, positions, C]`` (positions = H*W, tokens, or 1)."""
    if acts.ndim == 4:
        return acts.flatten(2).transpose(1, 2)
    if acts.ndim == 3:
        return acts
    if acts.ndim == 2:
        return acts[:, None, :]
    raise UnitError(f"cannot define units on an activation of shape {tuple(acts.shape)}")


def channel_count(layer_shape: tuple[int, ...]) -> int:
    """Channels of a layer from its activation shape without batch: (C,H,W), (T,C) or (C,)."""
    if len(layer_shape) == 3:
        return int(layer_shape[0])
    if len(layer_shape) in (1, 2):
        return int(layer_shape[-1])
    raise UnitError(f"cannot define units on a layer of shape {layer_shape}")


def nnls_codes(vectors: Tensor, atoms: Tensor, iterations: int = 100) -> Tensor:
    """Non-negative codes ``z >= 0`` minimising ``||vectors - z @ atoms||``, by FISTA.

    ``vectors: [n, C]``, ``atoms: [units, C]`` -> ``[n, units]``. Deterministic (no random
    start) and all matrix products, so it runs inside the exemplar pass at network speed.
    The solve uses unit-norm atoms (a diagonal preconditioner: with raw NMF atoms of very
    different norms, 100 iterations left the error twice the optimum) and skips dead atoms,
    whose codes are zero.
    """
    norms = atoms.norm(dim=1)
    alive = norms > 1e-8
    unit_atoms = atoms[alive] / norms[alive, None]  # [alive, C]
    gram = unit_atoms @ unit_atoms.T
    step = 1.0 / torch.linalg.matrix_norm(gram, ord=2).clamp_min(1e-12)
    target = vectors @ unit_atoms.T  # [n, alive]
    codes = torch.relu(target)
    momentum_point, momentum = codes, 1.0
    for _ in range(iterations):
        next_codes = torch.relu(momentum_point - (momentum_point @ gram - target) * step)
        if ((momentum_point - next_codes) * (next_codes - codes)).sum() > 0:
            momentum_point, codes, momentum = next_codes, next_codes, 1.0  # adaptive restart
            continue
        next_momentum = (1.0 + (1.0 + 4.0 * momentum * momentum) ** 0.5) / 2.0
        extrapolation = (momentum - 1.0) / next_momentum
        momentum_point = next_codes + extrapolation * (next_codes - codes)
        codes, momentum = next_codes, next_momentum
    full = vectors.new_zeros(vectors.shape[0], atoms.shape[0])
    full[:, alive] = codes / norms[alive]
    return full


# --------------------------------------------------------------------------------------------
# Projectors


class UnitProjector(nn.Module):
    """``forward(acts) -> [batch, units]`` for one unit set; see the module docstring."""

    def __init__(self, spec: UnitSetSpec, n_units: int) -> None:
        super().__init__()
        self.spec = spec
        self.n_units = n_units

    @property
    def tap(self) -> LayerTap:
        return self.spec.tap

    def extra_config(self) -> dict[str, Any]:
        return {}

    def state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """(JSON-able config, tensors) from which :meth:`from_state` rebuilds this projector."""
        config = {"spec": self.spec.to_dict(), "n_units": self.n_units, **self.extra_config()}
        tensors = {
            name: buffer.detach().cpu().contiguous() for name, buffer in self.named_buffers()
        }
        return config, tensors

    @staticmethod
    def from_state(config: dict[str, Any], tensors: dict[str, Tensor]) -> UnitProjector:
        spec = UnitSetSpec.from_dict(config["spec"])
        n_units = int(config["n_units"])
        if spec.kind == "channels":
            return ChannelProjector(spec, n_units)
        if spec.kind == "neurons":
            return NeuronProjector(spec, n_units)
        if spec.fit_kind in ("pca", "random"):
            return LinearProjector(spec, tensors["weight"], tensors["bias"])
        if spec.fit_kind == "nmf":
            return NMFProjector(spec, tensors["atoms"], int(config.get("iterations", 100)))
        return SAEProjector(
            spec,
            encoder_weight=tensors["encoder_weight"],
            encoder_bias=tensors["encoder_bias"],
            input_mean=tensors["input_mean"],
            input_scale=tensors["input_scale"],
            top_k=int(config["top_k"]),
            decoder=tensors.get("decoder"),
        )


class ChannelProjector(UnitProjector):
    def forward(self, acts: Tensor) -> Tensor:
        return position_vectors(acts).mean(dim=1)


class NeuronProjector(UnitProjector):
    def forward(self, acts: Tensor) -> Tensor:
        if acts.ndim == 2:
            return acts
        if acts.ndim == 3:  # [batch, tokens, C]: position[0] is the token
            token = self.spec.position[0] if self.spec.position else acts.shape[1] // 2
            return acts[:, token, :]
        height, width = acts.shape[-2:]
        row, col = self.spec.position or (height // 2, width // 2)
        if not (0 <= row < height and 0 <= col < width):
            raise UnitError(f"neuron position ({row}, {col}) is outside the {height}x{width} map")
        return acts[:, :, row, col]


class LinearProjector(UnitProjector):
    """PCA and random directions: ``mean_over_space(acts) @ weight.T + bias``.

    Both are linear, so projecting the spatial mean equals averaging per-position projections.
    """

    weight: Tensor
    bias: Tensor

    def __init__(self, spec: UnitSetSpec, weight: Tensor, bias: Tensor) -> None:
        super().__init__(spec, int(weight.shape[0]))
        self.register_buffer("weight", weight.float())  # [units, C]
        self.register_buffer("bias", bias.float())  # [units]

    def forward(self, acts: Tensor) -> Tensor:
        pooled = position_vectors(acts).mean(dim=1).float()  # [batch, C]
        return pooled @ self.weight.T + self.bias


class NMFProjector(UnitProjector):
    """NMF codes of each (clamped non-negative) position vector, averaged over space."""

    atoms: Tensor

    def __init__(self, spec: UnitSetSpec, atoms: Tensor, iterations: int = 100) -> None:
        super().__init__(spec, int(atoms.shape[0]))
        self.iterations = iterations
        self.register_buffer("atoms", atoms.float())  # [units, C]

    def extra_config(self) -> dict[str, Any]:
        return {"iterations": self.iterations}

    def forward(self, acts: Tensor) -> Tensor:
        vectors = position_vectors(acts).float().clamp_min(0.0)  # [batch, P, C]
        batch, positions, channels = vectors.shape
        codes = nnls_codes(vectors.reshape(-1, channels), self.atoms, self.iterations)
        return codes.reshape(batch, positions, -1).mean(dim=1)


class SAEProjector(UnitProjector):
    """TopK sparse-autoencoder codes of each position vector, averaged over space."""

    encoder_weight: Tensor
    encoder_bias: Tensor
    input_mean: Tensor
    input_scale: Tensor

    def __init__(
        self,
        spec: UnitSetSpec,
        *,
        encoder_weight: Tensor,
        encoder_bias: Tensor,
        input_mean: Tensor,
        input_scale: Tensor,
        top_k: int,
        decoder: Tensor | None = None,
    ) -> None:
        super().__init__(spec, int(encoder_weight.shape[0]))
        self.top_k = top_k
        # [units, C] in normalized units: kept for ablations (a unit's code times its atom);
        # unit sets fitted before it was kept have none.
        self.decoder: Tensor | None
        if decoder is not None:
            self.register_buffer("decoder", decoder.float())
        else:
            self.decoder = None
        self.register_buffer("encoder_weight", encoder_weight.float())  # [units, C]
        self.register_buffer("encoder_bias", encoder_bias.float())  # [units]
        self.register_buffer("input_mean", input_mean.float())  # [C]
        self.register_buffer("input_scale", input_scale.float().reshape(()))  # scalar

    def extra_config(self) -> dict[str, Any]:
        return {"top_k": self.top_k}

    def encode(self, vectors: Tensor) -> Tensor:
        """``vectors: [n, C]`` -> sparse codes ``[n, units]``."""
        normalized = (vectors.float() - self.input_mean) / self.input_scale
        pre_codes = torch.relu(normalized @ self.encoder_weight.T + self.encoder_bias)
        top = torch.topk(pre_codes, self.top_k, dim=-1)
        return torch.zeros_like(pre_codes).scatter(-1, top.indices, top.values)

    def forward(self, acts: Tensor) -> Tensor:
        vectors = position_vectors(acts)
        batch, positions, channels = vectors.shape
        codes = self.encode(vectors.reshape(-1, channels))
        return codes.reshape(batch, positions, -1).mean(dim=1)


class PopulationProjector(UnitProjector):
    """Populations of another unit set: unit p is the mean of its members' activations
    (``members[p]``: indices into ``base``'s units), so everything downstream works on it."""

    def __init__(self, base: UnitProjector, members: list[list[int]]) -> None:
        super().__init__(base.spec, len(members))
        if not members or any(not group for group in members):
            raise UnitError("every population needs at least one member")
        if any(not 0 <= u < base.n_units for group in members for u in group):
            raise UnitError(f"population members must be units 0 to {base.n_units - 1}")
        self.base = base
        self.members = [list(group) for group in members]
        weights = torch.zeros(len(members), base.n_units)
        for p, group in enumerate(members):
            weights[p, group] = 1.0 / len(group)
        self.register_buffer("weights", weights)  # [populations, base units]

    def forward(self, acts: Tensor) -> Tensor:
        return self.base(acts).float() @ self.weights.T


def build_projector(
    spec: UnitSetSpec, layer_shape: tuple[int, ...], fitted: FittedDictionary | None = None
) -> UnitProjector:
    """The projector for ``spec`` on a layer of ``layer_shape`` (no batch dimension).

    Fitted kinds need ``fitted`` from :mod:`worker.pipelines.dictionary`, fitted on the same layer.
    """
    channels = channel_count(layer_shape)
    if not spec.needs_fit:
        if spec.kind == "neurons" and spec.position is not None and len(layer_shape) == 3:
            row, col = spec.position
            if not (0 <= row < layer_shape[1] and 0 <= col < layer_shape[2]):
                raise UnitError(f"neuron position {spec.position} is outside the layer's map")
        cls = ChannelProjector if spec.kind == "channels" else NeuronProjector
        return cls(spec, channels)
    if fitted is None:
        raise UnitError(f"a {spec.kind} unit set needs a fitted dictionary")
    if fitted.kind != spec.fit_kind:
        raise UnitError(f"fitted {fitted.kind} does not match a {spec.fit_kind} unit set")
    tensors = fitted.tensors
    width_key = {"nmf": "atoms", "sae": "encoder_weight", "pca": "weight", "random": "weight"}
    width = int(tensors[width_key[fitted.kind]].shape[1])
    if width != channels:
        raise UnitError(f"fitted {fitted.kind} has {width} channels, layer has {channels}")
    config = {"spec": spec.to_dict(), "n_units": fitted.n_atoms, **fitted.config}
    return UnitProjector.from_state(config, tensors)


def save_projector(projector: UnitProjector, path: str) -> None:
    """One safetensors file: the tensors, with the config as JSON in its metadata."""
    from safetensors.torch import save_file

    config, tensors = projector.state()
    save_file(tensors, path, metadata={"psylens_units": json.dumps(config)})


def load_projector(path: str) -> UnitProjector:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "psylens_units" not in metadata:
        raise UnitError(f"{path} is not a saved unit set")
    return UnitProjector.from_state(json.loads(metadata["psylens_units"]), load_file(path))
