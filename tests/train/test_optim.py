import functools

import pytest
import torch

from graphfuse.train import Trainer, build_optimizer, parameter_groups

FAST = dict(batch_size=8, lr=1e-2, progress=False)
pytestmark = pytest.mark.usefixtures("one_thread")


def names_of(model, group) -> set[str]:
    names = {id(p): name for name, p in model.named_parameters()}
    return {names[id(p)] for p in group["params"]}


def test_a_prefix_group_gets_its_own_rate_and_keeps_the_decay_split(make_model):
    model = make_model(materialize=True)
    groups = parameter_groups(model, [{"params": "backbone.encoders", "lr": 1e-5}], lr=1e-3, weight_decay=0.1)
    settings = [(group["lr"], group["weight_decay"]) for group in groups]
    assert settings == [(1e-3, 0.1), (1e-3, 0.0), (1e-5, 0.1), (1e-5, 0.0)]
    assert names_of(model, groups[2]) == {f"backbone.encoders.{name}.weight" for name in (
        "text.token", "text.position", "image.proj", "image.row", "image.col")}
    assert names_of(model, groups[3]) == {"backbone.encoders.image.proj.bias"}
    assert not any(name.startswith("backbone.encoders") for group in groups[:2] for name in names_of(model, group))
    assert sum(len(group["params"]) for group in groups) == len(list(model.parameters()))


def test_groups_from_a_callable_with_parameters_prefix_lists_and_their_own_settings(make_model):
    model = make_model(materialize=True)
    model.unimodal.requires_grad_(False)  # frozen parameters are in no group

    def groups(model):
        return [{"params": ["head", "readout.fuse"], "lr": 5e-4, "weight_decay": 0.5},
                {"params": [model.readout.pool.att_weight], "betas": (0.8, 0.9)}]

    resolved = parameter_groups(model, groups, lr=1e-3, weight_decay=0.1)
    assert names_of(model, resolved[2]) == {"head.mlp.1.weight", "readout.fuse.pair_weight"}
    assert names_of(model, resolved[3]) == {"head.mlp.1.bias", "readout.fuse.absent"}  # 'absent' never decays
    assert (resolved[2]["lr"], resolved[2]["weight_decay"], resolved[3]["weight_decay"]) == (5e-4, 0.5, 0.0)
    assert names_of(model, resolved[4]) == {"readout.pool.att_weight"} and len(resolved) == 5
    assert resolved[4]["betas"] == (0.8, 0.9) and resolved[4]["lr"] == 1e-3
    assert not any(name.startswith("unimodal") for group in resolved for name in names_of(model, group))


@pytest.mark.parametrize("groups, error, match", [
    ([{"params": "encoder", "lr": 1e-5}], ValueError,
     r"'param_groups\[0\]' selects the module-name prefix 'encoder', which matches none of the model's parameters; "
     r"its modules are \['backbone', 'readout', 'head', 'unimodal'\]"),
    ([{"params": "backbone"}, {"params": "backbone.fusion", "lr": 1e-4}], ValueError,
     r"Parameter 'backbone.fusion.blocks.0.conv.weight' is in param_groups\[0\] and param_groups\[1\]"),
    ([{"params": [torch.nn.Parameter(torch.zeros(2, 2))]}], ValueError,
     r"holds a parameter of shape \(2, 2\) that is not"),
    ([{"lr": 1e-5}], TypeError, r"'param_groups\[0\]' must be a dict with 'params'"),
    ({"params": "head"}, TypeError, r"'param_groups' must be a list of dicts"),
    ([{"params": 3}], TypeError, r"'param_groups\[0\]\['params'\]' must be a module-name prefix"),
    ("head", TypeError, r"'param_groups' must be a list of dicts .* got str"),
    ([{"params": "head"}, {"params": "backbone", "lr": "1e-5"}], ValueError,
     r"Trainer 'param_groups\[1\]\['lr'\]' must be a number >= 0, as Trainer's own 'lr', got '1e-5' of type str"),
    ([{"params": "head", "weight_decay": -0.1}], ValueError,
     r"'param_groups\[0\]\['weight_decay'\]' must be a number >= 0, as Trainer's own 'weight_decay', got -0.1"),
    ([{"params": "head", "lr": float("nan")}], ValueError, r"'param_groups\[0\]\['lr'\]' must be a number >= 0"),
    ([{"params": "head", "lr": True}], ValueError, r"'param_groups\[0\]\['lr'\]' must be a number >= 0"),
])
def test_bad_groups_are_refused(make_model, groups, error, match):
    with pytest.raises(error, match=match):
        parameter_groups(make_model(materialize=True), groups)


def test_group_settings_are_checked_when_the_trainer_is_made_or_the_callable_gives_them(make_model, colour_builder,
                                                                                      small):
    model = make_model(materialize=True)
    with pytest.raises(ValueError, match=r"Trainer 'param_groups\[0\]\['lr'\]' must be a number >= 0, as "
                                         r"Trainer's own 'lr', got '1e-5' of type str"):
        Trainer(model, colour_builder, param_groups=[{"params": "head", "lr": "1e-5"}])
    trainer = Trainer(model, colour_builder, epochs=1, param_groups=lambda model: [{"params": "head", "lr": "1e-5"}],
                      **FAST)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with pytest.raises(ValueError, match=r"'param_groups\[0\]\['lr'\]' must be a number >= 0"):
        trainer.fit(small[0])
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())  # refused before any step
    # An integer rate is a number: 0 freezes the head, the rest trains.
    Trainer(model, colour_builder, epochs=1, param_groups=[{"params": "head", "lr": 0, "weight_decay": 0}],
            **FAST).fit(small[0])
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and not any(name.startswith("head.") for name in changed)


def test_a_factory_gets_the_groups_and_the_schedule_scales_each_from_its_own_rate(make_model, colour_builder, small):
    built = []

    def factory(groups):
        built.append(torch.optim.SGD(groups, momentum=0.9))
        return built[-1]

    trainer = Trainer(make_model(), colour_builder, epochs=2, schedule="linear", warmup=0.0, optimizer=factory,
                      param_groups=[{"params": "backbone", "lr": 1e-4}], **FAST)
    history = trainer.fit(small[0])
    (optimizer,) = built
    assert [group["initial_lr"] for group in optimizer.param_groups] == [1e-2, 1e-2, 1e-4, 1e-4]
    ratios = {round(group["lr"] / group["initial_lr"], 9) for group in optimizer.param_groups}
    assert ratios == {round(history[-1]["lr"] / 1e-2, 9)}  # one factor for every group
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_an_optimizer_instance_trains_the_model_with_its_own_settings(make_model, colour_builder, small):
    model = make_model(materialize=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    before = model.head.mlp[1].weight.detach().clone()
    trainer = Trainer(model, colour_builder, epochs=1, optimizer=optimizer, schedule="constant", warmup=0.0, **FAST)
    history = trainer.fit(small[0])
    assert history[0]["lr"] == 0.05 and not torch.equal(before, model.head.mlp[1].weight)
    assert optimizer.state  # the Trainer stepped the user's optimiser


def test_an_optimizer_over_other_parameters_or_with_groups_is_refused(make_model, colour_builder, small):
    other = make_model(materialize=True)
    trainer = Trainer(make_model(materialize=True), colour_builder, epochs=1,
                      optimizer=torch.optim.AdamW(other.parameters()), **FAST)
    with pytest.raises(ValueError, match=r"'optimizer' holds \d+ parameters that are not the model's"):
        trainer.fit(small[0])
    with pytest.raises(ValueError, match="an optimizer instance and param_groups"):
        Trainer(other, colour_builder, optimizer=torch.optim.AdamW(other.parameters()),
                param_groups=[{"params": "head"}])
    with pytest.raises(TypeError, match="'optimizer' must be a name"):
        Trainer(other, colour_builder, optimizer=3)
    with pytest.raises(TypeError, match="factory must return a torch.optim.Optimizer, got list"):
        build_optimizer(other, lambda groups: groups)


def test_resume_with_parameter_groups_matches_an_uninterrupted_run(make_model, colour_builder, small, tmp_path):
    config = dict(schedule="constant", warmup=0.0, optimizer=functools.partial(torch.optim.SGD, momentum=0.9),
                  param_groups=[{"params": "backbone", "lr": 1e-3}], **FAST)
    reference = make_model(seed=0)
    Trainer(reference, colour_builder, epochs=2, **config).fit(small[0])
    Trainer(make_model(seed=0), colour_builder, epochs=1, checkpoint_dir=tmp_path, **config).fit(small[0])
    resumed = make_model(seed=3)
    Trainer(resumed, colour_builder, epochs=2, checkpoint_dir=tmp_path, **config).fit(small[0], resume="last")
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
