"""Adam over a batch of independent images, with per-element step counts and plateau stopping.

Our own Adam (same update as torch.optim.Adam) because elements finish at different steps: a
finished element is frozen and later dropped from the batch, and its moments must go with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BatchAdam:
    """Adam state for a parameter of shape [batch, ...]; betas and eps as torch's defaults."""

    learning_rate: float
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    steps: torch.Tensor  # [batch] int64, updates applied to each element
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    @classmethod
    def like(cls, parameter: torch.Tensor, learning_rate: float) -> BatchAdam:
        zeros = torch.zeros_like(parameter)
        steps = torch.zeros(len(parameter), dtype=torch.int64, device=parameter.device)
        return cls(learning_rate, zeros, zeros.clone(), steps)

    def step(self, parameter: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """The updated parameter (a new tensor); every element takes one step."""
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        shape = (-1,) + (1,) * (parameter.dim() - 1)
        steps = self.steps.to(parameter.dtype).view(shape)
        correction1 = 1 - self.beta1**steps
        correction2_sqrt = (1 - self.beta2**steps).sqrt()
        denom = self.exp_avg_sq.sqrt() / correction2_sqrt + self.eps
        return parameter - self.learning_rate / correction1 * self.exp_avg / denom

    def keep(self, index: torch.Tensor) -> None:
        """Drop every element not in index: [kept] (after elements finish)."""
        self.exp_avg, self.exp_avg_sq = self.exp_avg[index], self.exp_avg_sq[index]
        self.steps = self.steps[index]


@dataclass
class PlateauStop:
    """Stops an element once its smoothed gradient norm changes by less than `tolerance`
    (relative) over `window` steps, but never before `min_steps`."""

    min_steps: int | None
    window: int
    tolerance: float
    smoothed: torch.Tensor  # [batch] exponential moving average of the gradient norm
    reference: torch.Tensor  # [batch] smoothed norm at the last look

    @classmethod
    def for_batch(
        cls, batch: int, min_steps: int | None, window: int, tolerance: float
    ) -> PlateauStop:
        nan = torch.full((batch,), float("nan"))
        return cls(min_steps, window, tolerance, nan, nan.clone())

    def update(self, grad_norm: torch.Tensor, step: int) -> torch.Tensor:
        """grad_norm: [batch] at 1-based `step` → finished: [batch] bool, on the CPU.

        The smoothing stays on grad_norm's device; only every `window` steps is the decision
        read back, so a GPU is not made to wait for the host at every step.
        """
        finished = torch.zeros(len(grad_norm), dtype=torch.bool)
        if self.min_steps is None:  # no plateau stopping: nothing to track
            return finished
        grad_norm = grad_norm.detach().float()
        if self.smoothed.device != grad_norm.device:
            self.smoothed = self.smoothed.to(grad_norm.device)
            self.reference = self.reference.to(grad_norm.device)
        alpha = 2.0 / (self.window + 1)
        first = torch.isnan(self.smoothed)
        self.smoothed = torch.where(
            first, grad_norm, (1 - alpha) * self.smoothed + alpha * grad_norm
        )
        if step % self.window != 0:
            return finished
        change = (self.smoothed - self.reference).abs() / self.reference.abs().clamp_min(1e-12)
        self.reference = self.smoothed.clone()
        if step < self.min_steps:
            return finished
        return (change < self.tolerance).cpu()

    def keep(self, index: torch.Tensor) -> None:
        index = index.to(self.smoothed.device)
        self.smoothed, self.reference = self.smoothed[index], self.reference[index]
