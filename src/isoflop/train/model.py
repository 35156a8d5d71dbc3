"""A small pre-norm decoder-only transformer, nanoGPT-style, for scaling-law studies.

Its shape is a ``ModelConfig`` (``train/shapes.py``, torch-free, with the rule that derives depth and heads
from ``d_model``; imported here as before).

Options (all in ``ModelConfig``): RMSNorm or LayerNorm (both without bias), rotary or learned positions,
QK-norm (Wortsman et al. 2023: normalise queries and keys per head before the dot product), a z-loss
coefficient (same paper: penalise log Z of the softmax to keep logits from drifting), and a tied or
untied output head. The MLP is GELU with a 4x hidden width. No linear layer has a bias.

Parametrisation (``Transformer(cfg, mup_base_d_model=...)``): standard (GPT-2 init, one learning rate), or
muP (Yang et al. 2022, Tensor Programs V, Table 3 for Adam) relative to a base width b, with m = d_model / b:
the hidden matrices (qkv, attention output, MLP up and down) start at std init_std / sqrt(m) and learn at
lr / m; embeddings, norms and the output head keep the standard init and lr; the logits are multiplied by
1 / m; attention scores are scaled by 1 / head_dim (written sqrt(16) / head_dim, which is the standard
1 / sqrt(head_dim) at the ladder's head width 16, as mutransformers writes 8 / head_dim for GPT-2's 64). At
d_model = b (with 16-wide heads) both parametrisations build the same model, and a learning rate tuned at b
holds at every width.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from isoflop.errors import UserError
from isoflop.train.shapes import ModelConfig

# muP's hidden matrices: both dimensions grow with width, so their init and Adam lr shrink with it
HIDDEN_MATRICES = ("attn.qkv.weight", "attn.proj.weight", "mlp.up.weight", "mlp.down.weight")
MUP_REFERENCE_HEAD_DIM = 16  # muP's attention scale 1 / head_dim, equal to the standard one at this head width


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=1e-6)
    return nn.LayerNorm(dim, eps=1e-6, bias=False)


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (seq_len, head_dim) for the rotate-half form of RoPE (Su et al. 2021)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, mup: bool = False):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.dropout = cfg.dropout
        # None: SDPA's 1 / sqrt(head_dim); muP scales by 1 / head_dim (query-key products grow ~head_dim once
        # training has correlated them, not ~sqrt(head_dim) as at init)
        self.scale = math.sqrt(MUP_REFERENCE_HEAD_DIM) / cfg.head_dim if mup else None
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.q_norm = make_norm(cfg.norm, cfg.head_dim) if cfg.qk_norm else None
        self.k_norm = make_norm(cfg.norm, cfg.head_dim) if cfg.qk_norm else None

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        batch, seq, d_model = x.shape
        # unbind, not tuple unpacking: indexing would make backward zero-fill three full-size gradients
        q, k, v = self.qkv(x).view(batch, seq, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rotary is not None:
            cos, sin = rotary[0][:seq], rotary[1][:seq]
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0, scale=self.scale
        )
        return self.proj(y.transpose(1, 2).reshape(batch, seq, d_model))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model, bias=False)
        self.down = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, mup: bool = False):
        super().__init__()
        self.attn_norm = make_norm(cfg.norm, cfg.d_model)
        self.attn = CausalSelfAttention(cfg, mup)
        self.mlp_norm = make_norm(cfg.norm, cfg.d_model)
        self.mlp = MLP(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, rotary) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), rotary))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class Transformer(nn.Module):
    """Token ids (batch, seq) -> logits (batch, seq, vocab). ``mup_base_d_model``: None for the standard
    parametrisation, else muP relative to that base width (module docstring)."""

    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None,
                 mup_base_d_model: int | None = None):
        super().__init__()
        if mup_base_d_model is not None and mup_base_d_model < 1:
            raise UserError(f"train.mup_base_d_model={mup_base_d_model} must be a positive integer")
        self.cfg = cfg
        self.mup = mup_base_d_model is not None
        # m = d_model / base width; 1 under the standard parametrisation, where nothing below scales
        self.width_multiplier = cfg.d_model / mup_base_d_model if self.mup else 1.0
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.seq_len, cfg.d_model) if cfg.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg, self.mup) for _ in range(cfg.n_layers))
        self.final_norm = make_norm(cfg.norm, cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        if cfg.positions == "rope":
            cos, sin = rotary_tables(cfg.seq_len, cfg.head_dim, cfg.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.embed_dropout = nn.Dropout(cfg.dropout)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """GPT-2 init: N(0, init_std) for matrices, with the two residual-stream outputs of each block
        scaled by 1/sqrt(2 n_layers) so the stream's variance does not grow with depth; norms at 1. Under muP
        the hidden matrices' std is further divided by sqrt(width multiplier) (variance ~ 1 / fan_in)."""
        residual_std = self.cfg.init_std / math.sqrt(2 * self.cfg.n_layers)
        for name, param in self.named_parameters():
            if param.dim() < 2:
                param.fill_(1.0)
            else:
                std = residual_std if name.endswith(("attn.proj.weight", "mlp.down.weight")) else self.cfg.init_std
                if self.mup and self.is_hidden_matrix(name):
                    std /= math.sqrt(self.width_multiplier)
                param.normal_(0.0, std, generator=generator)

    @staticmethod
    def is_hidden_matrix(name: str) -> bool:
        """Whether parameter `name` is one of muP's hidden matrices (init and Adam lr scaled by width)."""
        return name.endswith(HIDDEN_MATRICES)

    def lr_scale(self, name: str) -> float:
        """The factor on the run's learning rate for parameter `name`: 1 / width multiplier for muP's
        hidden matrices (Adam's update to a fan_in-wide matrix moves its output ~fan_in times as much), else 1."""
        return 1.0 / self.width_multiplier if self.mup and self.is_hidden_matrix(name) else 1.0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        if self.pos_embed is not None:
            x = x + self.pos_embed.weight[: idx.shape[1]]
        x = self.embed_dropout(x)
        rotary = (self.rope_cos, self.rope_sin) if self.pos_embed is None else None
        for block in self.blocks:
            x = block(x, rotary)
        logits = self.head(self.final_norm(x))
        # muP's output multiplier 1 / m: the head's input coordinates correlate with its weights after training,
        # so its logits grow ~width; a no-op (skipped, for bit-identical results) under the standard one
        return logits / self.width_multiplier if self.mup else logits


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, z_loss: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy in nats per token, training objective = cross-entropy + z_loss * mean(log Z ^ 2))."""
    logits = logits.float().flatten(0, -2)
    targets = targets.flatten()
    if not z_loss:
        ce = F.cross_entropy(logits, targets)
        return ce, ce
    log_z = torch.logsumexp(logits, dim=-1)
    ce = (log_z - logits.gather(1, targets[:, None]).squeeze(1)).mean()
    return ce, ce + z_loss * log_z.square().mean()
