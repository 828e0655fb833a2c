"""Hugging Face ``transformers`` models as backbones: imported lazily, loaded from what the user has
(a model or a local ``from_pretrained`` folder, never a download), rebuilt from their config."""
from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import Tensor

from graphfuse.backbones.base import Backbone, check_hidden_states


def import_transformers(owner: str):
    """The ``transformers`` module, or an ImportError naming the extra that brings it."""
    try:
        import transformers
    except ImportError:
        raise ImportError(f"{owner} needs Hugging Face transformers; install it with pip install 'graphfuse[hf]' "
                          f"(or pip install transformers)") from None
    return transformers


def as_hf_model(model: Any, owner: str) -> torch.nn.Module:
    """``model`` itself when it is a module; a path is a local ``from_pretrained`` folder (nothing is downloaded)."""
    if isinstance(model, (str, os.PathLike)):
        if not os.path.isdir(model):
            raise ValueError(f"{owner} was given {os.fspath(model)!r}, which is not a local folder; graphfuse never "
                             f"downloads: save the model with model.save_pretrained(folder) and pass the folder")
        return import_transformers(owner).AutoModel.from_pretrained(os.fspath(model), local_files_only=True)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{owner} expects a transformers model (a torch.nn.Module) or a local from_pretrained "
                        f"folder, got {type(model).__name__}")
    return model


def hf_model_config(model: torch.nn.Module, owner: str) -> dict[str, Any]:
    """``{"model_class", "model_config", "modules"}``: what :func:`build_hf_model` rebuilds the model from."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_json_string"):
        raise TypeError(f"{owner} can save only transformers models (with a .config), got {type(model).__name__}")
    return {"model_class": type(model).__name__, "model_config": json.loads(config.to_json_string()),
            "modules": [name for name, module in model.named_children() if module is not None]}


def build_hf_model(model_class: str, model_config: dict[str, Any], modules: list[str] | None, owner: str
                   ) -> torch.nn.Module:
    """A transformers model of class ``model_class`` built from its config dict, with random weights;
    top-level modules not in ``modules`` (a pooler the saved model was built without) are dropped."""
    transformers = import_transformers(owner)
    cls = getattr(transformers, model_class, None)
    if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module) or not hasattr(cls, "config_class"):
        raise ValueError(f"{owner}: transformers has no model class {model_class!r} (installed version "
                         f"{transformers.__version__}); install the version the backbone was saved with")
    model = cls(cls.config_class.from_dict(model_config))
    if modules is not None:
        for name, module in list(model.named_children()):
            if name not in modules and module is not None:
                setattr(model, name, None)
    return model


def select_hidden_states(output: Any, layer: int | None, owner: str) -> Tensor:
    """The hidden states a model returned: ``last_hidden_state`` for ``layer=None``, else
    ``hidden_states[layer]`` (``0`` is the embeddings' output); a bare tensor passes through."""
    if isinstance(output, Tensor):
        return output
    if layer is None:
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is None and isinstance(output, (tuple, list)) and output:
            hidden = output[0]
        return hidden
    states = getattr(output, "hidden_states", None)
    if states is None:
        raise ValueError(f"{owner} was asked for layer={layer} but the model returned no hidden_states; use a "
                         f"transformers model that takes output_hidden_states=True, or layer=None")
    if not -len(states) <= layer < len(states):
        raise ValueError(f"{owner} was asked for layer={layer} but the model has {len(states)} hidden states "
                         f"(0 = embeddings, {len(states) - 1} = last layer)")
    return states[layer]


class HFBackbone(Backbone):
    """What the Hugging Face wrappers share: the model (or a local folder to load it from), the
    chosen layer, the hidden size and the config that rebuilds them."""

    def __init__(self, model: torch.nn.Module | str | os.PathLike, layer: int | None = None) -> None:
        super().__init__()
        self.model = as_hf_model(model, type(self).__name__)
        config = getattr(self.model, "config", None)
        hidden_size = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
        if hidden_size is None:
            raise TypeError(f"'{type(self).__name__}' expects a transformers model whose config has hidden_size, got "
                            f"{type(self.model).__name__}")
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int)):
            raise TypeError(f"'{type(self).__name__}' 'layer' must be an int (an index into hidden_states) or None, "
                            f"got {layer!r}")
        self.layer = layer
        self.out_channels = int(hidden_size)

    @property
    def config(self) -> Any:
        return self.model.config

    def hidden_states(self, batch_size: int, **inputs: Tensor) -> Tensor:
        """Runs the model on ``inputs``: the chosen layer's hidden states :math:`[B, L, D]`."""
        if self.layer is not None:
            inputs["output_hidden_states"] = True
        output = self.model(**inputs)
        owner = type(self).__name__
        return check_hidden_states(select_hidden_states(output, self.layer, owner), owner, batch_size)

    def get_config(self) -> dict[str, Any]:
        return {**hf_model_config(self.model, type(self).__name__), "layer": self.layer}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HFBackbone:
        config = dict(config)
        model = build_hf_model(config.pop("model_class"), config.pop("model_config"), config.pop("modules", None),
                               cls.__name__)
        return cls(model, **config)

    def extra_repr(self) -> str:
        return f"model={type(self.model).__name__}, out_channels={self.out_channels}, layer={self.layer}"
