"""Parameter and FLOP counts of a ``ModelConfig``, computed from the config alone (no model is built).

Which parameters count as "N" changes small-scale exponents (Pearce and Song 2024; Porian et al. 2024),
so every convention is reported and the fit chooses:

    total          every trainable parameter (a tied head counted once)
    nonembed       total minus token and position embeddings and an untied head (Kaplan et al. 2020)
    nonembed_head  nonembed plus the output head's d_model x vocab matrix, tied or not: the parameters
                   that do a matmul per token (Porian et al. 2024 count the head; it dominates tiny models)

FLOPs per trained token, forward + backward (backward = 2x forward), 2 FLOPs per multiply-add:

    dense       6 * (matmul parameters) = 6 * (12 d^2 L + d V) for the MLP ratio 4: every linear layer and
                the head, without norms, softmax or the embedding lookup (a gather, not a matmul)
    attention   6 * 2 * L * seq_len * d: the QK^T and AV products over the full context, as Hoffmann et al.
                2022 (Chinchilla, appendix F) count them; a causal kernel does about half of this
    total       dense + attention
    nonembed_6n 6 * nonembed: Kaplan's C = 6N, which leaves out the head and attention
"""

from __future__ import annotations

from isoflop.train.shapes import ModelConfig


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Parameter counts under the three conventions above; equal to the built model's ``numel`` sums."""
    d, layers = cfg.d_model, cfg.n_layers
    attention = 4 * d * d + (2 * cfg.head_dim if cfg.qk_norm else 0)
    mlp = 2 * cfg.mlp_ratio * d * d
    block = attention + mlp + 2 * d  # two norm weights
    nonembed = layers * block + d  # plus the final norm
    head = d * cfg.vocab_size
    embeddings = d * cfg.vocab_size + (d * cfg.seq_len if cfg.positions == "learned" else 0)
    total = nonembed + embeddings + (0 if cfg.tie_embeddings else head)
    return {"total": total, "nonembed": nonembed, "nonembed_head": nonembed + head}


def matmul_params(cfg: ModelConfig) -> int:
    """Weights that take part in a matrix multiply for every token: the linear layers and the head."""
    d = cfg.d_model
    return cfg.n_layers * (4 + 2 * cfg.mlp_ratio) * d * d + d * cfg.vocab_size


def flops_per_token(cfg: ModelConfig) -> dict[str, int]:
    """Training FLOPs per token (forward + backward) under the conventions in the module docstring."""
    dense = 6 * matmul_params(cfg)
    attention = 6 * 2 * cfg.n_layers * cfg.seq_len * cfg.d_model
    return {
        "dense": dense,
        "attention": attention,
        "total": dense + attention,
        "nonembed_6n": 6 * param_counts(cfg)["nonembed"],
    }
