# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Attributes of an existing SQS queue: every API call sqs_queue_attributes makes.

As in eks_access.py, the module only parses its options and reports; validation, reads, the
comparison, retries and error translation live here, so they can be tested against the lab's
AWS server without AnsibleModule.

The client is made the amazon.aws way, wrapped for retries:

    client = module.client("sqs", retry_decorator=AWSRetry.jittered_backoff())

Failures are raised as ``SqsAttributesError`` (an ``AnsibleAWSError``) for
``module.fail_json_aws_error``.

Attribute values are compared in a normalised form, because GetQueueAttributes answers every
value as a string while a playbook writes ``true``, ``300`` or a policy as a YAML mapping:

* booleans become ``True``/``False``;
* integers become ``int``;
* JSON documents (policies) become the parsed object, so key order and whitespace never count;
* an attribute that is not set is absent, and ``""`` (how SQS is told to clear an attribute) means
  "not set".

``ensure_queue_attributes`` returns ``(changed, state)`` where ``state`` holds the queue's URL,
ARN and normalised attributes after the run; in check mode nothing is changed and ``state`` is
the queue as it would be.
"""

import json
import re
from urllib.parse import urlparse

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError

BOOLEAN_ATTRIBUTES = ("SqsManagedSseEnabled", "ContentBasedDeduplication", "FifoQueue")
INTEGER_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsDataKeyReusePeriodSeconds",
)
JSON_ATTRIBUTES = ("Policy", "RedrivePolicy", "RedriveAllowPolicy")
# Closed sets in the SQS API; checked here so a typo fails before any call, naming the attribute.
CHOICE_ATTRIBUTES = {
    "DeduplicationScope": ("messageGroup", "queue"),
    "FifoThroughputLimit": ("perQueue", "perMessageGroupId"),
}
# SQS refuses these on a standard queue with a bare InvalidAttributeName; checked against the queue
# so the message says why.
FIFO_ONLY_ATTRIBUTES = ("ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit")
SETTABLE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)
# FifoQueue is fixed when the queue is created; it is reported, never set.
READ_ONLY_ATTRIBUTES = ("FifoQueue",)
# What the module reports: the configuration of the queue. Counters and timestamps are left out
# so that a registered result (and the diff) only moves when the configuration does.
REPORTED_ATTRIBUTES = SETTABLE_ATTRIBUTES + READ_ONLY_ATTRIBUTES

# CreateQueue's own constraint: up to 80 characters, FIFO queues end in .fifo.
QUEUE_NAME_RE = re.compile(r"^(?:[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo)$")
# botocore reports a missing queue under its query-protocol code even over the JSON protocol (the
# other name is the JSON one, QueryErrorCode); accept both so a botocore change does not turn
# "no such queue" into a generic failure.
MISSING_QUEUE_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_INTEGER_RE = re.compile(r"^\s*\d+\s*$")

# Tells "the caller did not pass the current state" apart from "read it for me".
_UNSET = object()


class SqsAttributesError(AnsibleAWSError):
    """Any failure of sqs_attributes; ``exception`` holds the botocore error when there is one."""


class _SqsErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = SqsAttributesError


# -- validation and normalisation ---------------------------------------------------------------------
def _is_url(queue):
    return queue.startswith(("https://", "http://"))


def validate_queue(queue, option="queue"):
    """A queue name or a queue URL whose last path segment is a queue name."""
    if isinstance(queue, str) and queue:
        name = urlparse(queue).path.rstrip("/").rpartition("/")[2] if _is_url(queue) else queue
        if QUEUE_NAME_RE.match(name):
            return
    raise SqsAttributesError(
        message=f"{option} must be an SQS queue name (1 to 80 letters, digits, hyphens and underscores, "
        f"FIFO queue names ending in .fifo) or a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>), "
        f"got {queue!r}"
    )


def _suggestion(name):
    # A lower-cased or snake_cased attribute name is the usual slip: point at the real one.
    folded = to_text(name).replace("_", "").lower()
    for known in REPORTED_ATTRIBUTES:
        if known.lower() == folded:
            return f"; did you mean {known}?"
    return ""


def _invalid(name, expected, value):
    return SqsAttributesError(message=f"SQS attribute {name} must be {expected}, got {value!r}")


def _normalise_boolean(name, value):
    if isinstance(value, bool):
        return value
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise _invalid(name, "a boolean (true or false)", value) from None


def _normalise_integer(name, value):
    # bool is an int to Python, but `VisibilityTimeout: true` is a mistake, not 1 second.
    if isinstance(value, bool):
        raise _invalid(name, "a whole number of seconds or bytes", value)
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and _INTEGER_RE.match(value):
        return int(value)
    raise _invalid(name, "a whole number of seconds or bytes", value)


def _normalise_json(name, value):
    if isinstance(value, (str, bytes)):
        text = to_text(value)
        if not text.strip():
            return None
        try:
            value = json.loads(text)
        except ValueError as e:
            raise SqsAttributesError(message=f"SQS attribute {name} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise _invalid(name, "a JSON object (a mapping, or a string holding one)", value)
    if name == "RedrivePolicy" and isinstance(value.get("maxReceiveCount"), str):
        # SQS keeps maxReceiveCount as a number whatever form it was sent in; "5" and 5 are the same policy.
        if _INTEGER_RE.match(value["maxReceiveCount"]):
            value = dict(value, maxReceiveCount=int(value["maxReceiveCount"]))
    return value


def normalise_value(name, value):
    """The comparable form of one attribute value, from a playbook or from GetQueueAttributes.
    None means "not set"."""
    if value is None:
        return None
    if name in BOOLEAN_ATTRIBUTES:
        return _normalise_boolean(name, value)
    if name in INTEGER_ATTRIBUTES:
        return _normalise_integer(name, value)
    if name in JSON_ATTRIBUTES:
        return _normalise_json(name, value)
    if isinstance(value, (dict, list, bool)):
        raise _invalid(name, "a string", value)
    text = to_text(value)
    if not text:
        return None
    if name in CHOICE_ATTRIBUTES and text not in CHOICE_ATTRIBUTES[name]:
        raise _invalid(name, f"one of {', '.join(CHOICE_ATTRIBUTES[name])}", value)
    return text


def normalise_attributes(attributes):
    """Validate the requested attributes and return them normalised. Raises before any API call on
    an unknown or read-only name, a value of the wrong kind, or two kinds of encryption at once."""
    if not isinstance(attributes, dict):
        raise SqsAttributesError(message=f"attributes must be a mapping of SQS attribute names to values, got {attributes!r}")
    wanted = {}
    for name, value in attributes.items():
        if name in READ_ONLY_ATTRIBUTES:
            raise SqsAttributesError(
                message=f"SQS attribute {name} cannot be changed: it is fixed when the queue is created"
            )
        if name not in SETTABLE_ATTRIBUTES:
            raise SqsAttributesError(
                message=f"Unknown SQS attribute {name!r}{_suggestion(name)} "
                f"(settable attributes: {', '.join(sorted(SETTABLE_ATTRIBUTES))})"
            )
        if value is None and name not in JSON_ATTRIBUTES and name != "KmsMasterKeyId":
            # Only documents and the KMS key can be cleared; a null elsewhere is a missing variable.
            raise _invalid(name, "set (only policies and KmsMasterKeyId can be cleared)", value)
        wanted[name] = normalise_value(name, value)
    # SQS encrypts a queue with SQS-owned keys or with a KMS key, never both.
    if wanted.get("SqsManagedSseEnabled") is True and wanted.get("KmsMasterKeyId"):
        raise SqsAttributesError(
            message="SQS attribute SqsManagedSseEnabled=true cannot be combined with KmsMasterKeyId "
            f"({wanted['KmsMasterKeyId']}): a queue uses one kind of server-side encryption. Set SqsManagedSseEnabled "
            "to false to use the KMS key, or KmsMasterKeyId to '' to use SSE-SQS."
        )
    return wanted


def normalise_queue_attributes(raw):
    """GetQueueAttributes' answer (all strings) in the comparable form, configuration only."""
    normalised = {}
    for name in REPORTED_ATTRIBUTES:
        if name not in (raw or {}):
            continue
        try:
            value = normalise_value(name, raw[name])
        except SqsAttributesError:
            # Whatever SQS answers is the truth; an unexpected form is reported as it is, not refused.
            value = raw[name]
        if value is not None:
            normalised[name] = value
    return normalised


def _wire_value(name, value):
    # SetQueueAttributes takes strings only; "" clears a document or the KMS key.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in JSON_ATTRIBUTES:
        return json.dumps(value, separators=(",", ":"))
    return to_text(value)


# -- API calls ------------------------------------------------------------------------------------------
def _region(client):
    return getattr(getattr(client, "meta", None), "region_name", None) or "the configured region"


def _queue_not_found(client, queue, error):
    return SqsAttributesError(
        message=f"SQS queue {queue!r} does not exist in {_region(client)} (this module does not create queues)",
        exception=error,
    )


@_SqsErrorHandler.common_error_handler("get SQS queue URL")
def _get_queue_url(client, queue):
    try:
        return client.get_queue_url(QueueName=queue, aws_retry=True)["QueueUrl"]
    except is_boto3_error_code(list(MISSING_QUEUE_CODES)) as e:
        raise _queue_not_found(client, queue, e) from e


@_SqsErrorHandler.common_error_handler("get SQS queue attributes")
def _get_queue_attributes(client, queue, queue_url):
    try:
        return client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"], aws_retry=True).get(
            "Attributes", {}
        )
    except is_boto3_error_code(list(MISSING_QUEUE_CODES)) as e:
        raise _queue_not_found(client, queue, e) from e


@_SqsErrorHandler.common_error_handler("set SQS queue attributes")
def _set_queue_attributes(client, queue_url, attributes):
    client.set_queue_attributes(QueueUrl=queue_url, Attributes=attributes, aws_retry=True)


def get_queue(client, queue):
    """The queue's URL, ARN and normalised attributes. A missing queue is an error, naming the queue
    and the region: the module only configures queues, and an empty answer would hide a wrong name."""
    validate_queue(queue)
    queue_url = queue if _is_url(queue) else _get_queue_url(client, queue)
    raw = _get_queue_attributes(client, queue, queue_url)
    return {"queue_url": queue_url, "queue_arn": raw.get("QueueArn"), "attributes": normalise_queue_attributes(raw)}


def _is_fifo(state):
    return state["attributes"].get("FifoQueue") is True or state["queue_url"].endswith(".fifo")


def attribute_changes(current_attributes, wanted):
    """The wanted attributes whose normalised value differs from the queue's."""
    return {name: value for name, value in wanted.items() if current_attributes.get(name) != value}


def ensure_queue_attributes(client, queue, attributes, check_mode=False, current=_UNSET):
    """Make the queue's attributes match ``attributes``; attributes not given are left alone.

    Only the attributes that differ are sent, in one SetQueueAttributes call, so SQS applies all
    of them or none.
    """
    validate_queue(queue)
    wanted = normalise_attributes(attributes)
    if current is _UNSET:
        current = get_queue(client, queue)

    if not _is_fifo(current):
        for name in FIFO_ONLY_ATTRIBUTES:
            if name in wanted:
                raise SqsAttributesError(
                    message=f"SQS attribute {name} only applies to FIFO queues; queue {queue!r} is a standard queue"
                )

    changes = attribute_changes(current["attributes"], wanted)
    if not changes:
        return False, current

    planned_attributes = dict(current["attributes"])
    for name, value in changes.items():
        if value is None:
            planned_attributes.pop(name, None)
        else:
            planned_attributes[name] = value
    planned = dict(current, attributes=planned_attributes)
    if check_mode:
        return True, planned

    _set_queue_attributes(client, current["queue_url"], {name: _wire_value(name, value) for name, value in changes.items()})
    # Not re-read: SQS takes up to a minute (MessageRetentionPeriod up to 15) to show a change, so a
    # read now could report the old values. What SQS accepted is what the queue will have.
    return True, planned


def module_result(changed, before, after):
    return {
        "changed": changed,
        "queue_url": after["queue_url"],
        "queue_arn": after["queue_arn"],
        "attributes": after["attributes"],
        "diff": {"before": before["attributes"], "after": after["attributes"]},
    }
