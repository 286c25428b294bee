"""The kiosk config: defaults, unknown keys named with their line, wrong values, the CLI."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import main as mpox
from edge.config import KioskConfig, load_config
from edge.errors import ConfigError


def write(tmp_path, text):
    p = tmp_path / "kiosk.yaml"
    p.write_text(text)
    return p


def test_no_config_gives_working_defaults():
    cfg = load_config(None)
    assert cfg.source.kind == "demo" and cfg.model.path.name == "fast-mpoxnet.xml" and cfg.model.path.is_file()
    assert cfg.decision.frames == 12 and cfg.decision.best_frames == 8 and not cfg.store.keep_best_frame


def test_values_are_read_and_relative_paths_follow_the_file(tmp_path):
    cfg = load_config(write(tmp_path, "kiosk_id: gate-3\nstate_dir: state\nsource:\n  kind: folder\n  target: pics\n"
                                      "decision:\n  frames: 9\nmodel:\n  mpox_threshold: 0.2\n"))
    assert cfg.kiosk_id == "gate-3" and cfg.state_dir == tmp_path.resolve() / "state"
    assert cfg.source.kind == "folder" and cfg.decision.frames == 9 and cfg.model.mpox_threshold == 0.2


def test_unknown_key_is_named_with_its_line(tmp_path):
    p = write(tmp_path, "kiosk_id: a\ndecision:\n  frames: 9\n  reslt_hold_s: 4\n")
    with pytest.raises(ConfigError, match=r"kiosk.yaml:4: decision.reslt_hold_s: unknown key"):
        load_config(p)


def test_wrong_values_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r":3: decision.frames: .*greater than or equal to 1"):
        load_config(write(tmp_path, "kiosk_id: a\ndecision:\n  frames: 0\n"))
    with pytest.raises(ConfigError, match="source: .*needs a target"):
        load_config(write(tmp_path, "source:\n  kind: device\n"))
    with pytest.raises(ConfigError, match="box must be"):
        load_config(write(tmp_path, "quality:\n  box: [0.5, 0.5, 0.8, 0.8]\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1,\n"))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_validate_config_cli(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(mpox, ["kiosk", "validate-config", str(write(tmp_path, "kiosk_id: gate-1\n"))])
    assert ok.exit_code == 0 and '"kiosk_id": "gate-1"' in ok.output
    bad = runner.invoke(mpox, ["kiosk", "validate-config", str(write(tmp_path, "camera: 1\n"))])
    assert bad.exit_code == 1 and "kiosk.yaml:1: camera: unknown key" in bad.output and "Traceback" not in bad.output


def test_config_is_frozen():
    with pytest.raises(Exception):  # noqa: B017 - pydantic's own error type is not the point: it refuses
        KioskConfig().kiosk_id = "x"


def test_the_example_config_is_valid_and_shows_the_defaults():
    example = Path(__file__).resolve().parents[2] / "deploy" / "kiosk.example.yaml"
    cfg = load_config(example)
    assert cfg.model_dump(exclude={"state_dir"}) == KioskConfig().model_dump(exclude={"state_dir"})
    assert cfg.state_dir == example.parent / "kiosk-state"


@pytest.mark.parametrize("text,key", [
    ("quality:\n  box: [.nan, 0.1, 0.5, 0.5]\n", "quality.box"),
    ("store:\n  retention_days: 10000000\n", "store.retention_days"),
    ("decision:\n  min_confidence: .inf\n", "decision.min_confidence"),
    ("presence:\n  max_motion: .nan\n", "presence.max_motion"),
])
def test_non_finite_and_absurd_numbers_are_refused_with_their_key(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key):
        load_config(write(tmp_path, text))


def test_a_config_that_is_not_utf8_is_one_clear_error(tmp_path):
    p = tmp_path / "kiosk.yaml"
    p.write_bytes(b"kiosk_id: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p)


def test_the_example_config_is_the_one_the_schema_makes_and_loads_as_the_defaults(tmp_path):
    """deploy/kiosk.example.yaml is generated (`mpox kiosk example-config`): regenerate it after
    changing a setting. Every key carries its description in edge/config.py."""
    from pydantic import BaseModel

    from edge.config import KioskConfig
    from edge.config_example import example_config

    root = Path(__file__).resolve().parents[2]
    assert (root / "deploy" / "kiosk.example.yaml").read_text() == example_config(), \
        "deploy/kiosk.example.yaml is stale: mpox kiosk example-config > deploy/kiosk.example.yaml"

    def undescribed(model: type[BaseModel], prefix: str = "") -> list[str]:
        found = []
        for name, field in model.model_fields.items():
            if not field.description:
                found.append(prefix + name)
            if isinstance(field.default, BaseModel):
                found += undescribed(type(field.default), f"{prefix}{name}.")
        return found

    assert undescribed(KioskConfig) == []
    copy = tmp_path / "kiosk.yaml"
    copy.write_text(example_config())
    loaded = load_config(copy)
    assert loaded.model_dump(exclude={"state_dir"}) == KioskConfig().model_dump(exclude={"state_dir"})


def test_validate_config_never_prints_the_secrets(tmp_path):
    from edge.web.auth import hash_password

    staff_hash = hash_password("a staff password")
    p = write(tmp_path, f"web:\n  staff_password_hash: '{staff_hash}'\n"
                        "fleet:\n  host: mqtt.example\n  username: kiosk\n  password: mqtt secret 42\n")
    result = CliRunner().invoke(mpox, ["kiosk", "validate-config", str(p)])
    assert result.exit_code == 0, result.output
    assert staff_hash not in result.output and staff_hash.split("$")[-1] not in result.output
    assert "mqtt secret 42" not in result.output
    assert '"staff_password_hash": "(set)"' in result.output and '"password": "(set)"' in result.output
    assert '"username": "kiosk"' in result.output  # the rest is shown as it is


@pytest.mark.parametrize("text,line,says", [
    ("web:\n  host: ''\n", 2, "web.host: .*must not be empty"),
    ("kiosk_id: a\nweb:\n  host: 0.0.0.0\n", 2, "web: .*host 0.0.0.0 serves the network: set tls_cert and tls_key"),
    ("web:\n  host: kiosk.lan\n", 1, "web: .*host kiosk.lan serves the network"),
    ("web:\n  host: 0.0.0.0\n  tls_cert: cert.pem\n", 1, "web: .*tls_cert and tls_key go together"),
    ("web:\n  host: 0.0.0.0\n  tls_cert: cert.pem\n  tls_key: key.pem\n", 3, r"web.tls_cert: .*cert.pem not found"),
    ("fleet:\n  host: mqtt.example\n  ca_file: ca.pem\n", 3, r"fleet.ca_file: .*ca.pem not found"),
])
def test_serving_the_network_needs_tls_or_an_acknowledgement_and_named_files_must_exist(tmp_path, text, line, says):
    with pytest.raises(ConfigError, match=f"kiosk.yaml:{line}: {says}"):
        load_config(write(tmp_path, text))


def test_the_network_with_tls_or_acknowledged_plain_http_loads(tmp_path):
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    tls = load_config(write(tmp_path, "web:\n  host: 0.0.0.0\n  tls_cert: cert.pem\n  tls_key: key.pem\n"))
    assert tls.web.tls_cert == tmp_path.resolve() / "cert.pem"
    assert load_config(write(tmp_path, "web:\n  host: 0.0.0.0\n  plain_http_on_network: true\n")).web.host == "0.0.0.0"
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert load_config(write(tmp_path, f"web:\n  host: '{loopback}'\n")).web.host == loopback


@pytest.mark.parametrize("text,says", [
    ("queue_size: 1e23\n", r"kiosk.yaml:1: queue_size: must be a whole number, not '1e23'"),
    ("queue_size: 1.0e+23\n", r"kiosk.yaml:1: queue_size: must be a whole number"),
    ("queue_size: 100000000000\n", r"kiosk.yaml:1: queue_size: .*less than or equal to 1000"),
    ("rollout:\n  trial_s: 1.0e+300\n", r"kiosk.yaml:2: rollout.trial_s: .*less than or equal to 86400"),
    ("decision:\n  frames: 5\n  best_frames: 4\n  frames: 50\n",
     r"kiosk.yaml:4: decision.frames: given twice \(first on line 2\); the last would silently win"),
    ("web:\n  port: 8081\nstore:\n  max_mb: 10\nweb:\n  consent: false\n", r"kiosk.yaml:5: web: given twice \(first on line 1\)"),
    ("web:\n  staff_password_hash: my password\n", r"kiosk.yaml:2: web.staff_password_hash: .*is not an argon2 hash"),
    ("web:\n  staff_password_hash: $argon2id$v=19$m=65536,t=3,p=4$cut\n", r"kiosk.yaml:2: web.staff_password_hash: .*not an argon2"),
])
def test_config_holes_are_one_clear_error_naming_key_and_line(tmp_path, text, says):
    with pytest.raises(ConfigError, match=says) as refused:
        load_config(write(tmp_path, text))
    assert "my password" not in str(refused.value) and "$argon2" not in str(refused.value)  # a secret is never echoed


def test_a_real_argon2_hash_is_taken(tmp_path):
    from edge.web.auth import hash_password

    staff_hash = hash_password("a staff password")
    assert load_config(write(tmp_path, f"web:\n  staff_password_hash: '{staff_hash}'\n")).web.staff_password_hash == staff_hash
