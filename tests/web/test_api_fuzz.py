"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis, in-process against the ASGI
app of a real kiosk with its model): no 5xx, every response as the schema says, signed in
(with the page's CSRF token) and not."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from edge.config import load_config
from edge.kiosk import Kiosk
from edge.outputs.metrics import MetricsOutput
from edge.web.app import create_app
from edge.web.auth import CSRF_COOKIE, SESSION_COOKIE, hash_password
from edge.web.server import web_context
from tests.edge.test_kiosk import config

PASSWORD = "fuzzing password"
CSRF = "fuzz-csrf-token"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = load_config(config(tmp, f"web:\n  port: 0\n  staff_password_hash: '{hash_password(PASSWORD)}'\n"))
    kiosk = Kiosk(cfg)
    kiosk.run(max_screenings=1)  # a row in the audit log to read back
    ctx = web_context(kiosk, MetricsOutput(kiosk))
    yield create_app(ctx), ctx.staff.login("testclient", PASSWORD).token


def operations(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 10  # the API, not an empty schema
    return found


def fuzz(operation, examples: int, **kwargs) -> None:
    # /healthz answers 503 by design while the kiosk is not screening (its schema says so and the
    # body is checked); every other 5xx is a failure. /api/check refuses, by its content, a photo
    # its schema cannot describe as bad (a 1x1 JPEG is too small to judge: 422, documented).
    excluded = {"/healthz": [not_a_server_error], "/api/check": [positive_data_acceptance]}.get(operation.path, [])

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        case.call_and_validate(excluded_checks=excluded, **kwargs)

    run()


def test_the_api_keeps_its_schema_signed_in(app):
    for operation in operations(app[0]):
        fuzz(operation, 25, headers={"x-csrf-token": CSRF}, cookies={SESSION_COOKIE: app[1], CSRF_COOKIE: CSRF})


def test_the_api_keeps_its_schema_signed_out(app):
    for operation in operations(app[0]):
        fuzz(operation, 10)
