import sys

import pytest
import torch

from graphfuse.backbones import check_hidden_states, create_backbone, list_backbones
from graphfuse.backbones.huggingface import import_transformers


def test_wrappers_are_registered():
    assert {"feature-map", "hf-speech-encoder", "hf-text-encoder", "hf-vision-encoder"} <= set(
        list_backbones(family="wrapper"))
    assert create_backbone("feature-map", module=torch.nn.Conv2d(3, 4, 2, 2)).out_channels == 4


@pytest.mark.parametrize("output", [torch.zeros(5), torch.zeros(2, 3, 4, 5), torch.zeros(2, 3, dtype=torch.long),
                                    (torch.zeros(2, 3),)])
def test_hidden_states_not_n_by_d_raise(output):
    with pytest.raises(ValueError, match=r"to return floating hidden states \[N, D\] or \[B, N, D\]"):
        check_hidden_states(output, "Owner")


def test_hidden_states_of_one_sample_gain_a_batch_axis():
    assert check_hidden_states(torch.zeros(3, 4), "Owner").shape == (1, 3, 4)
    with pytest.raises(ValueError, match=r"\[2, N, D\]"):
        check_hidden_states(torch.zeros(3, 3, 4), "Owner", batch_size=2)


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'graphfuse\[hf\]'"):
        import_transformers("HFTextEncoder")
