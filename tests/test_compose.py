"""compose.yaml and the Dockerfile cannot be run here (no Docker engine): check that
they parse, wire the stack as documented, and only run commands the project has."""
import importlib
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
LONG_RUNNING = ["redis", "gateway", "worker-cpu", "worker-gpu"]


def test_services_and_persistence():
    assert set(LONG_RUNNING) <= set(SERVICES)
    redis = SERVICES["redis"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])
    for name in ("gateway", "worker-cpu", "worker-gpu"):
        volumes = SERVICES[name]["volumes"]
        assert "data:/data" in volumes and "models:/models" in volumes, name
        assert SERVICES[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_healthchecks_and_startup_order():
    for name in LONG_RUNNING:
        assert SERVICES[name]["healthcheck"]["test"], name
    for name in ("gateway", "worker-cpu", "worker-gpu"):
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert SERVICES[name]["restart"] == "unless-stopped"


def test_gpu_worker_reserves_a_device():
    devices = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    assert "--pool" in SERVICES["worker-gpu"]["command"]


def _modules_in(argv: list[str]) -> list[str]:
    """The project modules a command line would run (a `sh -c` line's commands too)."""
    if argv[:2] == ["sh", "-c"]:
        return [m for line in argv[2].split("&&") for m in _modules_in(line.split())]
    found = []
    for flag in ("-m", "-A"):
        if flag in argv:
            found.append(argv[argv.index(flag) + 1])
    found += [a.split(":")[0] for a in argv if re.fullmatch(r"[a-z_.]+:[a-z_]+", a)]
    return [m for m in found if m.split(".")[0] in {"fpar_models", "service", "worker", "launcher"}]


def test_every_command_exists_in_the_project():
    checks = []
    for svc in SERVICES.values():
        for argv in (svc.get("command") or [], svc.get("healthcheck", {}).get("test", [])[1:]):
            if argv and argv[0] in ("python", "celery", "uvicorn", "sh"):
                checks += _modules_in(argv)
                if argv[0] == "uvicorn":
                    module, attr = next(a for a in argv if ":" in a).split(":")
                    assert callable(getattr(importlib.import_module(module), attr))
    assert {"worker.app", "service.main", "fpar_models.data.synthetic", "launcher.publish",
            "worker.healthcheck"} <= set(checks)
    for module in checks:
        assert importlib.util.find_spec(module) is not None, module


def test_dockerfile_copies_what_the_commands_need():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+)", dockerfile, re.M))
    project = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    needed, todo = set(), ["fpar_models", "service", "worker", "launcher"]  # what the commands run
    while todo:  # and every project package those import, and so on
        package = todo.pop()
        needed.add(package)
        for file in (ROOT / package).rglob("*.py"):
            imported = set(re.findall(r"^\s*(?:from|import) (\w+)", file.read_text(), re.M)) & project
            todo += sorted(imported - needed - set(todo))
    assert needed <= copied, needed - copied
    assert (ROOT / "requirements.txt").exists() and "requirements.txt" in copied
    cmd = re.search(r'^CMD (\[.*\])', dockerfile, re.M).group(1)
    assert "service.main:create_app" in cmd


def test_the_remote_profile_s_worker_shares_only_redis_and_the_stores():
    remote, s3 = SERVICES["worker-remote"], SERVICES["s3"]
    assert remote["profiles"] == ["remote"] == s3["profiles"]
    assert remote["volumes"] == ["./weights:/weights:ro"]  # no data or models volume: its own disk
    assert remote["env_file"] == [{"path": "store.env", "required": True}]
    assert all({"path": "store.env", "required": False} in SERVICES[n]["env_file"] for n in ("gateway", "worker-cpu"))
    example = dict(line.split("=", 1) for line in (ROOT / "store.env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert example["FPAR_MODEL_STORE"].startswith("s3://fpar/") and example["FPAR_DATA_STORE"].startswith("s3://fpar/")
    assert "-bucket=fpar" in s3["command"] and example["AWS_ENDPOINT_URL"] == "http://s3:8333"
    assert {k: example[k] for k in s3["environment"]} == s3["environment"]  # the identity it accepts
