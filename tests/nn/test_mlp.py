import pytest
import torch

from graphfuse.nn import MLP


def test_layers_and_parameter_names():
    mlp = MLP(6, 2, hidden_channels=4, dropout=0.1)
    assert [type(m) for m in mlp] == [torch.nn.Linear, torch.nn.GELU, torch.nn.Dropout, torch.nn.Linear]
    assert list(dict(mlp.named_parameters())) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    with_input = MLP(6, 2, dropout=0.1, input_dropout=True)
    assert [type(m) for m in with_input] == [torch.nn.Dropout, torch.nn.Linear]


def test_two_layers_compute_the_formula():
    torch.manual_seed(0)
    mlp = MLP(6, 2, hidden_channels=4).eval()
    x = torch.randn(3, 6)
    first, second = mlp[0], mlp[3]
    expected = second(torch.nn.functional.gelu(first(x)))
    torch.testing.assert_close(mlp(x), expected)


def test_reset_parameters_and_repr():
    mlp = MLP(6, 2, hidden_channels=4, dropout=0.1)
    before = [p.detach().clone() for p in mlp.parameters()]
    mlp.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, mlp.parameters(), strict=True) if a.dim() == 2)
    assert repr(mlp) == "MLP(6, 2, hidden_channels=4, dropout=0.1, input_dropout=False)"


def test_errors():
    with pytest.raises(ValueError, match=r"MLP 'dropout' is a probability in \[0, 1\)"):
        MLP(6, 2, dropout=1.0)
    with pytest.raises(ValueError, match="MLP 'hidden_channels' must be an integer >= 1"):
        MLP(6, 2, hidden_channels=0)
    with pytest.raises(ValueError, match="MLP 'in_channels' must be an integer >= 1"):
        MLP(0, 2)
