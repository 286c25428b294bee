"""`mpox check` names what would break the run: model and its metadata, camera, the store
opened read-write, disk, clock."""

from click.testing import CliRunner

from edge.cli import main as mpox


def write(tmp_path, text):
    p = tmp_path / "kiosk.yaml"
    p.write_text(text)
    return p


def test_a_good_setup_passes_every_check(tmp_path):
    r = CliRunner().invoke(mpox, ["check", "--config", str(write(tmp_path, "state_dir: state\nsource:\n  fps: 0\n"))])
    assert r.exit_code == 0, r.output
    assert r.output.count("OK  ") == 6 and "opens read-write" in r.output


def test_a_state_folder_that_is_a_file_and_a_dead_camera_are_named(tmp_path):
    (tmp_path / "state").write_text("not a folder")
    cfg = write(tmp_path, "state_dir: state\nsource:\n  kind: device\n  target: /dev/video99\n")
    r = CliRunner().invoke(mpox, ["check", "--config", str(cfg)])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "FAIL state folder" in r.output and "cannot open the audit store" in r.output
    assert "FAIL camera" in r.output and "2 check(s) failed: camera, state folder" in r.output


def test_a_damaged_database_is_named(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "audit.sqlite").write_bytes(b"garbage" * 1000)
    r = CliRunner().invoke(mpox, ["check", "--config", str(write(tmp_path, "state_dir: state\nsource:\n  fps: 0\n"))])
    assert r.exit_code == 1 and "FAIL state folder" in r.output and "not a database" in r.output
