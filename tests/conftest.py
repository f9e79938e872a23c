import os

import pytest

os.environ.setdefault("FPAR_TORCH_THREADS", "2")

from fpar_models.data import synthetic  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A folder holding the synthetic dataset as `synthetic/`."""
    root = tmp_path_factory.mktemp("data")
    synthetic.generate(root / "synthetic")
    return root


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server on a free port, so no test shares state with another run."""
    import shutil
    import subprocess
    import time

    import redis

    from launcher import free_port

    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path_factory.mktemp("redis"))],
                            stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A private SeaweedFS S3 server, its credentials in this process's environment (as a
    worker with an s3:// model store has them)."""
    from launcher.seaweed import start_s3

    server = start_s3(tmp_path_factory.mktemp("seaweed"))
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    yield server
    for k, v in saved.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    server.stop(deadline_s=0.5)  # its data is thrown away
