"""A damaged, truncated or foreign checkpoint file gives one error, CheckpointError, that names the file and what
is wrong, and never the advice to unpickle it; a genuinely unsafe pickle is still refused as unsafe."""
import io
import pickle
import random
import struct
import zipfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from graphfuse.checkpoint import CheckpointError, UnsafeCheckpointError, load_checkpoint, load_weights, save_checkpoint


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The bytes of a full training checkpoint (``.pt``) and of a weights file (``.safetensors``)."""
    folder = tmp_path_factory.mktemp("saved")
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters())
    pt = save_checkpoint(folder / "last.pt", model.state_dict(), optimizer=optimizer.state_dict(),
                         trainer={"epoch": 1})
    weights = save_checkpoint(folder / "model.safetensors", model.state_dict())
    return {"pt": pt.read_bytes(), "safetensors": weights.read_bytes()}


def torch_saved(content) -> bytes:
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def safetensors_file(header: dict | bytes, data: bytes = b"") -> bytes:
    header = header if isinstance(header, bytes) else __import__("json").dumps(header).encode()
    return struct.pack("<Q", len(header)) + header + data


def flipped(data: bytes, at: int) -> bytes:
    damaged = bytearray(data)
    damaged[at] ^= 0xFF
    return bytes(damaged)


def assert_damage_reported(path, match: str = "") -> CheckpointError:
    """``load_checkpoint`` and ``load_weights`` both raise a CheckpointError (never an unsafe-pickle refusal)
    that names ``path``, matches ``match`` and gives no advice to unpickle."""
    for load in (load_checkpoint, lambda p: load_weights(small_model(), p)):
        with pytest.raises(CheckpointError, match=match) as raised:
            load(path)
        assert not isinstance(raised.value, UnsafeCheckpointError), str(raised.value)
        message = str(raised.value)
        assert str(path) in message
        assert "weights_only" not in message
    return raised.value


# Whole files that are not a checkpoint, or are one no longer ----------------------------------------------------
RANDOM = bytes(random.Random(0).randrange(256) for _ in range(1000))
NOT_CHECKPOINTS = {
    "random bytes": (RANDOM, "not a checkpoint"),
    "text": (b"hello world\n", "not a checkpoint"),  # was a bare KeyError
    "json": (b'{"model": {}}', "not a checkpoint"),
    "bytes that are not UTF-8": (b"\xff\xfe\x00garbage", "not a checkpoint"),
    "a pickle of a list": (pickle.dumps([1, 2, 3]), "not a checkpoint"),
    "a pickle of a dict": (pickle.dumps({"format": "graphfuse-checkpoint", "model": {}}), "not a checkpoint"),
    "a pickle of an int": (pickle.dumps(3), "not a checkpoint"),
    "a zip with garbage for its pickle": (zipped({"archive/data.pkl": b"garbage", "archive/version": b"3\n"}),
                                          "a zip archive but not one torch.save wrote"),
    "a zip of other files": (zipped({"notes.txt": b"hello"}), "a zip archive but not one torch.save wrote"),
    "a torch.save of a list": (torch_saved([torch.ones(2)]), "holds a list"),
    "a torch.save of a tensor": (torch_saved(torch.ones(2)), "holds a Tensor"),
    "no 'model' entry": (torch_saved({"format": "graphfuse-checkpoint", "version": 1, "epoch": 2}),
                         "without a 'model' entry"),
    "a model state that is a list": (torch_saved({"format": "graphfuse-checkpoint", "version": 1, "model": [1]}),
                                     "model state is not a state dict: it is a list"),
    "a model state of numbers": (torch_saved({"model": {"weight": 1.0}}), "'weight' is of type float"),
    "another format marker": (torch_saved({"format": "other-tool", "version": 1, "model": {}}),
                              "marked as 'other-tool', not as a graphfuse checkpoint"),
    "a version that is not a number": (torch_saved({"format": "graphfuse-checkpoint", "version": "1", "model": {}}),
                                       "no valid 'version'"),
    "a version from a newer graphfuse": (torch_saved({"format": "graphfuse-checkpoint", "version": 2, "model": {}}),
                                         "version 2 graphfuse checkpoint.*upgrade graphfuse"),
}


# torch's safe unpickler warns about the plain pickles among them before graphfuse refuses them
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("content, match", NOT_CHECKPOINTS.values(), ids=NOT_CHECKPOINTS.keys())
def test_a_file_that_is_not_a_checkpoint(tmp_path, content, match):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    assert_damage_reported(path, match)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_an_empty_file(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"")
    assert_damage_reported(path, r"is empty \(0 bytes\)")


@pytest.mark.parametrize("fraction", [0.0005, 0.1, 0.5, 0.999])
def test_a_truncated_pt_checkpoint(saved, tmp_path, fraction):
    path = tmp_path / "last.pt"
    path.write_bytes(saved["pt"][:max(1, int(len(saved["pt"]) * fraction))])
    assert_damage_reported(path, "truncated")


def test_changed_bytes_in_a_tensor_are_found_by_the_archive_checksums(tmp_path):
    weight = torch.full((64,), 7.0)
    path = save_checkpoint(tmp_path / "last.pt", {"weight": weight})
    data = path.read_bytes()
    at = data.index(weight.numpy().tobytes()) + 100
    path.write_bytes(flipped(data, at))
    assert_damage_reported(path, "'.*data/0' does not match its checksum")


# Safetensors files ----------------------------------------------------------------------------------------------
SAFETENSORS_DAMAGE = {
    "random bytes": lambda data: RANDOM,
    "a header length past the end": lambda data: struct.pack("<Q", 10 ** 12) + data[8:],
    "a header that is not JSON": lambda data: safetensors_file(b"{not json}"),
    "a header that is not UTF-8": lambda data: flipped(data, 12),
    "a tensor larger than the data": lambda data: safetensors_file(
        {"weight": {"dtype": "F32", "shape": [100], "data_offsets": [0, 8]}}, bytes(8)),
    "an unknown dtype": lambda data: safetensors_file(
        {"weight": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)),
    "truncated in the header": lambda data: data[:20],
    "truncated in the data": lambda data: data[:-1],
    "a .pt checkpoint": lambda data: torch_saved({"model": {}}),
}


@pytest.mark.parametrize("damage", SAFETENSORS_DAMAGE.values(), ids=SAFETENSORS_DAMAGE.keys())
def test_a_damaged_safetensors_file(saved, tmp_path, damage):
    path = tmp_path / "model.safetensors"
    path.write_bytes(damage(saved["safetensors"]))
    assert_damage_reported(path, "is not a readable safetensors file")


# Unsafe pickles are still refused as unsafe ---------------------------------------------------------------------
class RunsCode:
    def __reduce__(self):
        return print, ("unpickled",)


def test_an_unsafe_pickle_is_refused_without_the_advice_to_unpickle_it(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(torch_saved({"model": small_model().state_dict(), "payload": RunsCode()}))
    with pytest.raises(UnsafeCheckpointError, match=r"Refused to load .*\(print\)") as raised:
        load_checkpoint(path)
    assert isinstance(raised.value, CheckpointError) and isinstance(raised.value, pickle.UnpicklingError)
    assert "weights_only" not in str(raised.value)


# Any damage at all ----------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(["pt", "safetensors"]))
def test_changed_or_cut_bytes_never_give_a_raw_error(saved, tmp_path, data, kind):
    """Flipped bytes or a cut anywhere: the file loads with the saved values (a change the format does not
    cover, such as zip padding) or raises CheckpointError naming it. (Safetensors holds no checksum of its
    tensor data, so its bytes are flipped in the header only.)"""
    original = saved[kind]
    flippable = len(original) if kind == "pt" else 8 + struct.unpack("<Q", original[:8])[0]
    damaged = data.draw(st.one_of(
        st.integers(0, flippable - 1).map(lambda at: flipped(original, at)),
        st.integers(0, len(original) - 1).map(lambda end: original[:end])), label="damaged")
    path = tmp_path / f"damaged.{kind}"
    path.write_bytes(damaged)
    try:
        loaded = load_checkpoint(path)
    except CheckpointError as error:
        assert not isinstance(error, UnsafeCheckpointError) and str(path) in str(error)
        assert "weights_only" not in str(error)
        return
    expected = small_model().state_dict()
    assert loaded["model"].keys() == expected.keys()
    assert all(torch.equal(loaded["model"][key], value) for key, value in expected.items())
