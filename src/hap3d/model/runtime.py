"""Inference runtimes: one function that prepares a network for inference in a given mode.

=========  ==========================================================================================================
``eager``  the model as built: torch's default kernels
``fast``   the ViT's Linear layers run through oneDNN with weights packed once and the MLP's GELU fused into its
           first Linear; Pose2Feat's 3x3 convolution runs as Winograd F(4x4, 3x3) (the default on CPU). The same
           function as ``eager`` up to rounding: outputs agree within :data:`FAST_TOLERANCE_M`
           (tests/test_runtime.py). Applied in place and invisible to training: the
           parameters, their names and the state dict are unchanged, and a layer falls back to the plain kernels
           whenever gradients, autocast, another device or another dtype are in play.
``int8``   dynamic int8 quantisation of the ViT's Linear layers (weights int8, activations quantised per batch),
           on a copy of the model. Faster on CPU, at an accuracy cost that ``benchmarks/bench_runtime.py`` measures
           on the synthetic 3DPW test set; never chosen automatically.
=========  ==========================================================================================================

``auto`` picks ``fast`` on CPU and ``eager`` elsewhere; the environment variable ``HAP3D_RUNTIME`` overrides
``auto`` (e.g. ``HAP3D_RUNTIME=eager hap3d demo ...``). Measured alternatives that lost on the CPUs of
docs/benchmarks.md: ``torch.compile`` (about 25 s of compilation per process for no gain on this matmul-bound
network), and bf16 on CPUs without native bf16 (several times slower than fp32).
"""

from __future__ import annotations

import copy
import os
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from hap3d.utils import Hap3dError

RUNTIME_MODES = ("eager", "fast", "int8")
RUNTIME_ENV = "HAP3D_RUNTIME"
FAST_TOLERANCE_M = 1e-4  # max |mesh or joint difference| in metres between 'fast' and 'eager' (fp32)


class _OptimizerSteps:
    """Counts optimizer steps in this process. Fused optimizers (``fused=True``, which ``hap3d train`` uses) write
    the parameters without bumping their version counters, so the cached packed weights also key on this count:
    an evaluation after training steps must not run on the weights packed before them."""

    count = 0
    _hook = None

    @classmethod
    def watch(cls) -> None:
        if cls._hook is None:
            from torch.optim.optimizer import register_optimizer_step_post_hook

            cls._hook = register_optimizer_step_post_hook(cls._step)

    @classmethod
    def _step(cls, *_: object) -> None:
        cls.count += 1


def _weight_key(weight: torch.Tensor) -> tuple[int, int, int]:
    """What identifies a weight's current values for the caches: version, storage and optimizer steps."""
    return (weight._version, weight.data_ptr(), _OptimizerSteps.count)


def resolve_runtime(mode: str, device_type: str) -> str:
    """'auto' -> ``$HAP3D_RUNTIME`` if set, else 'fast' on CPU (when torch has oneDNN) and 'eager' elsewhere."""
    if mode == "auto":
        mode = os.environ.get(RUNTIME_ENV, "").strip().lower() or ("fast" if _onednn_linear() else "eager")
        setting = RUNTIME_ENV
        if mode == "fast" and device_type != "cpu":
            mode = "eager"
    else:
        setting = "runtime"
    if mode not in RUNTIME_MODES:
        raise Hap3dError(f"{setting}={mode!r}: expected one of {', '.join(RUNTIME_MODES)} or auto")
    if mode in ("fast", "int8") and device_type != "cpu":
        raise Hap3dError(f"{setting}={mode}: this runtime is for CPU inference; use eager on {device_type}")
    return mode


def prepare_for_inference(model: nn.Module, mode: str = "auto", device_type: str = "cpu") -> nn.Module:
    """The model to run inference with under ``mode`` (see the module docstring): the same module for 'eager'
    and 'fast' (converted in place), a quantised copy for 'int8'. The result is in eval mode."""
    mode = resolve_runtime(mode, device_type)
    if mode == "eager":
        _restore(model)  # a model converted to 'fast' before runs the plain kernels again
        return model.eval()
    if mode == "fast":
        if not _onednn_linear():
            raise Hap3dError("runtime=fast needs a torch built with oneDNN (mkldnn); use runtime=eager")
        _convert(model)
        return model.eval()
    return quantize_int8(model)


def quantize_int8(model: nn.Module) -> nn.Module:
    """An eval-mode copy whose backbone Linear layers are dynamically quantised to int8 (the heads stay fp32)."""
    quantized = copy.deepcopy(model).eval()
    _restore(quantized)  # quantize_dynamic converts exact nn.Linear modules only
    target = getattr(quantized, "backbone", quantized)
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao; it still works here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*")
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(target, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return quantized


class PackedLinear(nn.Linear):
    """nn.Linear whose inference runs through oneDNN with a pre-packed weight, optionally fused with a GELU.

    It shares the Parameters of the layer it replaces (same names, same state dict). The packed copy is rebuilt
    whenever the weight changes (loading, optimizer steps, fused ones included, a move to another device) and at
    every :func:`prepare_for_inference`."""

    def __init__(self, source: nn.Linear, activation: str = "none") -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = source.in_features, source.out_features
        self.weight, self.bias = source.weight, source.bias
        self.activation = activation
        self._packed: tuple[tuple[int, int], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _inference_ok(self, x):
            return torch.ops.mkldnn._linear_pointwise(x, self._packed_weight(x), self.bias, self.activation, [], "none")
        out = F.linear(x, self.weight, self.bias)
        return F.gelu(out) if self.activation == "gelu" else out

    def _packed_weight(self, x: torch.Tensor) -> torch.Tensor:
        key = _weight_key(self.weight)
        if self._packed is None or self._packed[0] != key:
            rows = max(1, x.numel() // max(x.shape[-1], 1))
            with torch.no_grad():
                self._packed = (key, torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), rows))
        return self._packed[1]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_packed": None}  # an opaque oneDNN tensor cannot be copied: rebuilt on use

    def plain(self) -> nn.Linear:
        """An nn.Linear sharing this layer's Parameters."""
        lin = nn.Linear.__new__(nn.Linear)
        nn.Module.__init__(lin)
        lin.in_features, lin.out_features = self.in_features, self.out_features
        lin.weight, lin.bias = self.weight, self.bias
        return lin

    def extra_repr(self) -> str:
        return super().extra_repr() + f", activation={self.activation}, onednn=True"


def _winograd_matrices(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B^T, G, A^T) of Winograd's F(m x m, 3 x 3) in float64 (Lavin & Gray 2016; interpolation points 0, +-1, +-2)."""
    if m == 2:
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    else:
        bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
              [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
             [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    return tuple(torch.tensor(v, dtype=torch.float64) for v in (bt, g, at))  # type: ignore[return-value]


class WinogradConv2d(nn.Conv2d):
    """A 3x3, stride-1, padding-1 nn.Conv2d whose inference uses Winograd's algorithm: F(4x4, 3x3) on maps whose
    sides divide by 4 (36 products of (out x in) by (in x tiles) matrices per 4x4 block of outputs instead of
    9 x 16: 4x fewer multiplications), F(2x2, 3x3) on other even sides (2.25x fewer).

    For Pose2Feat's 798 -> 768 convolution on the 16x16 map (6 % of the ViT-B's FLOPs). The tile transforms are
    single matrix products with the Kronecker products of the transform matrices. Shares the Parameters of the
    layer it replaces; falls back to the direct convolution whenever ``PackedLinear`` would (gradients,
    autocast, other devices or dtypes) and for odd map sizes. Rounding: F(2x2) 1e-6, F(4x4) 1e-5 relative to the
    outputs' scale, against the direct convolution's own 3e-6 (float64 reference; tests/test_runtime.py)."""

    def __init__(self, source: nn.Conv2d) -> None:
        nn.Module.__init__(self)
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "transposed",
                     "output_padding", "groups", "padding_mode", "_reversed_padding_repeated_twice"):
            setattr(self, name, getattr(source, name))
        self.weight, self.bias = source.weight, source.bias
        self._cache: dict[int, tuple[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}

    @staticmethod
    def fits(conv: nn.Module) -> bool:
        return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
                and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                and conv.padding_mode == "zeros" and conv.bias is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (_inference_ok(self, x) and x.ndim == 4 and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0):
            return super().forward(x)
        b, c, h, w = x.shape
        m = 4 if h % 4 == 0 and w % 4 == 0 else 2
        a, th, tw = m + 2, h // m, w // m
        filters, input_t, output_t = self._transforms(m)
        tiles = F.pad(x, (1, 1, 1, 1)).unfold(2, a, m).unfold(3, a, m)  # (B, C, th, tw, a, a), overlapping by 2
        v = torch.mm(input_t, tiles.permute(4, 5, 1, 0, 2, 3).reshape(a * a, -1))  # B^T d B of every tile
        prod = torch.bmm(filters, v.view(a * a, c, -1))  # (a*a, out, B*th*tw)
        out = torch.mm(output_t, prod.view(a * a, -1))  # A^T M A: (m*m, out*B*th*tw)
        out = out.view(m, m, -1, b, th, tw).permute(3, 2, 4, 0, 5, 1).reshape(b, -1, h, w)
        return out + self.bias[:, None, None]

    def _transforms(self, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """G g G^T of every filter as (a*a, out, in), and the Kronecker products of B^T and A^T with themselves,
        rebuilt when the weight changes."""
        key = _weight_key(self.weight)
        if m not in self._cache or self._cache[m][0] != key:
            bt, g, at = _winograd_matrices(m)
            with torch.no_grad():
                u = g @ self.weight.detach().double() @ g.T  # (out, in, a, a), exact transform constants in fp64
            dtype = self.weight.dtype
            filters = u.permute(2, 3, 0, 1).reshape((m + 2) ** 2, self.out_channels, -1).to(dtype).contiguous()
            self._cache[m] = (key, (filters, torch.kron(bt, bt).to(dtype), torch.kron(at, at).to(dtype)))
        return self._cache[m][1]

    def plain(self) -> nn.Conv2d:
        """An nn.Conv2d sharing this layer's Parameters."""
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, padding=1, device="meta")
        conv.weight, conv.bias = self.weight, self.bias
        return conv


def _inference_ok(layer: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``layer`` may take its inference kernel: eval mode, no gradients, plain fp32 on CPU."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad)
    return (
        not layer.training and not needs_grad and x.device.type == "cpu" and x.dtype == torch.float32
        and layer.weight.dtype == torch.float32 and layer.bias is not None and not torch.is_autocast_enabled("cpu")
    )


def _onednn_linear() -> bool:
    """Whether this torch has the oneDNN Linear kernels the 'fast' runtime calls."""
    ops = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and all(
        hasattr(ops, name) for name in ("_linear_pointwise", "_reorder_linear_weight")
    )


def _convert(model: nn.Module) -> None:
    """Swap every transformer block's Linear layers for PackedLinear, fusing the MLP's GELU, and Pose2Feat's 3x3
    convolution for WinogradConv2d (idempotent; the caches of layers converted before are dropped, so weights
    changed in place behind torch's back, e.g. through ``.data``, are packed afresh)."""
    _OptimizerSteps.watch()
    for module in model.modules():
        if isinstance(module, PackedLinear):
            module._packed = None
        elif isinstance(module, WinogradConv2d):
            module._cache.clear()
    fusion = getattr(getattr(model, "pose2feat", None), "conv", None)
    if isinstance(fusion, nn.Sequential) and WinogradConv2d.fits(fusion[0]):
        fusion[0] = WinogradConv2d(fusion[0])
    for module in model.modules():
        attn, mlp = getattr(module, "attn", None), getattr(module, "mlp", None)
        if attn is None or mlp is None:
            continue
        for owner, name in ((attn, "qkv"), (attn, "proj"), (mlp, "fc2")):
            layer = getattr(owner, name)
            if type(layer) is nn.Linear:
                setattr(owner, name, PackedLinear(layer))
        if type(mlp.fc1) is nn.Linear and type(mlp.act) is nn.GELU and mlp.act.approximate == "none":
            mlp.fc1, mlp.act = PackedLinear(mlp.fc1, activation="gelu"), nn.Identity()


def _restore(model: nn.Module) -> None:
    """Undo :func:`_convert` (plain nn.Linear, nn.GELU and nn.Conv2d modules again)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, WinogradConv2d):
                setattr(module, name, child.plain())
            elif isinstance(child, PackedLinear):
                setattr(module, name, child.plain())
                if child.activation == "gelu":
                    module.act = nn.GELU()
