"""Causal language models from Hugging Face transformers, shaped as crossprune's networks are: `features` (the last
hidden states), a replaceable `head` (the LM head) and `blocks` (the decoder layers, in order).

`forward(x)` gives logits [batch, vocab, positions], cross_entropy's layout for sequences, so `head(features(x))`
is the forward pass and the trainer's classification loss and accuracy are next-token loss and accuracy.
"""

import os
from pathlib import Path

import torch
from torch import Tensor, nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a checkpoint is a local folder: nothing is ever downloaded


class LMHead(nn.Module):
    """The LM head's Linear, its logits moved to [batch, vocab, positions]."""

    def __init__(self, proj: nn.Linear):
        super().__init__()
        self.proj = proj

    @property
    def in_features(self) -> int:
        return self.proj.in_features

    @property
    def out_features(self) -> int:
        return self.proj.out_features

    def forward(self, hidden: Tensor) -> Tensor:
        return self.proj(hidden).transpose(1, 2)


class CausalLM(nn.Module):
    """A transformers `*ForCausalLM`: built from `config` (a transformers config, e.g. LlamaConfig; vocabulary and
    positions come from the data), or from the checkpoint folder `path` (its config), with the weights of the folder
    `weights` (safetensors) when set. `tokenizer` is the one the data is read with (its ids must fit the vocabulary)."""

    def __init__(self, input_shape: list[int], num_classes: int, config=None, path: str | None = None,
                 weights: str | None = None, tokenizer=None):
        super().__init__()
        from transformers import AutoConfig, AutoModelForCausalLM  # noqa: PLC0415 (seconds to import)
        from transformers.utils import logging  # noqa: PLC0415

        logging.set_verbosity_error()  # no loading bars or notes on every model a stage builds
        logging.disable_progress_bar()

        self.input_shape = list(input_shape)
        if config is None:
            if path is None or not Path(path).is_dir():
                raise ValueError(f"model.path={path} is not a folder: give the folder of a local Hugging Face checkpoint")
            config = AutoConfig.from_pretrained(path, local_files_only=True)
            positions = getattr(config, "max_position_embeddings", None)
            if positions and self.input_shape[0] > positions:
                raise ValueError(f"pair.seqlen={self.input_shape[0]} is longer than the {positions} positions of {path}")
        else:  # a model built here: its vocabulary is the tokenizer's, its positions the data's
            config.vocab_size, config.max_position_embeddings = num_classes, max(self.input_shape[0], 8)
            config.n_positions = config.max_position_embeddings  # GPT-2's name for it
        config.use_cache = False  # whole sequences every time: a key/value cache only costs memory here
        if weights:
            lm = AutoModelForCausalLM.from_pretrained(weights, config=config, local_files_only=True, use_safetensors=True,
                                                      dtype=torch.float32)
        else:
            lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        vocab = lm.get_output_embeddings().out_features
        if num_classes > vocab:
            raise ValueError(f"the tokenizer has {num_classes} ids but the model's vocabulary only {vocab}")
        linear_conv1d(lm)
        self.body, self.head = lm.base_model, LMHead(lm.get_output_embeddings())
        self._register_state_dict_hook(untie)

    @property
    def blocks(self) -> nn.ModuleList:
        """The decoder layers, in the order the forward pass runs them (a property: a second name for them would
        put every block twice in the state dict)."""
        return next(m for m in self.body.modules() if isinstance(m, nn.ModuleList))

    def features(self, x: Tensor) -> Tensor:
        return self.body(input_ids=x).last_hidden_state

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def untie(module: CausalLM, state: dict, prefix: str, local_metadata) -> dict:
    """A head tied to the input embeddings, as its own tensor in the state dict: safetensors refuses shared ones."""
    key = f"{prefix}head.proj.weight"
    if key in state and any(v.data_ptr() == state[key].data_ptr() for k, v in state.items() if k != key):
        state[key] = state[key].clone()
    return state


def linear_conv1d(lm: nn.Module) -> None:
    """Replace GPT-2's Conv1D layers (weight [in, out]) by the same nn.Linear (weight [out, in]): every prunable
    layer is then an nn.Linear whose rows are its outputs."""
    from transformers.pytorch_utils import Conv1D  # noqa: PLC0415

    for name, m in list(lm.named_modules()):
        if isinstance(m, Conv1D):
            linear = nn.Linear(*m.weight.shape, bias=m.bias is not None)
            with torch.no_grad():
                linear.weight.copy_(m.weight.t())
                if m.bias is not None:
                    linear.bias.copy_(m.bias)
            lm.set_submodule(name, linear)
