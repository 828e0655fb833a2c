import builtins
import pickle

import pytest
import torch
from torch import nn

from graphfuse.checkpoint import CheckpointError, UnsafeCheckpointError, load_checkpoint, load_weights, save_checkpoint


class CodeOnUnpickle:
    """Writes a marker file when unpickled, as a malicious checkpoint would run its payload."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


class TiedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(5, 4)
        self.head = nn.Linear(4, 5, bias=False)
        self.head.weight = self.embedding.weight

    def forward(self, index):
        return self.head(self.embedding(index))


def small_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))


def assert_same_state(model, other):
    state, other_state = model.state_dict(), other.state_dict()
    assert state.keys() == other_state.keys()
    assert all(torch.equal(state[key], other_state[key]) for key in state)


def no_temporaries(folder):
    return not [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_pt_round_trip_restores_model_optimizer_and_trainer_state(tmp_path):
    model = small_model(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    trainer = {"epoch": 3, "best": 0.9, "history": [0.5, 0.9], "name": "run-1"}
    rng_state = torch.get_rng_state()
    path = save_checkpoint(tmp_path / "run" / "last.pt", model.state_dict(), optimizer=optimizer.state_dict(),
                           trainer=trainer, rng={"torch": rng_state})
    assert path == tmp_path / "run" / "last.pt"

    restored = small_model(1)
    assert not torch.equal(restored[0].weight, model[0].weight)  # else the round trip would prove nothing
    load_weights(restored, path)
    inputs = torch.randn(5, 3)
    assert torch.equal(restored(inputs), model(inputs))
    assert_same_state(restored, model)

    checkpoint = load_checkpoint(path)
    assert checkpoint["format"] == "graphfuse-checkpoint" and checkpoint["version"] == 1
    assert checkpoint["trainer"] == trainer
    assert torch.equal(checkpoint["rng"]["torch"], rng_state)
    restored_optimizer = torch.optim.Adam(restored.parameters(), lr=0.5)
    restored_optimizer.load_state_dict(checkpoint["optimizer"])
    saved, loaded = optimizer.state_dict(), restored_optimizer.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    for index, moments in saved["state"].items():
        assert all(torch.equal(loaded["state"][index][name], value) for name, value in moments.items())


def test_safetensors_round_trip_keeps_tied_weights(tmp_path):
    torch.manual_seed(0)
    model = TiedModel()
    path = save_checkpoint(tmp_path / "model.safetensors", model.state_dict())
    torch.manual_seed(1)
    restored = TiedModel()
    load_weights(restored, path)
    index = torch.tensor([0, 3, 4])
    assert torch.equal(restored(index), model(index))
    assert_same_state(restored, model)
    assert restored.head.weight is restored.embedding.weight
    assert load_checkpoint(path)["model"].keys() == model.state_dict().keys()


def test_safetensors_refuses_training_state(tmp_path):
    with pytest.raises(ValueError, match=r"tensors only.*'\.pt' path"):
        save_checkpoint(tmp_path / "model.safetensors", small_model(0).state_dict(), trainer={"epoch": 1})
    assert list(tmp_path.iterdir()) == []


def test_code_in_a_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"model": small_model(0).state_dict(), "evil": CodeOnUnpickle(marker)}, path)

    with pytest.raises(UnsafeCheckpointError) as refused:
        load_checkpoint(path)
    assert isinstance(refused.value, pickle.UnpicklingError)
    message = str(refused.value)
    assert str(path) in message and "Refused" in message and "exec" in message
    assert "weights_only=False" not in message  # never the advice to unpickle it
    with pytest.raises(UnsafeCheckpointError):
        load_weights(small_model(0), path)
    assert not marker.exists()


def test_save_refuses_state_that_could_not_be_loaded_back(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, small_model(0).state_dict())
    before = path.read_bytes()
    with pytest.raises(TypeError, match="safe loading refuses"):
        save_checkpoint(path, small_model(1).state_dict(), trainer={"callback": CodeOnUnpickle(tmp_path / "m")})
    assert path.read_bytes() == before
    assert no_temporaries(tmp_path)


def test_failed_save_keeps_the_existing_checkpoint_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, small_model(0).state_dict(), trainer={"epoch": 1})
    before = path.read_bytes()

    def save_half_then_fail(obj, file):
        with open(file, "wb") as handle:
            handle.write(before[: len(before) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, small_model(1).state_dict(), trainer={"epoch": 2})
    assert path.read_bytes() == before
    assert no_temporaries(tmp_path)
    assert load_checkpoint(path)["trainer"] == {"epoch": 1}


def test_bare_state_dict_file_is_accepted(tmp_path):
    model = small_model(0)
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    checkpoint = load_checkpoint(path)
    assert checkpoint["format"] == "graphfuse-checkpoint" and checkpoint["version"] == 1
    restored = small_model(1)
    load_weights(restored, path)
    assert_same_state(restored, model)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_are_stripped(tmp_path, prefix):
    model = small_model(0)
    path = tmp_path / "wrapped.pt"
    save_checkpoint(path, {prefix + key: value for key, value in model.state_dict().items()})
    restored = small_model(1)
    incompatible = load_weights(restored, path)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    assert_same_state(restored, model)


def test_wrapper_prefix_is_kept_for_a_wrapped_model(tmp_path):
    wrapper = nn.Module()
    wrapper.module = small_model(0)
    path = save_checkpoint(tmp_path / "wrapped.pt", wrapper.state_dict())
    restored = nn.Module()
    restored.module = small_model(1)
    load_weights(restored, path)
    assert_same_state(restored, wrapper)


@pytest.mark.parametrize("content, found", [
    ([torch.ones(2)], "holds a list"),
    ({"epoch": 3, "weight": torch.ones(2)}, "'epoch' is of type int"),
    ({"model": {"weight": 1.0}}, "'weight' is of type float"),
])
def test_wrong_content_is_a_value_error(tmp_path, content, found):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(ValueError, match=found) as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def test_non_tensor_model_state_is_a_type_error_naming_the_key(tmp_path):
    with pytest.raises(TypeError, match="'step'"):
        save_checkpoint(tmp_path / "last.pt", {"weight": torch.ones(2), "step": 3})


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("name", ["last.pt", "model.safetensors"])
def test_truncated_file_is_a_value_error_naming_the_path(tmp_path, name):
    path = save_checkpoint(tmp_path / name, small_model(0).state_dict())
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CheckpointError, match="truncated") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def test_shape_mismatch_is_a_value_error_starting_with_the_path(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", small_model(0).state_dict())
    with pytest.raises(ValueError, match="size mismatch") as error:
        load_weights(nn.Sequential(nn.Linear(3, 6), nn.LayerNorm(6)), path)
    assert str(error.value).startswith(str(path))


def test_missing_keys_are_an_error_only_when_strict(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", small_model(0).state_dict())
    larger = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="Missing key"):
        load_weights(larger, path)
    assert load_weights(larger, path, strict=False).missing_keys == ["2.weight", "2.bias"]
