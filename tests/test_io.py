import pytest

from graphfuse.io import atomic_write_text


def test_atomic_write_replaces_the_file(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_text(path, "old")
    with pytest.raises(TypeError):
        atomic_write_text(path, 123)  # fails inside the write
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from graphfuse.io import atomic_replace

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "text")
        with atomic_replace(tmp_path / "b.bin") as temporary:
            temporary.write_bytes(b"data")
    finally:
        os.umask(umask)
    assert [(tmp_path / name).stat().st_mode & 0o777 for name in ("a.txt", "b.bin")] == [0o644, 0o644]
