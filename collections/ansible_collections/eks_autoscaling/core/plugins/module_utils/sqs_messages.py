# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Acknowledging SQS messages by receipt handle: every API call sqs_message_ack makes.

The counterpart of the sqs_events event source: the source keeps the message of an event in flight
invisible, and the playbook that handled the event deletes it here (or asks for more time).

As in sqs_attributes.py, the client is made the amazon.aws way, wrapped for retries:

    client = module.client("sqs", retry_decorator=AWSRetry.jittered_backoff())

and failures are raised as ``SqsMessagesError`` (an ``AnsibleAWSError``) for
``module.fail_json_aws_error``.

SQS answers DeleteMessage with success for a message deleted before, as long as the receipt handle
was once valid, so a delete alone cannot tell "deleted now" from "already deleted". A message is
therefore first touched with ChangeMessageVisibility, which SQS refuses for a message that is gone
(or whose handle is invalid or expired); only then is it deleted. A refused handle is not a failure:
the result says ``changed=False`` and ``receipt_handle_stale=True``, with SQS's reason.

In check mode, the queue is read (so a wrong URL still fails) but the message is not touched: SQS has
no call that checks a receipt handle without changing the message, so the result is ``changed=True``.
"""

from urllib.parse import urlparse

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError

from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_attributes import MISSING_QUEUE_CODES

ACTIONS = ("delete", "extend")
# SQS's limit on how long a message can be kept invisible.
MAX_VISIBILITY_TIMEOUT = 43200
# How long the message stays invisible between the check and the delete; only matters if the delete fails.
PROBE_VISIBILITY_TIMEOUT = 30
# Refusals of the receipt handle itself. AWS answers a deleted message with InvalidParameterValue
# ("... for parameter ReceiptHandle is invalid. Reason: Message does not exist ..."), which is also
# the code of a bad VisibilityTimeout, so that code only counts when the message names the handle.
STALE_HANDLE_CODES = ("ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight")
_AMBIGUOUS_CODE = "InvalidParameterValue"


class SqsMessagesError(AnsibleAWSError):
    """Any failure of sqs_messages; ``exception`` holds the botocore error when there is one."""


class _SqsErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = SqsMessagesError


# -- validation ------------------------------------------------------------------------------------------
def validate_queue_url(queue_url):
    parsed = urlparse(queue_url) if isinstance(queue_url, str) else None
    if not parsed or parsed.scheme not in ("http", "https") or not parsed.netloc or not parsed.path.strip("/"):
        raise SqsMessagesError(
            message="queue_url must be an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>), "
            f"as in the event's sqs.queue_url, got {queue_url!r}"
        )


def validate_receipt_handle(receipt_handle):
    if not isinstance(receipt_handle, str) or not receipt_handle.strip():
        raise SqsMessagesError(
            message=f"receipt_handle must be the receipt handle of a received message, got {receipt_handle!r}"
        )


def validate_visibility_timeout(visibility_timeout):
    if (
        isinstance(visibility_timeout, bool)
        or not isinstance(visibility_timeout, int)
        or not 0 <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT
    ):
        raise SqsMessagesError(
            message=f"visibility_timeout must be a whole number of seconds from 0 to {MAX_VISIBILITY_TIMEOUT}, "
            f"got {visibility_timeout!r}"
        )


def validate(queue_url, receipt_handle, action, visibility_timeout=None):
    """Refuse bad input before any call."""
    validate_queue_url(queue_url)
    validate_receipt_handle(receipt_handle)
    if action not in ACTIONS:
        raise SqsMessagesError(message=f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if action == "extend":
        if visibility_timeout is None:
            raise SqsMessagesError(message="visibility_timeout is required with action=extend")
        validate_visibility_timeout(visibility_timeout)


def _stale_reason(error):
    """SQS's reason when ``error`` refuses the receipt handle, else None."""
    details = error.response.get("Error", {}) if hasattr(error, "response") else {}
    code, message = details.get("Code"), to_text(details.get("Message") or "")
    if code in STALE_HANDLE_CODES or (code == _AMBIGUOUS_CODE and "receipthandle" in message.replace(" ", "").lower()):
        return f"{code}: {message}" if message else code
    return None


def _queue_not_found(queue_url, error):
    return SqsMessagesError(message=f"SQS queue {queue_url!r} does not exist", exception=error)


# -- API calls -------------------------------------------------------------------------------------------
@_SqsErrorHandler.common_error_handler("read the SQS queue")
def _check_queue(client, queue_url):
    try:
        client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"], aws_retry=True)
    except is_boto3_error_code(list(MISSING_QUEUE_CODES)) as e:
        raise _queue_not_found(queue_url, e) from e


def _refused_reason(queue_url, call):
    """Run one call on a receipt handle: None when SQS accepted the handle, else its reason for refusing it."""
    try:
        call()
    except is_boto3_error_code(list(MISSING_QUEUE_CODES)) as e:
        raise _queue_not_found(queue_url, e) from e
    except is_boto3_error_code(list(STALE_HANDLE_CODES) + [_AMBIGUOUS_CODE]) as e:
        reason = _stale_reason(e)
        if reason is None:
            raise
        return reason
    return None


@_SqsErrorHandler.common_error_handler("change the visibility of the SQS message")
def _change_visibility(client, queue_url, receipt_handle, visibility_timeout):
    return _refused_reason(queue_url, lambda: client.change_message_visibility(
        QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=visibility_timeout, aws_retry=True))


@_SqsErrorHandler.common_error_handler("delete the SQS message")
def _delete(client, queue_url, receipt_handle):
    return _refused_reason(queue_url, lambda: client.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle, aws_retry=True))


def _result(changed, queue_url, action, visibility_timeout=None, stale_reason=None):
    return {
        "changed": changed,
        "queue_url": queue_url,
        "action": action,
        "visibility_timeout": visibility_timeout,
        "receipt_handle_stale": stale_reason is not None,
        "stale_reason": stale_reason,
    }


def delete_message(client, queue_url, receipt_handle, check_mode=False):
    """Delete one message by receipt handle. An already deleted, invalid or expired handle is
    ``changed=False`` with ``receipt_handle_stale=True``, not an error."""
    validate(queue_url, receipt_handle, "delete")
    if check_mode:
        _check_queue(client, queue_url)
        return _result(True, queue_url, "delete")
    reason = _change_visibility(client, queue_url, receipt_handle, PROBE_VISIBILITY_TIMEOUT)
    if reason is None:
        # The handle may expire between the two calls (a visibility timeout running out); SQS still
        # deletes with the latest handle, and a refusal here is reported like one at the check.
        reason = _delete(client, queue_url, receipt_handle)
    return _result(reason is None, queue_url, "delete", stale_reason=reason)


def extend_visibility(client, queue_url, receipt_handle, visibility_timeout, check_mode=False):
    """Keep a message invisible for ``visibility_timeout`` more seconds (0 makes it visible now)."""
    validate(queue_url, receipt_handle, "extend", visibility_timeout)
    if check_mode:
        _check_queue(client, queue_url)
        return _result(True, queue_url, "extend", visibility_timeout)
    reason = _change_visibility(client, queue_url, receipt_handle, visibility_timeout)
    return _result(reason is None, queue_url, "extend", visibility_timeout, stale_reason=reason)


def acknowledge(client, queue_url, receipt_handle, action="delete", visibility_timeout=None, check_mode=False):
    """What the module does: ``action`` is delete or extend."""
    validate(queue_url, receipt_handle, action, visibility_timeout)
    if action == "delete":
        return delete_message(client, queue_url, receipt_handle, check_mode=check_mode)
    return extend_visibility(client, queue_url, receipt_handle, visibility_timeout, check_mode=check_mode)
