"""The optimiser of a run: a name, an optimiser the user built, or a factory over parameter groups,
with per-group learning rates (e.g. a lower one for a fine-tuned backbone).

Weight decay falls on weight matrices only: biases, norms, embeddings of absent node types and
other vectors (and 2-D parameters named like biases) never decay, in every group.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
NO_DECAY_SUFFIXES = ("bias", "absent")  # per-type biases and absent-type embeddings are 2-D, not weights

OptimizerSpec = str | torch.optim.Optimizer | Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
GroupsSpec = Sequence[Mapping[str, Any]] | Callable[[torch.nn.Module], Sequence[Mapping[str, Any]]]


def decays(name: str, parameter: torch.Tensor) -> bool:
    """Whether weight decay applies to ``parameter`` (a weight matrix, not a bias-like one)."""
    return parameter.dim() >= 2 and not name.endswith(NO_DECAY_SUFFIXES)


def check_optimizer(optimizer: Any, groups: GroupsSpec | None = None) -> None:
    """Refuses what :func:`build_optimizer` cannot use, when the Trainer is created (groups from
    a callable are checked when it gives them)."""
    if not callable(groups):
        check_param_groups(groups)
    if groups is not None and isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError("Trainer got an optimizer instance and param_groups; an optimizer built already has its "
                         "groups: build them into it, or pass a factory (optimizer=lambda groups: "
                         "torch.optim.AdamW(groups)) with param_groups")
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"Trainer 'optimizer' must be one of {tuple(OPTIMIZERS)}, a torch.optim.Optimizer over "
                             f"the model's parameters, or a factory groups -> Optimizer; got {optimizer!r}")
    elif not (isinstance(optimizer, torch.optim.Optimizer) or callable(optimizer)):
        raise TypeError(f"Trainer 'optimizer' must be a name ({', '.join(OPTIMIZERS)}), a torch.optim.Optimizer over "
                        f"the model's parameters, or a factory groups -> Optimizer (e.g. "
                        f"functools.partial(torch.optim.SGD, momentum=0.9)); got {type(optimizer).__name__}")


def check_param_groups(groups: Any) -> None:
    """Refuses ``groups`` that are not a list of dicts with ``"params"``, or whose ``lr`` or
    ``weight_decay`` is not a number >= 0 (the schedule multiplies them)."""
    if isinstance(groups, (Mapping, str)) or not isinstance(groups, (Sequence, type(None))):
        raise TypeError(f"Trainer 'param_groups' must be a list of dicts ({{'params': 'backbone', 'lr': 1e-5}}) or "
                        f"a callable model -> such a list; got {type(groups).__name__}")
    for index, group in enumerate(groups or ()):
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(f"Trainer 'param_groups[{index}]' must be a dict with 'params' (a module-name prefix, or "
                            f"a list of prefixes or parameters) and its settings, e.g. {{'params': 'backbone', "
                            f"'lr': 1e-5}}; got {group!r}")
        for key in ("lr", "weight_decay"):
            value = group.get(key)
            if key in group and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0):
                raise ValueError(f"Trainer 'param_groups[{index}]['{key}']' must be a number >= 0, as Trainer's own "
                                 f"'{key}', got {value!r} of type {type(value).__name__}")


def parameter_groups(model: torch.nn.Module, groups: GroupsSpec | None = None, lr: float = 1e-3,
                     weight_decay: float = 0.01) -> list[dict[str, Any]]:
    """The trainable parameters of ``model`` as optimiser parameter groups, each with its ``lr``
    and ``weight_decay`` set.

    The first two groups hold every parameter that ``groups`` does not select, at ``lr``: weight
    matrices with ``weight_decay``, the rest with none. Each entry of ``groups`` follows, split the
    same way into (non-empty) matrices and the rest; its ``"params"`` is a module-name prefix
    (``"encoders.text.backbone"`` selects that module's parameters), a list of prefixes or of the
    model's parameters; its other keys (``lr``, ``weight_decay`` for its matrices, ``betas``,
    ...) are the group's settings, ``lr`` and ``weight_decay`` defaulting to the arguments.

    Args:
        model (torch.nn.Module): the model whose parameters are grouped.
        groups (Sequence[dict] or Callable, optional): the groups with their own settings, or
            ``groups(model)`` giving them. (default: :obj:`None`)
        lr (float, optional): the learning rate of the rest. (default: :obj:`1e-3`)
        weight_decay (float, optional): the weight decay of the rest's matrices.
            (default: :obj:`0.01`)
    """
    named = list(model.named_parameters())
    if callable(groups):
        groups = groups(model)
    check_param_groups(groups)
    owner: dict[int, int] = {}
    selected = []
    for index, group in enumerate(groups or ()):
        chosen = []
        for name, parameter in _select(model, named, group["params"], index):
            if owner.get(id(parameter), index) != index:
                raise ValueError(f"Parameter '{name}' is in param_groups[{owner[id(parameter)]}] and "
                                 f"param_groups[{index}]; a parameter belongs to one group: make the prefixes disjoint")
            if id(parameter) not in owner:
                owner[id(parameter)] = index
                chosen.append((name, parameter))
        selected.append((chosen, {key: value for key, value in group.items() if key != "params"}))
    rest = [(name, parameter) for name, parameter in named if id(parameter) not in owner]
    resolved = _split(rest, {}, lr, weight_decay, keep_empty=True)
    for chosen, options in selected:
        resolved += _split(chosen, options, lr, weight_decay, keep_empty=False)
    return resolved


def _select(model: torch.nn.Module, named: list[tuple[str, torch.nn.Parameter]], selection: Any,
            index: int) -> list[tuple[str, torch.nn.Parameter]]:
    selectors = [selection] if isinstance(selection, (str, torch.Tensor)) else selection
    if not isinstance(selectors, Iterable):
        raise TypeError(f"Trainer 'param_groups[{index}]['params']' must be a module-name prefix, or a list of "
                        f"prefixes or parameters; got {type(selection).__name__}")
    names = {id(parameter): name for name, parameter in named}
    chosen = []
    for selector in selectors:
        if isinstance(selector, str):
            matched = [(name, p) for name, p in named if name == selector or name.startswith(selector + ".")]
            if not matched:
                modules = [name for name, _ in model.named_children()]
                raise ValueError(f"Trainer 'param_groups[{index}]' selects the module-name prefix {selector!r}, which "
                                 f"matches none of the model's parameters; its modules are {modules} (a prefix is a "
                                 f"dotted path such as 'encoders.text', as in model.named_parameters())")
            chosen += matched
        elif isinstance(selector, torch.Tensor):
            if id(selector) not in names:
                raise ValueError(f"Trainer 'param_groups[{index}]' holds a parameter of shape {tuple(selector.shape)} "
                                 f"that is not the model's; select the model's own parameters (or name them by prefix)")
            chosen.append((names[id(selector)], selector))
        else:
            raise TypeError(f"Trainer 'param_groups[{index}]['params']' must hold module-name prefixes or the model's "
                            f"parameters, got {type(selector).__name__}")
    return chosen


def _split(named: list[tuple[str, torch.nn.Parameter]], options: dict[str, Any], lr: float, weight_decay: float,
           keep_empty: bool) -> list[dict[str, Any]]:
    """``named``'s trainable parameters as a group of weight matrices and one of the rest (no decay)."""
    options = {"lr": lr, **options}
    matrices_decay = options.pop("weight_decay", weight_decay)
    decay = [p for name, p in named if p.requires_grad and decays(name, p)]
    no_decay = [p for name, p in named if p.requires_grad and not decays(name, p)]
    groups = [{"params": decay, **options, "weight_decay": matrices_decay},
              {"params": no_decay, **options, "weight_decay": 0.0}]
    return groups if keep_empty else [group for group in groups if group["params"]]


def build_optimizer(model: torch.nn.Module, optimizer: OptimizerSpec = "adamw", groups: GroupsSpec | None = None,
                    lr: float = 1e-3, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    """The optimiser of ``model``.

    Args:
        model (torch.nn.Module): the model to train.
        optimizer (str or torch.optim.Optimizer or Callable): ``"adamw"``, ``"adam"`` or ``"sgd"``
            (momentum 0.9) over :func:`parameter_groups`; an optimiser already built over the
            model's parameters (used as it is: its own groups, learning rates and decay); or a
            factory called with :func:`parameter_groups` (each group carries its ``lr`` and
            ``weight_decay``, so the factory sets the rest: ``torch.optim.RMSprop``,
            ``functools.partial(torch.optim.SGD, momentum=0.9, nesterov=True)``).
            (default: :obj:`"adamw"`)
        groups (Sequence[dict] or Callable, optional): parameter groups with their own settings
            (see :func:`parameter_groups`). (default: :obj:`None`)
        lr (float, optional): learning rate of the parameters no group selects. (default: :obj:`1e-3`)
        weight_decay (float, optional): their matrices' weight decay. (default: :obj:`0.01`)
    """
    check_optimizer(optimizer, groups)
    if isinstance(optimizer, torch.optim.Optimizer):
        own = {id(p) for p in model.parameters()}
        foreign = [tuple(p.shape) for group in optimizer.param_groups for p in group["params"] if id(p) not in own]
        if foreign:
            raise ValueError(f"Trainer 'optimizer' holds {len(foreign)} parameters that are not the model's (shapes "
                             f"{foreign[:3]}{' ...' if len(foreign) > 3 else ''}): build it over this model's "
                             f"parameters, torch.optim.AdamW(model.parameters()), or pass a factory, "
                             f"optimizer=lambda groups: torch.optim.AdamW(groups)")
        return optimizer
    resolved = parameter_groups(model, groups, lr, weight_decay)
    if isinstance(optimizer, str):
        kwargs = {"momentum": 0.9} if optimizer == "sgd" else {}
        return OPTIMIZERS[optimizer](resolved, lr=lr, **kwargs)
    built = optimizer(resolved)
    if not isinstance(built, torch.optim.Optimizer):
        raise TypeError(f"Trainer 'optimizer' factory must return a torch.optim.Optimizer, got "
                        f"{type(built).__name__}")
    return built
