"""Artifacts in an S3 bucket or an S3-compatible server (`--artifact-root s3://bucket[/prefix]`).

Configured the way MLflow configures its own S3 artifact repository: the endpoint from
MLFLOW_S3_ENDPOINT_URL (else AWS_ENDPOINT_URL, else AWS itself), TLS verification off with
MLFLOW_S3_IGNORE_TLS=true, and credentials, region and profile from boto3's standard chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE and ~/.aws, an
instance or container role). Needs boto3 (`pip install 'lineagedb[s3]'`).

A file is the object `<prefix>/<path>`; a directory is every key under `<prefix>/<path>/`. An
upload streams: bodies smaller than one part (8 MiB) are one PutObject, larger ones a multipart
upload whose parts are sent as they fill (at most one part is held in memory; the part size
doubles every 1,000 parts, so S3's 10,000-part limit is never the limit); the object appears
whole when the upload completes, an aborted upload leaves nothing. A download reads the object's
body in chunks as it is sent.

Credentials never reach the log or an error message: errors are described by S3's error code
and the bucket and endpoint (with any user:password part of the endpoint removed), never by the
exception's text, and the AWS libraries' debug logging (which prints signed request headers) is
held at WARNING. `check` (at startup) asks for the bucket once: a missing bucket, refused
credentials or an unreachable endpoint stop the server with the reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lineagedb.config import ConfigurationError
from lineagedb.ops.artifact_store import CHUNK_BYTES, ArtifactEntry, ArtifactStoreUnavailable

log = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024  # S3's minimum part is 5 MiB (but for the last)
PARTS_PER_SIZE = 1000
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
_MISSING = {"404", "NoSuchKey", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
_REFUSED = {
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AccountProblem",
}
# Their DEBUG lines hold signed request headers (the access key id among them).
_AWS_LOGGERS = ("boto3", "botocore", "s3transfer")


def endpoint_from_environment(environ: dict[str, str] | os._Environ[str]) -> str | None:
    return environ.get("MLFLOW_S3_ENDPOINT_URL") or environ.get("AWS_ENDPOINT_URL") or None


def _redact(endpoint: str | None) -> str:
    if not endpoint:
        return "AWS S3"
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class S3ArtifactStore:
    def __init__(self, bucket: str, prefix: str, client: Any, endpoint: str | None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = client
        self.endpoint = _redact(endpoint)

    @classmethod
    def from_uri(cls, uri: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> S3ArtifactStore:
        parts = urlsplit(uri)
        bucket = parts.netloc
        prefix = parts.path.strip("/")
        if not bucket or "@" in bucket or parts.query or parts.fragment:
            raise ConfigurationError(f"--artifact-root {uri!r}: expected s3://bucket or s3://bucket/prefix")
        if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
            raise ConfigurationError(f"--artifact-root {uri!r}: the prefix has an empty, '.' or '..' segment")
        try:
            import boto3
            from botocore.config import Config
        except ImportError as error:
            raise ConfigurationError(
                "an s3:// artifact root needs boto3: install LineageDB with its s3 extra (pip install 'lineagedb[s3]')"
            ) from error
        for name in _AWS_LOGGERS:
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() < logging.WARNING:
                logger.setLevel(logging.WARNING)
        endpoint = endpoint_from_environment(environ)
        ignore_tls = environ.get("MLFLOW_S3_IGNORE_TLS", "").lower() in ("true", "1")
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            verify=False if ignore_tls else None,
            config=Config(
                signature_version="s3v4",
                connect_timeout=10,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=32,
            ),
        )
        return cls(bucket, prefix, client, endpoint)

    # -- the interface ----------------------------------------------------------------------

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"{where} at {self.endpoint}"

    def check(self) -> None:
        try:
            with self._errors("HeadBucket"):
                self.client.head_bucket(Bucket=self.bucket)
        except ArtifactStoreUnavailable as error:
            raise ConfigurationError(f"the artifact root (--artifact-root) cannot be used: {error}") from None
        log.info("MLflow artifacts in %s", self.describe())

    def entries(self, segments: list[str]) -> list[ArtifactEntry]:
        directory = self._key(segments)
        prefix = f"{directory}/" if directory else ""
        found: list[ArtifactEntry] = []
        with self._errors("ListObjectsV2"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(prefix) :].rstrip("/")
                    if name:
                        found.append(ArtifactEntry(name, True))
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if name:  # not a directory marker (the prefix itself)
                        found.append(ArtifactEntry(name, False, int(item["Size"])))
        return sorted(found, key=lambda entry: (entry.name, entry.is_dir))

    def open(self, segments: list[str]) -> _S3Download | None:
        from botocore.exceptions import ClientError

        with self._errors("GetObject"):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self._key(segments))
            except ClientError as error:
                if _code(error) in _MISSING:
                    return None
                raise
        return _S3Download(self, answer["Body"], int(answer["ContentLength"]))

    def begin_upload(self, segments: list[str]) -> _S3Upload:
        return _S3Upload(self, self._key(segments))

    def delete(self, segments: list[str]) -> None:
        key = self._key(segments)
        with self._errors("ListObjectsV2"):
            keys = [key]
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{key}/"):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        with self._errors("DeleteObjects"):
            for start in range(0, len(keys), DELETE_BATCH):
                batch = [{"Key": k} for k in keys[start : start + DELETE_BATCH]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    # -- helpers ----------------------------------------------------------------------------

    def _key(self, segments: list[str]) -> str:
        return "/".join([self.prefix, *segments] if self.prefix else segments)

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """The AWS libraries' errors as ArtifactStoreUnavailable, described without their text."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        bucket = f"bucket {self.bucket!r} at {self.endpoint}"
        try:
            yield
        except ClientError as error:
            code = _code(error)
            if code in _NO_BUCKET or (operation == "HeadBucket" and code in _MISSING):
                raise ArtifactStoreUnavailable(f"the S3 {bucket} does not exist") from None
            if code in _REFUSED:
                raise ArtifactStoreUnavailable(
                    f"S3 refused the server's credentials for {bucket} ({code}): check the server's AWS "
                    "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or its role)"
                ) from None
            raise ArtifactStoreUnavailable(f"S3 answered {operation} on {bucket} with {code}") from None
        except (NoCredentialsError, PartialCredentialsError):
            raise ArtifactStoreUnavailable(
                f"no AWS credentials for {bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
                "or a role"
            ) from None
        except ConnectionError:
            raise ArtifactStoreUnavailable(f"cannot reach S3 for {bucket}") from None
        except BotoCoreError as error:
            raise ArtifactStoreUnavailable(f"S3 {operation} on {bucket} failed ({type(error).__name__})") from None


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", "")) or str(
        error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    )


class _S3Download:
    def __init__(self, store: S3ArtifactStore, body: Any, size: int) -> None:
        self._store = store
        self._body = body
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read(self) -> bytes:
        with self._store._errors("GetObject"):
            chunk: bytes = self._body.read(CHUNK_BYTES)
        return chunk

    def close(self) -> None:
        self._body.close()


class _S3Upload:
    """PutObject for a body under one part; a multipart upload, part by part, for more."""

    def __init__(self, store: S3ArtifactStore, key: str) -> None:
        self._store = store
        self._key = key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _part_bytes(self) -> int:
        return PART_BYTES * 2 ** (len(self._parts) // PARTS_PER_SIZE)

    def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= self._part_bytes():
            size = self._part_bytes()
            self._send_part(bytes(self._buffer[:size]))
            del self._buffer[:size]

    def _send_part(self, body: bytes) -> None:
        store = self._store
        if self._upload_id is None:
            with store._errors("CreateMultipartUpload"):
                answer = store.client.create_multipart_upload(Bucket=store.bucket, Key=self._key)
            self._upload_id = str(answer["UploadId"])
        number = len(self._parts) + 1
        with store._errors("UploadPart"):
            answer = store.client.upload_part(
                Bucket=store.bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body
            )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def commit(self) -> None:
        store = self._store
        if self._upload_id is None:
            with store._errors("PutObject"):
                store.client.put_object(Bucket=store.bucket, Key=self._key, Body=bytes(self._buffer))
            self._buffer.clear()
            return
        if self._buffer:
            self._send_part(bytes(self._buffer))
            self._buffer.clear()
        with store._errors("CompleteMultipartUpload"):
            store.client.complete_multipart_upload(
                Bucket=store.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._upload_id = None

    def abort(self) -> None:
        self._buffer.clear()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        store = self._store
        try:
            with store._errors("AbortMultipartUpload"):
                store.client.abort_multipart_upload(Bucket=store.bucket, Key=self._key, UploadId=upload_id)
        except ArtifactStoreUnavailable as error:
            # The bucket's lifecycle rule for incomplete uploads removes it later.
            log.warning("could not abort the multipart upload of %s: %s", self._key, error)
