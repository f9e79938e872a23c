"""Where and how the tensors run: the device, mixed precision, memory format, and the
host-side frame cache budget. CUDA gets channels_last and cuDNN autotuning. Predictions
are fp32 on every device unless a model's owner opts in to bf16 (fpar_models.serving.precision:
measured first); training runs in the precision its config names (`precision`: fp32
unless asked).

Not an inference runtime: in this project "runtime" means what runs a serving graph
(PyTorch, OpenVINO, ONNX Runtime: fpar_models.serving.runtimes)."""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Compute:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    weights_dir: str | None = None
    cache_bytes: int = 1 << 30
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def detect(cls, device: str | None = None) -> Compute:
        """FPAR_DEVICE (cpu, cuda, cuda:1) or the first GPU when there is one."""
        name = device or os.environ.get("FPAR_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(name)
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        threads = os.environ.get("FPAR_TORCH_THREADS")
        if threads:
            torch.set_num_threads(int(threads))
        cache_mb = int(os.environ.get("FPAR_FRAME_CACHE_MB", "1024"))
        return cls(dev, channels_last=dev.type == "cuda", weights_dir=os.environ.get("FPAR_WEIGHTS_DIR"),
                   cache_bytes=cache_mb << 20)

    def for_training(self, precision: str) -> Compute:
        """This compute with a training run's precision: fp32, or bf16/fp16 autocast (fp16
        scales the loss so small gradients do not underflow)."""
        amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        if amp == torch.bfloat16 and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("precision 'bf16': this GPU has no bfloat16 support; use 'fp16' or 'fp32'")
        scaler = torch.amp.GradScaler(self.device.type) if amp == torch.float16 else None
        return dataclasses.replace(self, amp_dtype=amp, scaler=scaler)

    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and the optimiser's step: under fp16 through the loss scaler, which skips
        a step whose gradients overflowed and then adjusts its scale."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
