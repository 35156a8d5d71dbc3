"""The model's shape: ``ModelConfig``, everything that determines the architecture and so the parameter and
FLOP counts, without torch (the workflow plans every run from it while Snakemake parses, and a parse must not
pay for importing torch; ``train/model.py`` builds the network from it, ``accounting.py`` counts it).

One size knob. A study varies only ``d_model``; ``ModelConfig.from_size`` derives the rest:

    head_dim = 16 if d_model < 128 else 32
    n_heads  = d_model // head_dim
    n_layers = max(1, d_model // 32)

so d_model 16 -> 1 layer x 1 head, 64 -> 2 x 4, 128 -> 4 x 4, 256 -> 8 x 8. The aspect ratio
d_model / n_layers stays at 32 (16 for the smallest), inside the flat region Kaplan et al. 2020 found
(loss depends weakly on shape at fixed non-embedding parameters), and heads stay wide enough for rotary
positions to mean something. ``d_model`` must be a multiple of 16. Any derived field can be overridden.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from isoflop.errors import UserError

NORMS = ("rmsnorm", "layernorm")
POSITIONS = ("rope", "learned")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines the architecture (and so the parameter and FLOP counts)."""

    d_model: int
    n_layers: int
    n_heads: int
    vocab_size: int
    seq_len: int
    mlp_ratio: int = 4
    norm: str = "rmsnorm"
    positions: str = "rope"
    qk_norm: bool = False
    z_loss: float = 0.0
    tie_embeddings: bool = False
    dropout: float = 0.0
    init_std: float = 0.02
    rope_base: float = 10000.0

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise UserError(f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}")
        if self.norm not in NORMS:
            raise UserError(f"model.norm={self.norm!r}: expected one of {NORMS}")
        if self.positions not in POSITIONS:
            raise UserError(f"model.positions={self.positions!r}: expected one of {POSITIONS}")
        if self.positions == "rope" and self.head_dim % 2:
            raise UserError(f"model: rotary positions need an even head_dim, got {self.head_dim}")
        for name in ("d_model", "n_layers", "n_heads", "vocab_size", "seq_len", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise UserError(f"model.{name}={getattr(self, name)} must be a positive integer")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_size(cls, d_model: int, vocab_size: int, seq_len: int, **options) -> ModelConfig:
        """A config whose depth and head count follow from ``d_model`` by the rule in the module docstring."""
        if d_model < 16 or d_model % 16:
            raise UserError(f"model.d_model={d_model} must be a positive multiple of 16")
        head_dim = 16 if d_model < 128 else 32
        derived = {"n_heads": d_model // head_dim, "n_layers": max(1, d_model // 32)}
        return cls(d_model=d_model, vocab_size=vocab_size, seq_len=seq_len, **{**derived, **options})

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """Build from a spec's ``model`` section, naming any key that is not a field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"model: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)
