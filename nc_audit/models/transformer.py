"""A one-layer transformer for a + b mod p, in the setting of Nanda et al. (2023, "Progress measures for
grokking via mechanistic interpretability"): no LayerNorm, learned positions, ReLU MLP, untied unembedding.

Input: integer pairs (N, 2) of operands (a, b), read as the tokens [a, b, =] with "=" the token p
(vocabulary p + 1). One causal attention layer (``heads`` heads of width d_model/heads, no biases) and
one MLP block (d_model → d_mlp → d_model, ReLU), both residual; the prediction is read at the last
position. Only the last position's output is computed: in a single causal layer it needs only its own
query (keys and values of all three positions), so this equals running the full causal layer and
taking position 2.

The unembedding is the classifier head, an ``nn.Linear(d_model, p, bias=False)`` named ``head``; the
features are its input (the residual stream at the last position), read by the head's pre-hook like
every built-in model. Initialisation (torch.manual_seed before construction): every matrix N(0, 1)/√fan_in
(the unembedding N(0, 1)/√p), biases 0 — drawn in a fixed order, so a seed fixes the model.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _normal(*shape: int, scale: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) / math.sqrt(scale))


class OneLayerTransformer(nn.Module):
    """Embed [a, b, =] + learned positions → causal attention → ReLU MLP → ``head`` (module docstring)."""

    def __init__(
        self, *, num_classes: int, p: int, d_model: int = 64, heads: int = 4, d_mlp: int = 256
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("p", p), ("d_model", d_model), ("heads", heads),
                            ("d_mlp", d_mlp)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_classes != p:
            raise ValueError(
                f"transformer predicts a+b mod p, so num_classes must equal p={p}, got {num_classes}"
            )
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be a multiple of heads={heads}")
        self.p, self.heads, self.d_head = p, heads, d_model // heads
        self.input_vocabulary = p  # operands a, b lie in [0, p) (models/input_fit.py checks the data)
        d, h, dh = d_model, heads, self.d_head
        self.W_E = _normal(p + 1, d, scale=d)  # token embedding; token p is "="
        self.W_pos = _normal(3, d, scale=d)  # positions of a, b, =
        self.W_Q = _normal(h, d, dh, scale=d)
        self.W_K = _normal(h, d, dh, scale=d)
        self.W_V = _normal(h, d, dh, scale=d)
        self.W_O = _normal(h, dh, d, scale=d)
        self.W_in = _normal(d, d_mlp, scale=d)
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = _normal(d_mlp, d, scale=d_mlp)
        self.b_out = nn.Parameter(torch.zeros(d))
        unembed = torch.randn(d, p) / math.sqrt(p)  # (d, p), drawn before the Linear's own init
        self.head = nn.Linear(d, p, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(unembed.T)  # (p, d)

    def forward(self, pairs: Tensor) -> Tensor:
        """Logits (N, p) from integer pairs (N, 2) of operands a, b in [0, p)."""
        pairs = pairs.long()
        equals = torch.full_like(pairs[:, :1], self.p)  # (N, 1)
        tokens = torch.cat([pairs, equals], dim=1)  # (N, 3)
        r = self.W_E[tokens] + self.W_pos  # (N, 3, d)
        q = torch.einsum("nd,hde->nhe", r[:, -1], self.W_Q)  # (N, h, dh): the last position's query
        k = torch.einsum("npd,hde->nhpe", r, self.W_K)  # (N, h, 3, dh)
        v = torch.einsum("npd,hde->nhpe", r, self.W_V)  # (N, h, 3, dh)
        attention = torch.softmax(torch.einsum("nhe,nhpe->nhp", q, k) / math.sqrt(self.d_head), dim=-1)
        z = torch.einsum("nhp,nhpe->nhe", attention, v)  # (N, h, dh)
        residual = r[:, -1] + torch.einsum("nhe,hed->nd", z, self.W_O)  # (N, d)
        residual = residual + torch.relu(residual @ self.W_in + self.b_in) @ self.W_out + self.b_out
        logits: Tensor = self.head(residual)  # (N, p)
        return logits
