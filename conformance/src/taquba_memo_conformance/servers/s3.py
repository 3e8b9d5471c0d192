"""S3 servers: moto as a process (optionally checking signatures), moto or MinIO as a container.

``S3Server`` is also the record of Ceph RGW (``servers.rgw``), another S3 server.
"""

from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from taquba_memo_conformance._containers import start_container
from taquba_memo_conformance._processes import ServerStartError, StartedServer, start_timeout
from taquba_memo_conformance.servers import _common as common

S3Emulator = Literal["moto", "minio", "rgw"]

# The emulators' fixed credentials.
EMULATOR_ACCESS_KEY = "testing"
EMULATOR_SECRET_KEY = "testing"
EMULATOR_REGION = "us-east-1"
# Images for the container path; each can be replaced with TAQUBA_MEMO_S3_IMAGE.
MOTO_IMAGE = "motoserver/moto:5.2.5"
MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
# MinIO refuses root passwords shorter than 8 characters.
MINIO_ACCESS_KEY = "minioadmin"
MINIO_SECRET_KEY = "minioadmin"


@dataclass
class S3Server(common.BucketServerRecord[S3Emulator]):
    """An S3-compatible endpoint with explicit credentials (path-style addressing)."""

    access_key: str
    secret_key: str
    region: str
    #: Whether a request signed with a wrong secret is refused (moto, by default, takes any).
    checks_signatures: bool = True
    _client: Any = field(default=None, init=False, repr=False, compare=False)

    def boto3_client(self) -> Any:
        """A boto3 S3 client for this server, with its credentials and region given explicitly."""
        if self._client is None:
            common.require_modules("boto3_client()", "boto3", "botocore")
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=self.region,
            )
            self._client = session.client(
                "s3",
                endpoint_url=self.endpoint_url,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
            )
        return self._client

    def _create_bucket(self, name: str) -> None:
        options: dict[str, Any] = {}
        if self.region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.boto3_client().create_bucket(Bucket=name, **options)


def resolve_s3_server() -> S3Server:
    """The S3 server for this session: env, else a container, else a moto process."""
    return common.resolve("S3", s3_server_from_env, start_s3_container, start_s3_process)


def s3_server_from_env() -> S3Server | None:
    known: tuple[S3Emulator, ...] = ("moto", "minio", "rgw")
    return s3_compatible_from_env(
        "S3", lambda: common.emulator_env("TAQUBA_MEMO_S3_EMULATOR", known)
    )


def s3_compatible_from_env(
    kind: Literal["S3", "RGW"], emulator_from_env: Callable[[], S3Emulator | None]
) -> S3Server | None:
    """The server named by ``TAQUBA_MEMO_<kind>_ENDPOINT`` and its companion variables.

    ``_ACCESS_KEY`` and ``_SECRET_KEY`` are required with it; ``_REGION`` and ``_BUCKET`` are not.
    """
    variable = f"TAQUBA_MEMO_{kind}_"
    endpoint = common.env_value(f"{variable}ENDPOINT")
    if endpoint is None:
        return None
    endpoint = endpoint.rstrip("/")
    because = f"{variable}ENDPOINT is"
    emulator = emulator_from_env()
    server = S3Server(
        endpoint_url=endpoint,
        access_key=common.required_env(f"{variable}ACCESS_KEY", because),
        secret_key=common.required_env(f"{variable}SECRET_KEY", because),
        region=common.env_value(f"{variable}REGION") or "us-east-1",
        emulator=emulator,
        how="env",
        fixed_bucket=common.env_value(f"{variable}BUCKET"),
        checks_signatures=emulator != "moto",
    )
    common.check_answers(endpoint + "/", f"{variable}ENDPOINT")
    return server


def _minio_arguments(host: str, port: int, _published: int) -> list[str]:
    return ["server", "/data", "--address", f"{host}:{port}"]


def start_s3_container() -> S3Server:
    """An S3 server image through testcontainers: moto's, or MinIO's.

    ``TAQUBA_MEMO_S3_CONTAINER=minio`` runs a real MinIO server instead of
    moto (the image is ``TAQUBA_MEMO_S3_IMAGE`` either way when set).
    """
    emulator: S3Emulator
    if (common.env_value("TAQUBA_MEMO_S3_CONTAINER") or "moto") == "minio":
        running = start_container(
            image=common.image("TAQUBA_MEMO_S3_IMAGE", MINIO_IMAGE),
            entrypoint=None,
            container_port=9000,
            command=_minio_arguments,
            probe_path="/minio/health/live",
            timeout=start_timeout(),
            environment={
                "MINIO_ROOT_USER": MINIO_ACCESS_KEY,
                "MINIO_ROOT_PASSWORD": MINIO_SECRET_KEY,
            },
        )
        keys, emulator = (MINIO_ACCESS_KEY, MINIO_SECRET_KEY), "minio"
    else:
        running = start_container(
            image=common.image("TAQUBA_MEMO_S3_IMAGE", MOTO_IMAGE),
            entrypoint=["moto_server"],
            container_port=5000,
            command=lambda host, port, _published: ["-H", host, "-p", str(port)],
            probe_path="/",
            timeout=start_timeout(),
        )
        keys, emulator = (EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY), "moto"
    return loopback_s3_server(
        running, keys, emulator, "container", checks_signatures=emulator != "moto"
    )


def loopback_s3_server(
    started: StartedServer,
    keys: tuple[str, str],
    emulator: S3Emulator,
    how: common.How,
    *,
    checks_signatures: bool,
) -> S3Server:
    """An S3 server the kit started on 127.0.0.1, signed for with ``keys``."""
    return S3Server(
        endpoint_url=f"http://127.0.0.1:{started.host_port}",
        access_key=keys[0],
        secret_key=keys[1],
        region=EMULATOR_REGION,
        emulator=emulator,
        checks_signatures=checks_signatures,
        **common.started_fields(started, how),
    )


def _start_moto() -> StartedServer:
    common.require_modules("the S3 server", "moto", "flask", "boto3")
    return common.start_process(
        "moto",
        lambda port: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        "/",
    )


def start_s3_process() -> S3Server:
    """moto's S3 server (``python -m moto.server``, from moto[server]) on 127.0.0.1."""
    keys = (EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY)
    return loopback_s3_server(_start_moto(), keys, "moto", "process", checks_signatures=False)


# The inline policy of the authenticating moto's user: all of S3, and IAM, so
# that tests can add users of their own (with fewer permissions).
_MOTO_AUTH_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}],
    }
)


def start_moto_with_auth() -> S3Server:
    """A moto process that checks signatures: its IAM authentication switched on.

    moto accepts anything until ``/moto-api/reset-auth`` sets the number of
    requests it lets through unchecked; the kit first creates an IAM user whose
    policy allows S3 and IAM, and its access key, then sets that number to 0. From then on
    every request must be signed with that key and is checked like S3 checks it.
    """
    started = _start_moto()
    endpoint = f"http://127.0.0.1:{started.host_port}"
    try:
        import boto3

        iam = boto3.session.Session(
            aws_access_key_id=EMULATOR_ACCESS_KEY,
            aws_secret_access_key=EMULATOR_SECRET_KEY,
            region_name=EMULATOR_REGION,
        ).client("iam", endpoint_url=endpoint)
        user = f"taquba-memo-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="memo", PolicyDocument=_MOTO_AUTH_POLICY)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would reach moto empty
        )
        handlers = [urllib.request.ProxyHandler({})]
        with urllib.request.build_opener(*handlers).open(request, timeout=30) as reply:
            reply.read()
    except Exception as error:
        started.stop()
        raise ServerStartError(f"could not switch on moto's authentication: {error}") from error
    keys = (key["AccessKeyId"], key["SecretAccessKey"])
    return loopback_s3_server(started, keys, "moto", "process", checks_signatures=True)
