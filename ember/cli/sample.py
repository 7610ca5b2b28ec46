"""`ember sample CHECKPOINT --config CONFIG --prompt TEXT --length N`: text from a trained language model."""
from __future__ import annotations

import ember
from .build import build_model
from .checkpoint import read_weights
from .config import Config, ConfigError
from .data import RunData, encode_text, read_text

__all__ = ["sample_text"]


def sample_text(cfg: Config, checkpoint: str, prompt: str = "\n", length: int = 200,
                temperature: float = 1.0, top_k: int | None = None, seed: int = 0) -> str:
    """The prompt followed by ``length`` sampled characters.

    Example: print(sample_text(load_config("examples/char_lstm.toml"), "runs/char_lstm/last.safetensors"))
    """
    if cfg.data.name != "text":
        raise ConfigError(f"{cfg.source}: sample needs a language model config ([data] name = \"text\"), "
                          f"this one trains on {cfg.data.name!r}")
    state, ckpt = read_weights(checkpoint)
    vocab = ckpt.get("vocab") or "".join(sorted(set(read_text(cfg))))  # `ember train` stores it
    model = build_model(cfg, RunData(None, None, (cfg.data.seq_len,), len(vocab), vocab), flat_logits=False)
    model.load_state_dict(state)
    if not hasattr(model, "generate"):
        raise ConfigError(f"{cfg.source}: the model ({type(model).__name__}) has no generate(); "
                          "sampling needs a zoo language model (char_lstm or gpt)")
    prompt = prompt or ("\n" if "\n" in vocab else vocab[0])
    try:
        ids, _ = encode_text(prompt, vocab)
    except ConfigError as e:
        raise ConfigError(f"--prompt: {e}") from None
    gen = ember.Generator(seed)
    out = model.generate(ember.from_numpy(ids[None]), length, temperature=temperature, top_k=top_k,
                         generator=gen)
    return "".join(vocab[i] for i in out.numpy()[0])
