import pytest
import torch
import torch.nn.functional as F

from graphfuse.nn import ClassificationHead, ProjectionHead, RegressionHead


def inputs(rows=5, channels=6, seed=0):
    return torch.randn(rows, channels, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("hidden", [None, 8])
def test_classification_head_multiclass_loss_and_predict(hidden):
    torch.manual_seed(0)
    head = ClassificationHead(6, 4, hidden_channels=hidden)
    logits = head(inputs())
    assert logits.shape == (5, 4)
    target = torch.tensor([0, 3, 1, 1, 2])
    assert torch.equal(head.loss(logits, target), F.cross_entropy(logits, target))
    assert torch.equal(head.predict(logits), logits.argmax(-1))
    assert head.predict(logits).shape == (5,)


@pytest.mark.parametrize("num_classes", [1, 3])
def test_classification_head_multilabel_loss_and_predict(num_classes):
    torch.manual_seed(0)
    head = ClassificationHead(6, num_classes, multilabel=True)
    logits = head(inputs())
    assert logits.shape == (5, num_classes)
    target = torch.randint(0, 2, (5, num_classes), generator=torch.Generator().manual_seed(1))
    expected = F.binary_cross_entropy_with_logits(logits, target.float())
    assert torch.equal(head.loss(logits, target), expected)
    assert torch.equal(head.loss(logits, target.bool()), expected)
    prediction = head.predict(logits)
    assert prediction.dtype == torch.long
    assert torch.equal(prediction, (torch.sigmoid(logits) > 0.5).long())


def test_classification_head_loss_backward():
    torch.manual_seed(0)
    head = ClassificationHead(6, 3, hidden_channels=8)
    head.loss(head(inputs()), torch.tensor([0, 1, 2, 0, 1])).backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in head.parameters())


def test_classification_head_target_errors():
    head = ClassificationHead(6, 3)
    logits = head(inputs())
    with pytest.raises(ValueError, match=r"multi-class targets must be 5 class indices"):
        head.loss(logits, torch.tensor([0, 1, 2]))  # wrong length
    with pytest.raises(ValueError, match=r"multi-class targets"):
        head.loss(logits, torch.zeros(5, 3))  # one-hot / float
    with pytest.raises(ValueError, match=r"multi-class targets"):
        head.loss(logits, torch.zeros(5))  # float indices
    multilabel = ClassificationHead(6, 3, multilabel=True)
    with pytest.raises(ValueError, match=r"multi-label targets must have the logits' shape \(5, 3\)"):
        multilabel.loss(multilabel(inputs()), torch.tensor([0, 1, 2, 0, 1]))


def test_classification_head_num_classes_errors():
    with pytest.raises(ValueError, match="num_classes >= 2 for multi-class.*multilabel=True"):
        ClassificationHead(6, 1)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        ClassificationHead(6, 0)
    with pytest.raises(ValueError, match="ClassificationHead 'out_channels' must be an integer >= 1"):
        ClassificationHead(6, 0, multilabel=True)
    with pytest.raises(ValueError, match="ClassificationHead 'in_channels' must be an integer >= 1"):
        ClassificationHead(0, 3)


@pytest.mark.parametrize("hidden", [None, 8])
def test_regression_head(hidden):
    torch.manual_seed(0)
    head = RegressionHead(6, hidden_channels=hidden)
    prediction = head(inputs())
    assert prediction.shape == (5, 1)
    target = torch.randn(5, generator=torch.Generator().manual_seed(1))
    expected = F.mse_loss(prediction.squeeze(-1), target)
    assert torch.allclose(head.loss(prediction, target), expected)
    assert torch.allclose(head.loss(prediction, target[:, None]), expected)
    # integer targets are promoted
    assert torch.allclose(head.loss(prediction, torch.arange(5)), F.mse_loss(prediction.squeeze(-1), torch.arange(5.)))


def test_regression_head_multi_output():
    head = RegressionHead(6, 3)
    prediction = head(inputs())
    assert prediction.shape == (5, 3)
    target = torch.randn(5, 3)
    assert torch.equal(head.loss(prediction, target), F.mse_loss(prediction, target))
    with pytest.raises(ValueError, match=r"regression targets must have shape \(5, 3\)"):
        head.loss(prediction, torch.randn(5))  # [B] only for one output
    with pytest.raises(ValueError, match="regression targets"):
        head.loss(prediction, torch.randn(5, 2))
    with pytest.raises(ValueError, match="regression targets"):
        RegressionHead(6).loss(RegressionHead(6)(inputs()), torch.randn(4))


@pytest.mark.parametrize("hidden", [None, 8])
def test_projection_head_unit_rows(hidden):
    torch.manual_seed(0)
    head = ProjectionHead(6, 4, hidden_channels=hidden)
    x = 100 * inputs()
    z = head(x)
    assert z.shape == (5, 4)
    assert torch.allclose(z.norm(dim=-1), torch.ones(5), atol=1e-6)
    # a direction: scaling the linear projection's output does not change it
    if hidden is None:
        assert torch.allclose(z, F.normalize(head.mlp(x), dim=-1))
    z.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_hidden_variant_structure():
    head = ClassificationHead(6, 3, hidden_channels=8, dropout=0.2)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 8), (8, 3)]
    dropouts = [m for m in head.mlp if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 2 and all(m.p == 0.2 for m in dropouts)
    assert [(m.in_features, m.out_features) for m in RegressionHead(6, 2).mlp if isinstance(m, torch.nn.Linear)] \
        == [(6, 2)]


def test_dropout_only_in_training():
    torch.manual_seed(0)
    head = RegressionHead(6, 2, hidden_channels=8, dropout=0.5).eval()
    x = inputs()
    assert torch.equal(head(x), head(x))
    head.train()
    assert not torch.equal(head(x), head(x))


@pytest.mark.parametrize("cls", [ClassificationHead, RegressionHead, ProjectionHead])
def test_wrong_input_shape(cls):
    head = cls(6, 3)
    with pytest.raises(ValueError, match=rf"'{cls.__name__}' expected a \[num_samples, 6\] input, got \(5, 4\)"):
        head(torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"got \(6,\)"):
        head(torch.randn(6))
    with pytest.raises(ValueError, match=r"got \(2, 5, 6\)"):
        head(torch.randn(2, 5, 6))


@pytest.mark.parametrize("cls", [ClassificationHead, RegressionHead, ProjectionHead])
@pytest.mark.parametrize("dropout", [-0.1, 1.0, 1.5])
def test_dropout_out_of_range(cls, dropout):
    with pytest.raises(ValueError, match=r"head 'dropout' must be in \[0, 1\)"):
        cls(6, 3, dropout=dropout)


@pytest.mark.parametrize("hidden", [0, -2, 2.5, True])
def test_bad_hidden(hidden):
    with pytest.raises(ValueError, match="head 'hidden_channels' must be an integer >= 1"):
        RegressionHead(6, 2, hidden_channels=hidden)


def test_reset_parameters():
    torch.manual_seed(0)
    head = ClassificationHead(6, 3, hidden_channels=8)
    before = [p.detach().clone() for p in head.parameters()]
    head.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, head.parameters(), strict=True))


def test_reprs():
    assert repr(ClassificationHead(16, 10)) == "ClassificationHead(16, 10)"
    assert repr(ClassificationHead(16, 10, hidden_channels=32, multilabel=True)) == \
        "ClassificationHead(16, 10, hidden_channels=32)"
    assert repr(RegressionHead(16)) == "RegressionHead(16, 1)"
    assert repr(RegressionHead(16, 3, hidden_channels=8, dropout=0.1)) == "RegressionHead(16, 3, hidden_channels=8)"
    assert repr(ProjectionHead(16, 8)) == "ProjectionHead(16, 8)"
