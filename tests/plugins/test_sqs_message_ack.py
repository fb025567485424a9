"""module_utils/sqs_messages.py and the sqs_message_ack module against the in-process AWS server.

As in test_sqs_queue_attributes.py, the client is wrapped the way AnsibleAWSModule.client wraps it
and records what it sends, so check mode can be shown to send nothing that changes a message; a
separate plain client receives messages and reads the queue.
"""
import ast
import uuid

import pytest
import yaml

from ansible_collections.eks_autoscaling.core.plugins.module_utils import sqs_messages
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_messages import SqsMessagesError

from tests.conftest import COLLECTIONS

# pytest finds fixtures by name in the test module: importing them shares the ansible-playbook runner.
from .test_eks_access_playbook import connection, run_module, run_play  # noqa: F401

MODULE = "sqs_message_ack"
MODULE_PATH = COLLECTIONS / "ansible_collections" / "eks_autoscaling" / "core" / "plugins" / "modules" / f"{MODULE}.py"


recorder = pytest.fixture(lambda aws_recorder: aws_recorder("sqs"))
raw_sqs = pytest.fixture(lambda boto_client: boto_client("sqs"))


@pytest.fixture
def received(raw_sqs):
    """A queue with one message, received (in flight) with a 60 s visibility timeout: (url, handle)."""
    url = raw_sqs.create_queue(QueueName=f"ack-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    raw_sqs.send_message(QueueUrl=url, MessageBody='{"detail-type": "x"}')
    (message,) = raw_sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"]
    return url, message["ReceiptHandle"]


def counts(raw_sqs, url):
    attributes = raw_sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_delete_then_delete_again(client, raw_sqs, received):
    url, handle = received
    result = sqs_messages.delete_message(client, url, handle)
    assert result == {
        "changed": True,
        "queue_url": url,
        "action": "delete",
        "visibility_timeout": None,
        "receipt_handle_stale": False,
        "stale_reason": None,
    }
    assert counts(raw_sqs, url) == (0, 0)

    again = sqs_messages.delete_message(client, url, handle)
    assert again["changed"] is False and again["receipt_handle_stale"] is True
    assert again["stale_reason"].startswith("ReceiptHandleIsInvalid")


def test_invalid_handle_is_stale_not_a_failure(recorder, client, received):
    url, _ = received
    result = sqs_messages.acknowledge(client, url, "not-a-receipt-handle")
    assert (result["changed"], result["receipt_handle_stale"]) == (False, True)
    assert "DeleteMessage" not in recorder.calls


def test_check_mode_touches_nothing(recorder, client, raw_sqs, received):
    url, handle = received
    recorder.calls.clear()
    result = sqs_messages.acknowledge(client, url, handle, check_mode=True)
    assert result["changed"] is True and result["receipt_handle_stale"] is False
    result = sqs_messages.acknowledge(client, url, handle, action="extend", visibility_timeout=0, check_mode=True)
    assert result["changed"] is True and result["visibility_timeout"] == 0
    assert recorder.mutating_calls() == []
    assert counts(raw_sqs, url) == (0, 1)


def test_check_mode_still_finds_a_missing_queue(client, received):
    url, handle = received
    missing = url.rsplit("/", 1)[0] + "/no-such-queue"
    with pytest.raises(SqsMessagesError, match=f"^SQS queue '{missing}' does not exist"):
        sqs_messages.acknowledge(client, missing, handle, check_mode=True)
    with pytest.raises(SqsMessagesError, match=f"^SQS queue '{missing}' does not exist"):
        sqs_messages.acknowledge(client, missing, handle)


def test_extend_changes_visibility(client, raw_sqs, received):
    url, handle = received
    result = sqs_messages.acknowledge(client, url, handle, action="extend", visibility_timeout=0)
    assert (result["changed"], result["action"], result["visibility_timeout"]) == (True, "extend", 0)
    # Visible again at once: handed back for redelivery.
    assert counts(raw_sqs, url) == (1, 0)

    (message,) = raw_sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"]
    sqs_messages.delete_message(client, url, message["ReceiptHandle"])
    result = sqs_messages.acknowledge(client, url, message["ReceiptHandle"], action="extend", visibility_timeout=30)
    assert (result["changed"], result["receipt_handle_stale"]) == (False, True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"queue_url": "eksworkshop"}, "^queue_url must be an SQS queue URL"),
        ({"queue_url": "https://sqs.ap-southeast-1.amazonaws.com/"}, "^queue_url must be an SQS queue URL"),
        ({"receipt_handle": " "}, "^receipt_handle must be the receipt handle"),
        ({"action": "extend"}, "^visibility_timeout is required with action=extend"),
        ({"action": "extend", "visibility_timeout": 43201}, "^visibility_timeout must be a whole number of seconds from 0 to 43200"),
        ({"action": "purge"}, "^action must be one of delete, extend"),
    ],
)
def test_bad_input_is_refused_before_any_call(recorder, args, message):
    call = {"queue_url": "https://sqs.ap-southeast-1.amazonaws.com/123456789012/q", "receipt_handle": "rh", **args}
    with pytest.raises(SqsMessagesError, match=message):
        sqs_messages.acknowledge(recorder.client, **call)
    assert recorder.calls == []


def test_module_documentation_is_valid_yaml():
    blocks = {
        node.targets[0].id: node.value.value
        for node in ast.parse(MODULE_PATH.read_text()).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
    }
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation["module"] == MODULE
    assert set(documentation["options"]) == {"queue_url", "receipt_handle", "action", "visibility_timeout"}
    assert documentation["options"]["action"]["choices"] == list(sqs_messages.ACTIONS)
    assert set(yaml.safe_load(blocks["RETURN"])) == {"queue_url", "action", "visibility_timeout", "receipt_handle_stale", "stale_reason"}


def test_sqs_message_ack_module(run_module, raw_sqs, received):
    """--check, delete, delete again, through ansible-playbook."""
    url, handle = received
    args = {"queue_url": url, "receipt_handle": handle}

    result = run_module(MODULE, args, check=True)
    assert result["changed"] is True, result
    assert counts(raw_sqs, url) == (0, 1)

    result = run_module(MODULE, args)
    assert (result["changed"], result["receipt_handle_stale"]) == (True, False), result
    assert counts(raw_sqs, url) == (0, 0)

    result = run_module(MODULE, args)
    assert (result["changed"], result["receipt_handle_stale"]) == (False, True), result
    assert not result.get("failed")

    result = run_module(MODULE, {**args, "action": "extend"})
    assert result["failed"] is True
    assert "visibility_timeout" in result["msg"]
