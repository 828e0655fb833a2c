"""Bad model arguments are refused at construction, by every registered model, with the library's
message naming the argument (never torch's raw error or a ZeroDivisionError)."""
import re

import pytest

from graphfuse.models import create_model, list_models

# (argument, bad value, what the message says)
BAD_ARGUMENTS = [
    ("hidden_channels", -8, "'hidden_channels' must be an integer >= 1, got -8"),
    ("hidden_channels", 3.5, "'hidden_channels' must be an integer >= 1, got 3.5"),
    ("hidden_channels", 0, "'hidden_channels' must be an integer >= 1, got 0"),
    ("hidden_channels", "64", "'hidden_channels' must be an integer >= 1, got '64'"),
    ("heads", 0, "'heads' must be an integer >= 1, got 0"),
    ("heads", -2, "'heads' must be an integer >= 1, got -2"),
    ("heads", True, "'heads' must be an integer >= 1, got True"),
    ("num_layers", 0, "'num_layers' must be an integer >= 1, got 0"),
    ("num_layers", 1.0, "'num_layers' must be an integer >= 1, got 1.0"),
    ("dropout", 1.5, "'dropout' is a probability in [0, 1), got 1.5"),
    ("dropout", -0.1, "'dropout' is a probability in [0, 1), got -0.1"),
    ("dropout", float("nan"), "'dropout' is a probability in [0, 1), got nan"),
    ("ffn_ratio", -1.0, "'ffn_ratio' must be a number >= 0, got -1.0"),
    ("num_classes", 0, "'num_classes' must be an integer >= 1, got 0"),
    ("num_classes", 2.5, "'num_classes' must be an integer >= 1, got 2.5"),
    ("head_hidden_channels", -1, "'head_hidden_channels' must be an integer >= 1, got -1"),
]
#: Graph models whose conv has no attention heads to split the channels over.
WITHOUT_HEADS = {"graph-gcn", "graph-gated"}


def _kwargs(name, builder, **kwargs):
    extra = {"modality": "image"} if name == "unimodal" else {}
    return {"builder": builder, "num_classes": 2, "hidden_channels": 8, "heads": 2, **extra, **kwargs}


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize(("argument", "value", "message"), BAD_ARGUMENTS,
                         ids=[f"{a}={v!r}" for a, v, _ in BAD_ARGUMENTS])
def test_bad_argument_is_refused_naming_it(builder, name, argument, value, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        create_model(name, **_kwargs(name, builder, **{argument: value}))


@pytest.mark.parametrize("name", list_models())
def test_hidden_channels_not_divisible_by_heads(builder, name):
    kwargs = _kwargs(name, builder, hidden_channels=10, heads=4)
    if name in WITHOUT_HEADS:  # the heads are unused: any positive number builds
        create_model(name, **kwargs)
        return
    with pytest.raises(ValueError, match=r"splits hidden_channels=10 over heads=4; pick a number of heads that "
                                         r"divides 'hidden_channels'"):
        create_model(name, **kwargs)


@pytest.mark.parametrize("name", list_models())
def test_good_arguments_build(builder, name):
    create_model(name, **_kwargs(name, builder, num_layers=2, dropout=0.0))


@pytest.mark.parametrize(("name", "owner"), [("graph-gat", "GraphRetrievalModel"),
                                             ("graph-gcn", "GraphRetrievalModel"),
                                             ("early-fusion", "BaselineRetrievalModel")])
@pytest.mark.parametrize(("argument", "value", "message"), [
    ("hidden_channels", -8, "'hidden_channels' must be an integer >= 1, got -8"),
    ("heads", 0, "'heads' must be an integer >= 1, got 0"),
    ("embed_dim", 0, "'embed_dim' must be an integer >= 1, got 0"),
])
def test_bad_retrieval_argument_is_refused(builder, name, owner, argument, value, message):
    with pytest.raises(ValueError, match=re.escape(f"{owner} {message}")):
        create_model(name, builder=builder, task="retrieval", **{argument: value})


def test_message_names_the_model(builder):
    with pytest.raises(ValueError, match=r"^GraphFusionModel 'hidden_channels' must be an integer >= 1, got -8$"):
        create_model("graph-gat", builder=builder, num_classes=2, hidden_channels=-8)
    with pytest.raises(ValueError, match=r"^BaselineFusionModel 'heads' must be an integer >= 1, got 0$"):
        create_model("mult", builder=builder, num_classes=2, heads=0)
