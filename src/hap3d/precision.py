"""Mixed precision in one place: which modes the hardware runs natively, and the autocast context.

``amp`` is one of 'none' (fp32), 'bf16', 'fp16', or 'auto' (bf16 where native, else fp32). fp16 autocast is refused
on CPUs without native fp16 arithmetic: there torch emulates it, slowly, and fp16's narrow range overflows in the
convolutions of an untrained network (the loss turns inf within a step or two). bf16 has fp32's range and is the
CPU's half precision.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import ContextManager

import torch

from hap3d.utils import Hap3dError

AMP_MODES = ("none", "bf16", "fp16")


@lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device_type: str = "cpu") -> bool:
    """Whether bf16 matmuls run natively (AVX512-BF16/AMX on CPU, Ampere+ on CUDA): emulated bf16 is slower than
    fp32."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def native_fp16(device_type: str = "cpu") -> bool:
    """Whether fp16 arithmetic is native: every CUDA device torch supports; on CPU, AVX512-FP16 or AMX-FP16."""
    if device_type == "cuda":
        return torch.cuda.is_available()
    return bool({"avx512_fp16", "amx_fp16"} & _cpu_flags())


def resolve_amp(amp: str, device_type: str) -> str:
    """'auto' -> 'bf16' where it is native (outputs stay within the tested tolerance of fp32), else 'none'."""
    if amp != "auto":
        return amp
    return "bf16" if native_bf16(device_type) else "none"


def check_amp(amp: str, device_type: str, setting: str = "amp") -> str:
    """Resolve ``amp`` for a device, or raise naming ``setting`` when the mode cannot run there."""
    amp = resolve_amp(amp, device_type)
    if amp not in AMP_MODES:
        raise Hap3dError(f"{setting}={amp!r}: expected one of {', '.join(AMP_MODES)} or auto")
    if amp == "fp16" and device_type == "cpu" and not native_fp16("cpu"):
        raise Hap3dError(
            f"{setting}=fp16 on a CPU without native fp16 (AVX512-FP16 / AMX-FP16): torch only emulates fp16 there, "
            f"slowly, and its range overflows in the convolutions. Use {setting}=bf16 (half precision with fp32's "
            f"range; native on AVX512-BF16 / AMX CPUs) or {setting}=none; fp16 is for CUDA devices"
        )
    return amp


def autocast(device_type: str, amp: str) -> ContextManager:
    """The autocast context of a resolved mode ('none' -> no autocast)."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
