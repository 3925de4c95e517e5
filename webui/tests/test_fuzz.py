"""Schemathesis fuzzing of the app's own OpenAPI document (sim engine, bounded examples)."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)
from schemathesis.checks import not_a_server_error

from conftest import LiveServer, sim_settings
from qvc_webui.app import create_app

_server = LiveServer(create_app(sim_settings(sim_ttft_ms=0, sim_tpot_ms=0, max_context=256,
                                             default_max_tokens=16, max_body_bytes=64_000)))


@pytest.fixture(scope="module", autouse=True)
def _live():
    with _server:
        yield


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def api_schema(_live):
    return schemathesis.openapi.from_url(_server.url + "/openapi.json")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_fuzz(case):
    response = case.call(base_url=_server.url, timeout=10)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance, response_schema_conformance,
                                             negative_data_rejection])
    assert response.status_code < 500 or case.path == "/healthz"


def test_health_still_ok_after_fuzz():
    import httpx

    assert httpx.get(_server.url + "/healthz").json()["status"] == "ok"
    assert "qvc_webui_requests_in_flight 0.0" in httpx.get(_server.url + "/metrics").text
