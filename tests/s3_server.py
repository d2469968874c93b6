"""A real S3-compatible server on loopback for the object-storage tests (moto's server mode).

Why a server and not a mock: the code under test talks HTTP through s3fs/aiobotocore exactly as
it would to AWS or MinIO, the endpoint reaching it through the standard ``AWS_ENDPOINT_URL``, and
Ray worker processes on other "nodes" reach the same server. Credentials are made-up values in
the standard environment variables (moto accepts any), which also lets the tests check that no
credential ever reaches an output file.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# values no output may contain (checked by the tests)
ACCESS_KEY = "AKIAGENCRITICTEST0001"
SECRET_KEY = "gencritic-test-secret-do-not-write-7f3a"


@dataclass
class S3Server:
    """The running server: its endpoint, and an s3fs file system bound to it."""

    endpoint: str
    fs: Any

    def bucket(self) -> str:
        """A new empty bucket with a unique name."""
        name = f"gc-{uuid.uuid4().hex[:12]}"
        self.fs.mkdir(name)
        return name

    def upload(self, local: Path, url: str) -> None:
        """Copy a local file or folder (recursively) to ``s3://...``."""
        target = url.removeprefix("s3://")
        if local.is_dir():
            for f in sorted(p for p in local.rglob("*") if p.is_file()):
                self.fs.put_file(str(f), f"{target.rstrip('/')}/{f.relative_to(local).as_posix()}")
        else:
            self.fs.put_file(str(local), target)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 (a free port), with the standard AWS variables pointing at it
    for the whole session (child processes, Ray nodes included, inherit them)."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield S3Server(endpoint=env["AWS_ENDPOINT_URL"], fs=s3fs.S3FileSystem())
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s3fs.S3FileSystem.clear_instance_cache()
