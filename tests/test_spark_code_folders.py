"""A driver killed before its exit hook leaves its code folder in TMPDIR; the next driver removes it, and only
folders of drivers that are gone."""

import subprocess

from lake.spark import CODE_FOLDER, remove_orphan_code_folders


def test_folders_of_dead_drivers_go_and_live_ones_stay(tmp_path):
    import os

    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / f"{CODE_FOLDER}{gone.pid}-abc"
    live = tmp_path / f"{CODE_FOLDER}{os.getpid()}-def"
    other = tmp_path / "sidforge-cluster-logs-x"
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "sidforge.zip").write_bytes(b"zip")
    assert remove_orphan_code_folders(str(tmp_path)) == [dead]
    assert not dead.exists() and live.is_dir() and other.is_dir()
