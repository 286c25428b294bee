"""`mpox models install`: a signed bundle goes in and the kiosk runs it; anything that cannot
be trusted or used is refused with one line and changes nothing."""

import contextlib
import functools
import http.server
import io
import os
import tarfile
import threading

import pytest

from authority.signing import generate_keys, load_private_key, write_bundle
from edge.check import check_model
from edge.config import load_config
from edge.kiosk import Kiosk
from edge.modelstore import RolloutError
from edge.rollout import InstallOutcome, install_bundle

from .conftest import Authority, cli, links, make_model, mpox


def refused(result, text):
    """Exit 1, one 'Error: refused: ...' line naming the problem, no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert getattr(result, "returncode", getattr(result, "exit_code", None)) == 1 and len(errors) == 1 and errors[0].startswith("Error: refused: "), result.stderr[-2000:]
    assert text in errors[0] and "Traceback" not in result.stderr, errors[0]


def test_a_good_bundle_installs_and_the_kiosk_runs_it(kiosk, bundles):
    path, cfg = kiosk
    result = mpox(["models", "install", "--config", str(path), str(bundles["v2"])])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("installed fast-mpoxnet 2.2.0-test as 2.2.0-test-") and "packaged model" in result.stdout
    assert links(cfg.state_dir)["current"].startswith("2.2.0-test-")
    k = Kiosk(cfg)
    assert k.model.version == "2.2.0-test" and k.engine.path.parent.name == links(cfg.state_dir)["current"]
    assert k.run(max_screenings=1).screenings == 1
    status = mpox(["models", "status", "--config", str(path)]).stdout
    assert "current:  2.2.0-test-" in status and "on trial" in status
    # once more: nothing to do
    assert install_bundle(bundles["v2"], cfg).outcome is InstallOutcome.ALREADY_CURRENT


def test_check_runs_the_installed_model(kiosk, bundles):
    path, cfg = kiosk
    install_bundle(bundles["v3"], cfg)
    line = check_model(cfg)  # what `mpox check` prints for the model
    assert "3.0.0-test" in line and "installed: 3.0.0-test-" in line and "probe frame OK" in line


def rewrite(bundle, out, change):
    """A copy of a bundle with its members passed through change(name, data) -> [(name, data, kind)]."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        for m in src.getmembers():
            for name, data, kind in change(m.name, src.extractfile(m).read()):
                info = tarfile.TarInfo(name)
                info.type = kind
                if kind == tarfile.SYMTYPE:
                    info.linkname = "/etc/passwd"
                    dst.addfile(info)
                else:
                    info.size = len(data)
                    dst.addfile(info, io.BytesIO(data))
    return out


def flip_byte(data):
    return data[:1000] + bytes([data[1000] ^ 0x01]) + data[1001:]


REG, SYM = tarfile.REGTYPE, tarfile.SYMTYPE
BAD_BUNDLES = {
    "tampered": (lambda n, d: [(n, flip_byte(d) if n.endswith(".bin") else d, REG)], "does not match its signed checksum"),
    "unsigned": (lambda n, d: [] if n == "SHA256SUMS.sig" else [(n, d, REG)], "bundle is not signed"),
    "sums altered": (lambda n, d: [(n, d.replace(b"  fast", b" *fast") if n == "SHA256SUMS" else d, REG)],
                     "signature does not verify"),
    "path traversal": (lambda n, d: [(n, d, REG)] + ([("../escaped.txt", b"x", REG)] if n == "SHA256SUMS" else []),
                       "'../escaped.txt' is refused"),
    "absolute path": (lambda n, d: [(n, d, REG)] + ([("/tmp/escaped.txt", b"x", REG)] if n == "SHA256SUMS" else []),
                      "'/tmp/escaped.txt' is refused"),
    "symlink": (lambda n, d: [(n, d, REG)] + ([("passwd", b"", SYM)] if n == "SHA256SUMS" else []), "'passwd' is refused: a link"),
    "extra file": (lambda n, d: [(n, d, REG)] + ([("notes.txt", b"x", REG)] if n == "SHA256SUMS" else []),
                   "'notes.txt' is refused: not part of a model bundle"),
    "missing weights": (lambda n, d: [] if n.endswith(".bin") else [(n, d, REG)], "must hold one .xml, its .bin"),
}


@pytest.mark.parametrize("kind", BAD_BUNDLES)
def test_a_bundle_that_cannot_be_trusted_is_refused_and_changes_nothing(kind, kiosk, bundles, tmp_path):
    path, cfg = kiosk
    install_bundle(bundles["v2"], cfg)
    before = links(cfg.state_dir)
    change, message = BAD_BUNDLES[kind]
    bad = rewrite(bundles["v3"], tmp_path / "bad.tar", change)
    refused(cli(["models", "install", "--config", str(path), str(bad)]), message)
    assert links(cfg.state_dir) == before
    assert not (tmp_path / "escaped.txt").exists() and not (cfg.state_dir / "escaped.txt").exists()
    assert sorted(p.name for p in (cfg.state_dir / "models").iterdir() if p.name.startswith(".")) == [".lock"]
    assert Kiosk(cfg).model.version == "2.2.0-test"


def test_a_bundle_signed_with_another_key_is_refused(kiosk, bundles, tmp_path):
    path, cfg = kiosk
    (tmp_path / "stranger").mkdir()
    stranger = Authority(tmp_path / "stranger")
    refused(mpox(["models", "install", "--config", str(path), str(stranger.bundle(bundles["v2.xml"], "v2.tar"))]),
            "signature does not verify with rollout.public_key")
    assert links(cfg.state_dir)["current"] is None
    assert Kiosk(cfg).model.version == "2.1.1"  # the packaged model


def test_a_model_that_fails_its_checks_is_never_installed(kiosk, authority, bundles, tmp_path):
    path, cfg = kiosk
    broken = authority.bundle(make_model(tmp_path / "m", "4.0.0-test", mpox_threshold="2"), "broken.tar", measured_on=bundles["v2.xml"])
    refused(mpox(["models", "install", "--config", str(path), str(broken)]), "mpox_threshold must be between 0 and 1")
    assert links(cfg.state_dir)["current"] is None and links(cfg.state_dir)["folders"] == ""


def test_no_public_key_no_install(tmp_path, bundles):
    (tmp_path / "k.yaml").write_text("state_dir: state\n")
    refused(mpox(["models", "install", "--config", str(tmp_path / "k.yaml"), str(bundles["v2"])]), "rollout.public_key is not set")
    assert not (tmp_path / "state" / "models").exists()


def test_announced_sha256_version_and_size_limits(kiosk, bundles):
    path, cfg = kiosk
    refused(cli(["models", "install", "--config", str(path), "--sha256", "ab" * 32, str(bundles["v2"])]), "not the announced")
    refused(cli(["models", "install", "--config", str(path), "--version", "9.9", str(bundles["v2"])]),
            "not the announced version 9.9")
    small = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"max_bundle_mb": 0.1})})
    with pytest.raises(RolloutError, match="more than rollout.max_bundle_mb"):
        install_bundle(bundles["v2"], small)
    assert links(cfg.state_dir)["current"] is None


class Server:
    """The authority's own web server on loopback, serving a folder; /moved redirects."""

    def __init__(self, folder):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/v2.tar")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_install_from_the_authoritys_server(kiosk, bundles):
    path, cfg = kiosk
    server = Server(bundles["v2"].parent)
    try:
        refused(cli(["models", "install", "--config", str(path), f"{server.url}/missing.tar"]), "HTTP 404")
        refused(cli(["models", "install", "--config", str(path), f"{server.url}/moved"]), "redirects are not followed")
        small = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"max_bundle_mb": 0.1})})
        with pytest.raises(RolloutError, match="more than rollout.max_bundle_mb"):
            install_bundle(f"{server.url}/v2.tar", small)
        result = install_bundle(f"{server.url}/v2.tar", cfg)
    finally:
        server.close()
    assert result.outcome is InstallOutcome.INSTALLED and result.version == "2.2.0-test"
    assert Kiosk(cfg).model.version == "2.2.0-test"


def test_keygen_refuses_to_overwrite_and_keeps_the_private_key_private(tmp_path):
    generate_keys(tmp_path / "a.pem", tmp_path / "a.pub")
    assert (tmp_path / "a.pem").stat().st_mode & 0o077 == 0
    result = mpox(["models", "keygen", "--private", str(tmp_path / "a.pem"), "--public", str(tmp_path / "b.pub")])
    assert result.returncode == 1 and "refusing to overwrite" in result.stderr
    load_private_key(tmp_path / "a.pem")


def test_bundle_cli_refuses_a_broken_model(authority, tmp_path):
    xml = make_model(tmp_path / "m", "5.0.0-test", labels="A,A")
    result = mpox(["models", "bundle", "--key", str(authority.private), str(xml), "--out", str(tmp_path / "b.tar")])
    assert result.returncode == 1 and "labels must be distinct" in result.stderr and not (tmp_path / "b.tar").exists()
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do: no bundle is written
        write_bundle(tmp_path / "missing.xml", load_private_key(authority.private), tmp_path / "c.tar", None)


def test_validate_config_names_a_missing_public_key(tmp_path):
    (tmp_path / "k.yaml").write_text("rollout:\n  public_key: keys/authority.pub.pem\n")
    result = cli(["kiosk", "validate-config", str(tmp_path / "k.yaml")])
    assert result.exit_code == 1 and f"rollout.public_key: {tmp_path.resolve()}/keys/authority.pub.pem not found" in result.output


def test_an_older_version_than_the_running_one_is_refused_unless_allowed(kiosk, bundles, authority, tmp_path):
    """A signed bundle replayed after a newer one (or older than the packaged model) is refused
    with one line and changes nothing; --allow-downgrade installs it."""
    path, cfg = kiosk
    older_than_packaged = authority.bundle(make_model(tmp_path / "v2.0", "2.0.9"), "v2.0.tar")  # the packaged: 2.1.1
    refused(mpox(["models", "install", "--config", str(path), str(older_than_packaged)]),
            "fast-mpoxnet 2.0.9 is older than the running fast-mpoxnet 2.1.1")
    assert links(cfg.state_dir)["current"] is None
    install_bundle(bundles["v3"], cfg)
    before = links(cfg.state_dir)
    refused(cli(["models", "install", "--config", str(path), str(bundles["v2"])]),
            "2.2.0-test is older than the running fast-mpoxnet 3.0.0-test: install it with --allow-downgrade")
    assert links(cfg.state_dir) == before and before["current"].startswith("3.0.0-test-")
    result = cli(["models", "install", "--config", str(path), "--allow-downgrade", str(bundles["v2"])])
    assert result.exit_code == 0, result.output
    assert links(cfg.state_dir)["current"].startswith("2.2.0-test-")


@pytest.mark.parametrize("new,running,older", [("2.2.0", "2.10.0", True), ("2.10", "2.9.9", False), ("2.1", "2.1.0", False),
                                               ("3.0.0-rc1", "3.0.0", False), ("v1.2", "1.3", True)])
def test_versions_are_ordered_by_their_numbers(new, running, older):
    from edge.rollout import refuse_downgrade

    if older:
        with pytest.raises(RolloutError, match="older than the running"):
            refuse_downgrade("m", new, ("m", running))
    else:
        refuse_downgrade("m", new, ("m", running))
    with pytest.raises(RolloutError, match="cannot tell whether"):
        refuse_downgrade("m", "latest", ("m", running))


NOBODY = 65534  # the service's user in these tests: any user but root


@pytest.fixture
def shared_folder():
    """A folder another user can reach (pytest's own are root's only)."""
    import shutil
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="mpox-owner-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def as_nobody():
    """This process acts as another user (its effective uid and gid; root's real uid brings it
    back): the kiosk's service user, or a technician who is neither root nor that user. In this
    process because the interpreter lives where another user cannot reach it."""
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changes file owners: needs root")


@needs_root
def test_an_install_by_root_leaves_the_models_to_the_kiosks_user_who_then_starts_on_the_new_model(authority, bundles,
                                                                                                   shared_folder):
    """A technician runs `mpox models install` as root (with root's usual umask 077): what it
    writes belongs to the state folder's owner, so the service (another user) starts on it."""
    from edge.models import engine_for_start

    from .conftest import kiosk_yaml

    path = kiosk_yaml(shared_folder, authority.public)
    state = shared_folder / "state"
    state.mkdir(mode=0o750)
    os.chown(state, NOBODY, NOBODY)
    old = os.umask(0o077)
    try:
        result = cli(["models", "install", "--config", str(path), str(bundles["v2"])])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    owners = {(p, p.lstat().st_uid, p.lstat().st_gid) for p in [state / "models", *(state / "models").rglob("*")]}
    assert owners and all(uid == NOBODY and gid == NOBODY for _, uid, gid in owners), owners
    cfg = load_config(path)
    with as_nobody():
        engine = engine_for_start(cfg)  # counts the start in the model's folder, reads and compiles the model
    assert engine.info.version == "2.2.0-test"


@needs_root
def test_an_install_by_another_user_is_refused_in_one_line(authority, bundles, shared_folder):
    from .conftest import kiosk_yaml

    path = kiosk_yaml(shared_folder, authority.public)
    path.chmod(0o644)
    (shared_folder / "state").mkdir(mode=0o755)  # root's, as the service's would be
    with as_nobody():
        result = cli(["models", "install", "--config", str(path), str(bundles["v2"])])
    refused(result, f"the state folder {shared_folder / 'state'} belongs to root, not to nobody: run this as the kiosk's user")
    assert not (shared_folder / "state" / "models").exists()


@needs_root
def test_models_left_by_an_older_install_as_another_user_are_one_line_at_start_not_a_traceback(authority, bundles,
                                                                                               shared_folder, caplog):
    """Models written as root before this was fixed (root-only files): every start says what is
    wrong and how to fix it in one line, and screens on with the packaged model."""
    import logging

    from edge.models import engine_for_start

    from .conftest import kiosk_yaml

    path = kiosk_yaml(shared_folder, authority.public)
    state = shared_folder / "state"
    cfg = load_config(path)
    old = os.umask(0o077)
    try:
        install_bundle(bundles["v2"], cfg)  # root installs into a state folder of its own...
    finally:
        os.umask(old)
    os.chown(state, NOBODY, NOBODY)  # ...which then becomes the service's, the models left as they were
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.ERROR), as_nobody():
            engine = engine_for_start(cfg)
        assert engine.info.version == "2.1.1"  # the packaged model
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(said) == 1 and "cannot be used by nobody" in said[0] and f"sudo chown -R nobody: {state / 'models'}" in said[0]
