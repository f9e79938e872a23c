"""Where and how the tensors run: the device, mixed precision, memory format, and the
host-side frame cache budget. CUDA gets bf16 autocast (fp16 + loss scaling on older
GPUs), channels_last and cuDNN autotuning; the CPU runs plain fp32."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Runtime:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp_dtype: torch.dtype | None = None
    weights_dir: str | None = None
    cache_bytes: int = 1 << 30
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def detect(cls, device: str | None = None) -> Runtime:
        """FPAR_DEVICE (cpu, cuda, cuda:1) or the first GPU when there is one."""
        name = device or os.environ.get("FPAR_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(name)
        amp = None
        if dev.type == "cuda" and os.environ.get("FPAR_AMP", "1") != "0":
            amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            torch.backends.cudnn.benchmark = True
        threads = os.environ.get("FPAR_TORCH_THREADS")
        if threads:
            torch.set_num_threads(int(threads))
        cache_mb = int(os.environ.get("FPAR_FRAME_CACHE_MB", "1024"))
        return cls(dev, amp, os.environ.get("FPAR_WEIGHTS_DIR"), cache_mb << 20,
                   torch.amp.GradScaler("cuda") if amp == torch.float16 else None)

    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
