"""A character-level LSTM language model (Karpathy's char-rnn): Embedding -> LSTM -> Linear."""
from __future__ import annotations

from .. import nn
from ..tensor import Tensor
from .sampling import generate

__all__ = ["CharLSTM"]


class CharLSTM(nn.Module):
    """Predicts the next character at every position: ids (B, T) -> logits (B, T, vocab_size).

    >>> CharLSTM(vocab_size=65)(ember.randint(0, 65, (4, 32))).shape   # (4, 32, 65)
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256, num_layers: int = 2,
                 dropout: float = 0.0, block_size: int = 128):
        super().__init__()
        self.block_size = block_size  # the context `generate` keeps; training length is the data's
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        out, _ = self.lstm(self.embed(idx))                     # (B, T, hidden)
        return self.head(out)                                   # (B, T, vocab)

    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator=None) -> Tensor:
        """Extend ids (B, T) by sampling ``max_new_tokens`` characters. See ``sampling.generate``."""
        return generate(self, idx, max_new_tokens, self.block_size, temperature, top_k, generator)
