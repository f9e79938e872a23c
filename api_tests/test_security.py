"""API keys: with FPAR_API_KEYS set, every call but health, the dashboard's files and the API
documentation needs `Authorization: Bearer <key>`: 401 without one, 403 with a wrong one.
Keys never reach the logs."""
import httpx
import pytest

from launcher import free_port

from stack_helpers import frames_of

KEYS = "key-one-4f1c9e,key-two-88a0d2"


@pytest.fixture(scope="module")
def secured(stack):
    url = stack.add_gateway("gateway-keys", free_port(), {"FPAR_API_KEYS": KEYS})
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c
    stack.remove("gateway-keys")


PROTECTED = [("GET", "/jobs"), ("GET", "/jobs/x"), ("POST", "/jobs/x/cancel"), ("GET", "/models"),
             ("GET", "/models/x"), ("GET", "/presets"), ("POST", "/train"), ("POST", "/predict"),
             ("GET", "/metrics"), ("GET", "/jobs/x/events"), ("DELETE", "/jobs/x"), ("PATCH", "/models/x"),
             ("GET", "/experiments"), ("GET", "/v2/models/x"), ("POST", "/v2/models/x/infer")]


@pytest.mark.parametrize("method, path", PROTECTED)
def test_every_endpoint_but_health_needs_a_key(secured, method, path):
    missing = secured.request(method, path)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = secured.request(method, path, headers={"Authorization": "Bearer key-one-4f1c9f"})
    assert wrong.status_code == 403
    basic = secured.request(method, path, headers={"Authorization": "Basic a2V5LW9uZQ=="})
    assert basic.status_code == 401


def test_health_is_open_and_valid_keys_work(secured, stack, trained):
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/", "/static/js/main.js", "/docs",
                 "/redoc", "/openapi.json"):
        assert secured.get(path).status_code == 200, path
    for key in KEYS.split(","):
        auth = {"Authorization": f"Bearer {key}"}
        assert secured.get("/jobs", headers=auth).status_code == 200
        r = secured.post("/predict", files=frames_of(stack, count=2), data={"wait": "30"}, headers=auth)
        assert r.status_code == 200, r.text


def test_keys_never_reach_the_logs(secured, stack):
    secured.get("/jobs", headers={"Authorization": "Bearer key-two-88a0d2"})
    secured.get("/jobs", headers={"Authorization": "Bearer not-a-key-77"})
    logs = "".join(p.read_text(errors="replace") for p in stack.log_dir.glob("*.log"))
    assert "key-two-88a0d2" not in logs and "key-one-4f1c9e" not in logs and "not-a-key-77" not in logs
