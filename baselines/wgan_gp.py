"""WGAN-GP (Gulrajani et al. 2017) on the paper's toy distributions, for the ``wgan-gp`` task. One file.

A generator G maps Gaussian noise z to points in the plane; a critic D scores points. The critic
maximises E[D(real)] - E[D(G(z))] - λ E[(‖∇D(x̂)‖ - 1)²], where x̂ = α real + (1 - α) fake with one
α ~ U[0, 1] *per sample*; the generator maximises E[D(G(z))]. ``n_critic`` critic steps per
generator step, Adam with β = (0.5, 0.9) as the paper. The traps, each tested in
``tests/test_wgan_gp.py``:

* the penalty's gradient must itself be differentiable (``create_graph=True``), or the penalty
  adds nothing to the critic's gradient;
* α is drawn per sample, and the norm is per sample over all of a sample's dimensions;
* the penalty is (‖g‖ - 1)², two-sided, not max(0, ‖g‖ - 1)²;
* no BatchNorm in the critic: it makes D(x) depend on the rest of the batch, and the per-sample
  gradient penalty is then no longer per sample (the paper uses none, or layer norm);
* the critic loss is E[D(fake)] - E[D(real)] + penalty (minimised); fakes are detached in critic
  steps, so critic steps do not train the generator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from advbench.baselines.common import by_budget, frozen
from advbench.tasks.wgan_gp.contract import ToyData


@dataclass
class Config:
    generator_steps: int = 10_000  # overridden by the budget
    n_critic: int = 5  # critic steps per generator step (the paper's 5)
    batch_size: int = 256
    latent_dim: int = 2
    hidden: int = 128  # the paper's toy models use 512; 128 runs three times faster than 256 here
    lam: float = 0.1  # the paper uses 0.1 for the toy sets (10 for images)
    lr: float = 1e-3  # with the weight average below; 1e-4 (the paper's) needs several times the steps
    betas: tuple[float, float] = (0.5, 0.9)
    checkpoints: int = 10
    quick_checkpoints: int = 2  # the quick budget's: scoring one (samples, modes, W1, the plot) takes about 0.9 s
    # The sampler is an exponential moving average of the generator's weights (Yazici et al. 2019):
    # GAN iterates circle around the equilibrium, and their average sits closer to it. 0: the last iterate.
    ema: float = 0.999
    lr_decay: bool = True  # linear decay to 0 over the budget: the last steps refine instead of wander


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """E[(‖∇ₓ D(x̂)‖₂ - 1)²] at x̂ = α real + (1 - α) fake, one α ~ U[0, 1] per sample.

    ``create_graph=True`` keeps the gradient differentiable, so the penalty trains the critic.
    """
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator).to(real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)  # per sample, over all of its dimensions
    return ((norms - 1.0) ** 2).mean()


class GeneratorSampler:
    """The solution: ``sample(n, seed)`` draws z ~ N(0, I) from ``seed`` and returns ``loc + spread * G(z)``
    (G works on standardised data, see :func:`standardiser`)."""

    def __init__(self, generator: nn.Module, latent_dim: int, loc: np.ndarray | None = None,
                 spread: float = 1.0) -> None:
        self.generator, self.latent_dim = generator, latent_dim
        self.loc = np.zeros(2, np.float32) if loc is None else np.asarray(loc, np.float32)
        self.spread = float(spread)

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> np.ndarray:
        z = torch.randn(int(n), self.latent_dim, generator=torch.Generator().manual_seed(int(seed)))
        x = self.generator(z.to(next(self.generator.parameters()).device)).cpu().numpy()
        return (self.loc + self.spread * x).astype(np.float32)


def standardiser(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The training samples' mean and one isotropic spread (the root mean squared distance from the mean
    over the two axes). The task places its distribution anywhere in the plane at scales 0.7-1.4;
    training on ``(x - loc) / spread`` gives the networks the same inputs whatever the placement (the
    paper's canonical sets already have a spread near 1), and one spread for both axes keeps shapes."""
    loc = x.mean(axis=0)
    return loc.astype(np.float32), float(np.sqrt(((x - loc) ** 2).sum(axis=1).mean() / 2))


def train(data: ToyData, ctx) -> GeneratorSampler:
    """Reference: WGAN-GP, n_critic critic steps per generator step."""
    cfg = Config(generator_steps=int(ctx.limits["generator_steps"]))
    ctx.record_config(**asdict(cfg))
    torch.manual_seed(ctx.seed)
    # Random numbers come from one CPU generator on every device (then moved), so that a cuda run
    # draws the same batches and noise as a cpu run of the same seed.
    gen = torch.Generator().manual_seed(ctx.seed)
    device = torch.device(ctx.device)
    loc, spread = standardiser(data.x)
    real_all = torch.as_tensor((data.x - loc) / spread, device=device)
    G, D = mlp(cfg.latent_dim, cfg.hidden, 2).to(device), mlp(2, cfg.hidden, 1).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    G_avg = frozen(G)
    every = max(1, cfg.generator_steps // by_budget(ctx, cfg.checkpoints, cfg.quick_checkpoints))
    for step in range(1, cfg.generator_steps + 1):
        if cfg.lr_decay:
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * (1.0 - (step - 1) / cfg.generator_steps)
        for _ in range(cfg.n_critic):
            real = real_all[torch.randint(len(real_all), (cfg.batch_size,), generator=gen).to(device)]
            with torch.no_grad():
                fake = G(torch.randn(cfg.batch_size, cfg.latent_dim, generator=gen).to(device))  # detached
            loss_d = D(fake).mean() - D(real).mean() + cfg.lam * gradient_penalty(D, real, fake, gen)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = -D(G(torch.randn(cfg.batch_size, cfg.latent_dim, generator=gen).to(device))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            decay = min(cfg.ema, step / (step + 10.0))  # a short warm-up: early weights are not averaged in
            for avg, p in zip(G_avg.parameters(), G.parameters()):
                avg.lerp_(p, 1.0 - decay)
        ctx.count(1)
        ctx.progress(step, cfg.generator_steps)
        if step % every == 0 or step == cfg.generator_steps:
            sampler = GeneratorSampler(frozen(G_avg if cfg.ema else G), cfg.latent_dim, loc, spread)
            ctx.checkpoint(sampler, step=step)
    # The last checkpoint's object itself: a fresh copy pickles to other bytes (torch names a storage
    # by its address), and the harness would score the same weights once more.
    return sampler


def untrained(data: ToyData, ctx) -> GeneratorSampler:
    """Floor: the generator as initialised, never trained (its samples, near the origin of the standardised
    plane, put at the training samples' mean and spread)."""
    torch.manual_seed(ctx.seed)
    loc, spread = standardiser(data.x)
    return GeneratorSampler(frozen(mlp(Config.latent_dim, Config.hidden, 2)), Config.latent_dim, loc, spread)
