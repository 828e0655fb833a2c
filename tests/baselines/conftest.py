"""Fixtures of the baseline tests: the tri-modal builder, raw samples that miss modalities, batches and edits of
one modality, shared with the model tests (tests/models/conftest.py) rather than written twice."""
import importlib.util
from pathlib import Path


def _load_model_fixtures():
    path = Path(__file__).resolve().parents[1] / "models" / "conftest.py"
    spec = importlib.util.spec_from_file_location("model_test_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fixtures = _load_model_fixtures()
builder = _fixtures.builder
samples = _fixtures.samples
complete_samples = _fixtures.complete_samples
make_batch = _fixtures.make_batch
edit = _fixtures.edit
