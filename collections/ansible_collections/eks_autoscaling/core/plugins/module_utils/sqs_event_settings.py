# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The sqs_events event source's settings: its arguments, validated, and the SQS client they describe.

``SourceConfig.from_args`` refuses a bad argument with a ValueError naming it, before any AWS call;
the options themselves are documented in the source's DOCUMENTATION.
"""

import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlparse

import boto3
import botocore.config

# SQS's ceiling on the total time a message can be kept invisible.
MAX_VISIBILITY = 43200

_SQS_URL_HOST_RE = re.compile(r"^(?:sqs\.)?(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com")

ALIASES = {
    "aws_region": "region",
    "aws_endpoint_url": "endpoint_url",
    "access_key": "aws_access_key_id",
    "aws_access_key": "aws_access_key_id",
    "secret_key": "aws_secret_access_key",
    "aws_secret_key": "aws_secret_access_key",
    "session_token": "aws_session_token",
    "aws_profile": "profile",
}
_STRING_OPTIONS = (
    "queue_name",
    "queue_url",
    "region",
    "endpoint_url",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "profile",
)
# Passed by ansible-rulebook itself, not by the rulebook.
_IGNORED_ARGS = ("eda_feedback_queue",)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@dataclass
class SourceConfig:
    queue_name: Optional[str] = None
    queue_url: Optional[str] = None
    region: Optional[str] = None
    endpoint_url: Optional[str] = None
    aws_access_key_id: Optional[str] = None
    aws_secret_access_key: Optional[str] = None
    aws_session_token: Optional[str] = None
    profile: Optional[str] = None
    wait_time_seconds: int = 20
    max_messages: int = 10
    visibility_timeout: int = 30
    heartbeat_interval: Optional[float] = None
    max_inflight_seconds: float = 600.0
    dedup: bool = True
    dedup_window: float = 60.0
    batch_interval: float = 0.0
    batch_max_instances: int = 100
    ack_unknown: bool = True

    @classmethod
    def from_args(cls, args):
        """Validated settings; a ValueError names the first bad argument, before any AWS call."""
        values = {}
        for name, value in (args or {}).items():
            if name in _IGNORED_ARGS:
                continue
            canonical = ALIASES.get(name, name)
            if canonical not in cls.__dataclass_fields__:
                raise ValueError(f"sqs_events: unknown argument {name!r}")
            if value is not None:
                values[canonical] = value
        for name in _STRING_OPTIONS:
            if name in values:
                if not isinstance(values[name], str) or not values[name]:
                    raise ValueError(f"sqs_events: {name} must be a non-empty string, got {values[name]!r}")
        for name in ("wait_time_seconds", "max_messages", "visibility_timeout", "batch_max_instances"):
            if name in values:
                values[name] = _int_arg(name, values[name])
        for name in ("heartbeat_interval", "max_inflight_seconds", "dedup_window", "batch_interval"):
            if name in values:
                values[name] = _float_arg(name, values[name])
        for name in ("dedup", "ack_unknown"):
            if name in values:
                values[name] = _bool_arg(name, values[name])
        config = cls(**values)
        config._check()
        return config

    def _check(self):
        if bool(self.queue_name) == bool(self.queue_url):
            raise ValueError("sqs_events: exactly one of queue_name and queue_url is required")
        if not 0 <= self.wait_time_seconds <= 20:
            raise ValueError(f"sqs_events: wait_time_seconds must be 0 to 20, got {self.wait_time_seconds}")
        if not 1 <= self.max_messages <= 10:
            raise ValueError(f"sqs_events: max_messages must be 1 to 10, got {self.max_messages}")
        if not 1 <= self.visibility_timeout <= MAX_VISIBILITY:
            raise ValueError(f"sqs_events: visibility_timeout must be 1 to {MAX_VISIBILITY} seconds, got {self.visibility_timeout}")
        if self.heartbeat_interval is None:
            self.heartbeat_interval = self.visibility_timeout / 3
        if not 0 < self.heartbeat_interval < self.visibility_timeout:
            raise ValueError(
                f"sqs_events: heartbeat_interval ({self.heartbeat_interval}) must be more than 0 and less than "
                f"visibility_timeout ({self.visibility_timeout}), or messages become visible between heartbeats"
            )
        if not 0 < self.max_inflight_seconds <= MAX_VISIBILITY - self.visibility_timeout:
            raise ValueError(
                f"sqs_events: max_inflight_seconds must be more than 0 and, with visibility_timeout, within SQS's "
                f"{MAX_VISIBILITY} seconds, got {self.max_inflight_seconds}"
            )
        if self.dedup_window < 0:
            raise ValueError(f"sqs_events: dedup_window must be 0 or more, got {self.dedup_window}")
        if not 0 <= self.batch_interval < self.max_inflight_seconds:
            raise ValueError(
                f"sqs_events: batch_interval must be 0 or more and less than max_inflight_seconds "
                f"({self.max_inflight_seconds}), got {self.batch_interval}"
            )
        if self.batch_max_instances < 1:
            raise ValueError(f"sqs_events: batch_max_instances must be 1 or more, got {self.batch_max_instances}")
        if self.region is None and self.queue_url:
            match = _SQS_URL_HOST_RE.match(urlparse(self.queue_url).hostname or "")
            self.region = match.group("region") if match else None


def _number_arg(name, value, convert, accepted, meaning):
    """value as convert() makes it (int or float), from a number or a string; True and False are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise ValueError(f"sqs_events: {name} must be {meaning}, got {value!r}")
    try:
        return convert(value)
    except ValueError:
        raise ValueError(f"sqs_events: {name} must be {meaning}, got {value!r}") from None


def _int_arg(name, value):
    return _number_arg(name, value, int, (int, str), "a whole number")


def _float_arg(name, value):
    return _number_arg(name, value, float, (int, float, str), "a number of seconds")


def _bool_arg(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise ValueError(f"sqs_events: {name} must be a boolean, got {value!r}")


def make_client(config, max_pool_connections=10):
    session = boto3.session.Session(
        aws_access_key_id=config.aws_access_key_id,
        aws_secret_access_key=config.aws_secret_access_key,
        aws_session_token=config.aws_session_token,
        profile_name=config.profile,
        region_name=config.region,
    )
    client_config = botocore.config.Config(
        # botocore retries throttling and 5xx quickly; the source's own backoff takes over after that.
        retries={"mode": "standard", "max_attempts": 3},
        # A long poll holds the connection for wait_time_seconds before answering.
        read_timeout=config.wait_time_seconds + 30,
        max_pool_connections=max_pool_connections,
    )
    return session.client("sqs", endpoint_url=config.endpoint_url, config=client_config)
