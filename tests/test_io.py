import os
import re
import tempfile

import pytest

from graphfuse.io import atomic_write_text, ensure_writable_dir


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


def read_only_dir(path):
    """``path`` made a folder without write permission; skips where that does not stop this process
    writing in it (root)."""
    path.mkdir()
    os.chmod(path, 0o500)
    try:
        (path / "probe").write_text("x")
    except PermissionError:
        return path
    (path / "probe").unlink()
    os.chmod(path, 0o700)
    pytest.skip("chmod 0o500 does not stop this process writing (running as root)")


def test_ensure_writable_dir_creates_missing_folders_and_leaves_nothing(tmp_path):
    folder = ensure_writable_dir(tmp_path / "a" / "b", "Trainer 'checkpoint_dir'")
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_ensure_writable_dir_refuses_a_file(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(NotADirectoryError, match=re.escape(f"Trainer 'checkpoint_dir' '{tmp_path / 'file'}' is a "
                                                           f"file, not a folder")):
        ensure_writable_dir(tmp_path / "file", "Trainer 'checkpoint_dir'")
    assert (tmp_path / "file").read_text() == "mine"


def test_ensure_writable_dir_refuses_a_read_only_folder(tmp_path):
    folder = read_only_dir(tmp_path / "ro")
    try:
        with pytest.raises(PermissionError, match=re.escape(f"'{folder}' is not a folder this process can write in")):
            ensure_writable_dir(folder, "Trainer 'checkpoint_dir'")
    finally:
        os.chmod(folder, 0o700)


def test_ensure_writable_dir_names_the_folder_when_writing_fails(tmp_path, monkeypatch):
    """Where chmod cannot stop this process (root), a refused write is simulated."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError, match=re.escape(f"Trainer 'checkpoint_dir' '{tmp_path}' is not a folder this "
                                                        f"process can write in (Permission denied); fix its "
                                                        f"permissions or choose another folder")):
        ensure_writable_dir(tmp_path, "Trainer 'checkpoint_dir'")
