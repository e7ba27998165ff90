"""A full disk while converting is one line (exit 2) naming the destination, with no traceback; the
unfinished `*-tmp` folder is left without a model.json, so it is never mistaken for a model. On a
256 KiB tmpfs where the test may mount one, else with a writer that fails as orbax does."""

import contextlib
import os
import subprocess

import orbax.checkpoint as ocp
import pytest

from convert.__main__ import main as convert_main

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "farl_vit", "farl_tiny.pth")


@contextlib.contextmanager
def _small_disk(path, monkeypatch):
    path.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)]
    try:
        mounted = os.geteuid() == 0 and subprocess.run(mount, capture_output=True).returncode == 0
    except OSError:  # no mount command
        mounted = False
    if not mounted:  # as tensorstore reports ENOSPC through orbax

        def full(self, directory, *args, **kwargs):
            raise ValueError(
                f'RESOURCE_EXHAUSTED: Error writing "x" in OCDBT database at local file '
                f"\"{directory}\": No space left on device [os_error_code='28']"
            )

        monkeypatch.setattr(ocp.StandardCheckpointer, "save", full)
    try:
        yield
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=False)


def test_convert_onto_a_full_disk_is_one_line(tmp_path, monkeypatch, capfd):
    disk = tmp_path / "disk"
    with _small_disk(disk, monkeypatch):
        dst = disk / "out"
        assert convert_main(["farl", "--src", FIXTURE, "--dst", str(dst), "--heads", "4"]) == 2
        assert not (dst / "model.json").exists()
    err = capfd.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("python -m convert: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"writing {dst}: No space left on device; no model was written" in lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_convert_into_a_read_only_folder_is_one_line(tmp_path, capfd):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    assert convert_main(["farl", "--src", FIXTURE, "--dst", str(ro / "out")]) == 2
    assert "Permission denied" in capfd.readouterr().err
