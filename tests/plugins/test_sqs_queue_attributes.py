"""module_utils/sqs_attributes.py and the sqs_queue_attributes module against the in-process AWS server.

As in test_eks_access.py, the client is wrapped exactly as AnsibleAWSModule.client(retry_decorator=...)
wraps it, and every operation it sends is recorded from botocore's event hooks: that is how
"no call", "no mutating call" and "only the differing attributes" are checked. A second, plain
client reads the server independently of the code under test.

The emulator is moto's SQS. It keeps SqsManagedSseEnabled (default "true", as on AWS since 2022),
so SSE-SQS is tested end to end. It does not keep RedriveAllowPolicy, so that attribute is only
tested through its normalisation.
"""
import ast
import json
import uuid

import pytest
import yaml
from botocore.exceptions import ClientError

from ansible_collections.eks_autoscaling.core.plugins.module_utils import sqs_attributes
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_attributes import SqsAttributesError

from tests.conftest import COLLECTIONS, REGION

# pytest finds fixtures by name in the test module: importing them shares the ansible-playbook runner.
from .test_eks_access_playbook import connection, run_module, run_play  # noqa: F401

MODULE = "sqs_queue_attributes"
COLLECTION_DIR = COLLECTIONS / "ansible_collections" / "eks_autoscaling" / "core"
MODULE_PATH = COLLECTION_DIR / "plugins" / "modules" / f"{MODULE}.py"


def sent_attributes(recorder):
    """The Attributes of every SetQueueAttributes call the recorder saw."""
    return [dict(params["Attributes"]) for name, params in recorder.params if name == "SetQueueAttributes"]


recorder = pytest.fixture(lambda aws_recorder: aws_recorder("sqs"))
raw_sqs = pytest.fixture(lambda boto_client: boto_client("sqs"))


@pytest.fixture
def make_queue(raw_sqs):
    """A queue of its own for each test, SSE-SQS off so that turning it on is a change."""

    def _make(fifo=False, **attributes):
        name = f"unit-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
        attributes = {"SqsManagedSseEnabled": "false", **attributes}
        if fifo:
            attributes["FifoQueue"] = "true"
        url = raw_sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return name, url

    return _make


def server_attributes(raw_sqs, url):
    return raw_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def policy_for(arn, principal="events.amazonaws.com"):
    return {
        "Version": "2012-10-17",
        "Id": "EC2InterruptionPolicy",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": [principal, "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": arn,
            }
        ],
    }


def arn_of(name):
    return f"arn:aws:sqs:{REGION}:123456789012:{name}"


# -- validation and normalisation, before any call ------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SqsManagedSseEnabled", True, True),
        ("SqsManagedSseEnabled", "true", True),
        ("SqsManagedSseEnabled", "False", False),
        ("SqsManagedSseEnabled", "yes", True),
        ("MessageRetentionPeriod", 300, 300),
        ("MessageRetentionPeriod", "300", 300),
        ("MessageRetentionPeriod", 300.0, 300),
        ("Policy", '{ "b": 1,\n  "a": [2] }', {"a": [2], "b": 1}),
        ("Policy", {"a": 1}, {"a": 1}),
        ("Policy", "", None),
        ("Policy", None, None),
        ("RedrivePolicy", '{"deadLetterTargetArn": "arn", "maxReceiveCount": "5"}', {"deadLetterTargetArn": "arn", "maxReceiveCount": 5}),
        ("RedriveAllowPolicy", {"redrivePermission": "allowAll"}, {"redrivePermission": "allowAll"}),
        ("KmsMasterKeyId", "alias/aws/sqs", "alias/aws/sqs"),
        ("KmsMasterKeyId", "", None),
        ("DeduplicationScope", "messageGroup", "messageGroup"),
    ],
)
def test_values_are_normalised_the_way_sqs_stores_them(name, value, expected):
    assert sqs_attributes.normalise_value(name, value) == expected


def test_get_queue_attributes_answer_is_normalised_to_configuration_only():
    raw = {
        "ApproximateNumberOfMessages": "3",
        "CreatedTimestamp": "1700000000",
        "QueueArn": "arn:aws:sqs:ap-southeast-1:123456789012:q",
        "MessageRetentionPeriod": "300",
        "SqsManagedSseEnabled": "true",
        "Policy": '{"Version":"2012-10-17","Statement":[]}',
        "RedrivePolicy": '{"deadLetterTargetArn":"arn","maxReceiveCount":5}',
        "FifoQueue": "true",
    }
    assert sqs_attributes.normalise_queue_attributes(raw) == {
        "MessageRetentionPeriod": 300,
        "SqsManagedSseEnabled": True,
        "Policy": {"Version": "2012-10-17", "Statement": []},
        "RedrivePolicy": {"deadLetterTargetArn": "arn", "maxReceiveCount": 5},
        "FifoQueue": True,
    }


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"VisibilityTimeout": "30s"}, "^SQS attribute VisibilityTimeout must be a whole number"),
        ({"VisibilityTimeout": True}, "^SQS attribute VisibilityTimeout must be a whole number"),
        ({"DelaySeconds": -1}, "^SQS attribute DelaySeconds must be a whole number"),
        ({"DelaySeconds": None}, "^SQS attribute DelaySeconds must be set"),
        ({"SqsManagedSseEnabled": "maybe"}, "^SQS attribute SqsManagedSseEnabled must be a boolean"),
        ({"Policy": "{not json"}, "^SQS attribute Policy is not valid JSON"),
        ({"RedrivePolicy": "[1, 2]"}, "^SQS attribute RedrivePolicy must be a JSON object"),
        ({"FifoThroughputLimit": "fast"}, "^SQS attribute FifoThroughputLimit must be one of perQueue, perMessageGroupId"),
        ({"KmsMasterKeyId": {"id": "x"}}, "^SQS attribute KmsMasterKeyId must be a string"),
    ],
)
def test_bad_values_are_refused_naming_the_attribute(attributes, message):
    with pytest.raises(SqsAttributesError, match=message):
        sqs_attributes.normalise_attributes(attributes)


@pytest.mark.parametrize("queue", ["", "has space", "x" * 81, "name.fifo.txt", "https://sqs.ap-southeast-1.amazonaws.com/1/bad name"])
def test_bad_queue_names_name_the_option(queue):
    with pytest.raises(SqsAttributesError, match="^queue must be an SQS queue name"):
        sqs_attributes.validate_queue(queue)


def test_unknown_and_read_only_attributes_are_refused_before_any_call(recorder, make_queue):
    name, _ = make_queue()
    recorder.calls.clear()
    with pytest.raises(SqsAttributesError, match=r"^Unknown SQS attribute 'Colour' \(settable attributes: ContentBasedDeduplication"):
        sqs_attributes.ensure_queue_attributes(recorder.client, name, {"Colour": "blue"})
    with pytest.raises(SqsAttributesError, match="^Unknown SQS attribute 'sqs_managed_sse_enabled'; did you mean SqsManagedSseEnabled?"):
        sqs_attributes.ensure_queue_attributes(recorder.client, name, {"sqs_managed_sse_enabled": True})
    with pytest.raises(SqsAttributesError, match="^SQS attribute FifoQueue cannot be changed"):
        sqs_attributes.ensure_queue_attributes(recorder.client, name, {"FifoQueue": True}, check_mode=True)
    with pytest.raises(SqsAttributesError, match="^Unknown SQS attribute 'QueueArn'"):
        sqs_attributes.ensure_queue_attributes(recorder.client, name, {"QueueArn": "arn"})
    assert recorder.calls == []


def test_sse_sqs_together_with_a_kms_key_is_refused_before_any_call(recorder, make_queue):
    name, _ = make_queue()
    recorder.calls.clear()
    for sse in (True, "true"):
        with pytest.raises(SqsAttributesError, match=r"^SQS attribute SqsManagedSseEnabled=true cannot be combined with KmsMasterKeyId \(alias/aws/sqs\)"):
            sqs_attributes.ensure_queue_attributes(
                recorder.client, name, {"SqsManagedSseEnabled": sse, "KmsMasterKeyId": "alias/aws/sqs"}, check_mode=True
            )
    assert recorder.calls == []
    # Each kind alone, or SSE-SQS with the KMS key cleared, is a valid request.
    sqs_attributes.normalise_attributes({"SqsManagedSseEnabled": False, "KmsMasterKeyId": "alias/aws/sqs"})
    sqs_attributes.normalise_attributes({"SqsManagedSseEnabled": True, "KmsMasterKeyId": ""})


# -- against the emulator ---------------------------------------------------------------------------------
def test_sse_retention_and_policy_are_set_then_idempotent(recorder, client, raw_sqs, make_queue):
    name, url = make_queue()
    wanted = {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 300, "Policy": policy_for(arn_of(name))}
    recorder.calls.clear()

    changed, state = sqs_attributes.ensure_queue_attributes(client, name, wanted)
    assert changed is True
    server = server_attributes(raw_sqs, url)
    # The emulator keeps SqsManagedSseEnabled, so this is the real round trip, not the default.
    assert server["SqsManagedSseEnabled"] == "true"
    assert server["MessageRetentionPeriod"] == "300"
    assert json.loads(server["Policy"]) == policy_for(arn_of(name))
    assert recorder.calls == ["GetQueueUrl", "GetQueueAttributes", "SetQueueAttributes"]
    assert sent_attributes(recorder) == [
        {"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": "300", "Policy": json.dumps(policy_for(arn_of(name)), separators=(",", ":"))}
    ]
    assert state["queue_url"] == url and state["queue_arn"] == arn_of(name)
    assert state["attributes"]["SqsManagedSseEnabled"] is True
    assert state["attributes"]["MessageRetentionPeriod"] == 300
    assert state["attributes"]["Policy"] == policy_for(arn_of(name))
    assert state["attributes"] == sqs_attributes.normalise_queue_attributes(server)

    recorder.calls.clear()
    changed, again = sqs_attributes.ensure_queue_attributes(
        client, name, {"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": "300", "Policy": json.dumps(policy_for(arn_of(name)))}
    )
    assert changed is False
    assert again == state
    assert recorder.mutating_calls() == []


def test_policy_in_another_key_order_and_layout_is_not_a_change(recorder, client, raw_sqs, make_queue):
    name, url = make_queue()
    # Written by someone else, pretty-printed with sorted keys: same document, different text.
    raw_sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy_for(arn_of(name)), indent=4, sort_keys=True)})
    reordered = {
        "Statement": [
            {
                "Resource": arn_of(name),
                "Action": "sqs:SendMessage",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Effect": "Allow",
            }
        ],
        "Id": "EC2InterruptionPolicy",
        "Version": "2012-10-17",
    }
    recorder.calls.clear()
    for given in (reordered, json.dumps(reordered), json.dumps(reordered, indent=2)):
        changed, state = sqs_attributes.ensure_queue_attributes(client, url, {"Policy": given})
        assert changed is False
        assert state["attributes"]["Policy"] == policy_for(arn_of(name))
    assert recorder.mutating_calls() == []

    # A real difference (another principal) is one.
    changed, _ = sqs_attributes.ensure_queue_attributes(client, url, {"Policy": policy_for(arn_of(name), "sns.amazonaws.com")})
    assert changed is True
    assert json.loads(server_attributes(raw_sqs, url)["Policy"]) == policy_for(arn_of(name), "sns.amazonaws.com")


def test_only_differing_attributes_are_sent(recorder, client, raw_sqs, make_queue):
    name, url = make_queue(MessageRetentionPeriod="300", VisibilityTimeout="60")
    recorder.calls.clear()
    changed, state = sqs_attributes.ensure_queue_attributes(
        client, name, {"MessageRetentionPeriod": 300, "VisibilityTimeout": "60", "SqsManagedSseEnabled": True, "DelaySeconds": 5}
    )
    assert changed is True
    assert sent_attributes(recorder) == [{"SqsManagedSseEnabled": "true", "DelaySeconds": "5"}]
    server = server_attributes(raw_sqs, url)
    assert (server["SqsManagedSseEnabled"], server["DelaySeconds"], server["MessageRetentionPeriod"]) == ("true", "5", "300")
    assert state["attributes"] == sqs_attributes.normalise_queue_attributes(server)


def test_check_mode_reports_but_changes_nothing(recorder, raw_sqs, make_queue):
    name, url = make_queue()
    before = server_attributes(raw_sqs, url)
    recorder.calls.clear()
    wanted = {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 300, "Policy": policy_for(arn_of(name))}
    changed, planned = sqs_attributes.ensure_queue_attributes(recorder.client, name, wanted, check_mode=True)
    assert changed is True
    assert planned["attributes"]["SqsManagedSseEnabled"] is True
    assert planned["attributes"]["MessageRetentionPeriod"] == 300
    assert planned["attributes"]["Policy"] == policy_for(arn_of(name))
    # Attributes not asked for are carried over as the queue has them.
    assert planned["attributes"]["VisibilityTimeout"] == 30
    assert recorder.mutating_calls() == []
    assert server_attributes(raw_sqs, url) == before


def test_queue_by_url_and_by_name_is_the_same_queue(recorder, client, make_queue):
    name, url = make_queue()
    by_name = sqs_attributes.get_queue(client, name)
    recorder.calls.clear()
    by_url = sqs_attributes.get_queue(client, url)
    assert by_url == by_name
    assert by_url["queue_url"] == url and by_url["queue_arn"] == arn_of(name)
    # A URL needs no GetQueueUrl.
    assert recorder.calls == ["GetQueueAttributes"]

    changed, _ = sqs_attributes.ensure_queue_attributes(client, url, {"SqsManagedSseEnabled": True})
    assert changed is True
    changed, _ = sqs_attributes.ensure_queue_attributes(client, name, {"SqsManagedSseEnabled": True})
    assert changed is False


def test_missing_queue_is_a_clear_error(recorder, client, make_queue):
    _, url = make_queue()
    missing_url = url.rsplit("/", 1)[0] + "/no-such-queue"
    for queue, check_mode in (("no-such-queue", False), ("no-such-queue", True), (missing_url, False)):
        with pytest.raises(SqsAttributesError) as caught:
            sqs_attributes.ensure_queue_attributes(client, queue, {"SqsManagedSseEnabled": True}, check_mode=check_mode)
        assert caught.value.message == (
            f"SQS queue {queue!r} does not exist in {REGION} (this module does not create queues)"
        )
        # The botocore error travels along for fail_json_aws to report.
        assert isinstance(caught.value.exception, ClientError)
        assert caught.value.exception.response["Error"]["Code"] in sqs_attributes.MISSING_QUEUE_CODES
    assert recorder.mutating_calls() == []


def test_redrive_policy_with_a_string_count_is_idempotent(recorder, client, raw_sqs, make_queue):
    dlq_name, _ = make_queue()
    name, url = make_queue()
    given = json.dumps({"maxReceiveCount": "3", "deadLetterTargetArn": arn_of(dlq_name)})
    changed, state = sqs_attributes.ensure_queue_attributes(client, name, {"RedrivePolicy": given})
    assert changed is True
    assert json.loads(server_attributes(raw_sqs, url)["RedrivePolicy"]) == {"deadLetterTargetArn": arn_of(dlq_name), "maxReceiveCount": 3}
    assert state["attributes"]["RedrivePolicy"] == {"deadLetterTargetArn": arn_of(dlq_name), "maxReceiveCount": 3}

    recorder.calls.clear()
    for same in (given, {"deadLetterTargetArn": arn_of(dlq_name), "maxReceiveCount": 3}):
        changed, _ = sqs_attributes.ensure_queue_attributes(client, name, {"RedrivePolicy": same})
        assert changed is False
    assert recorder.mutating_calls() == []


def test_empty_string_removes_a_policy(recorder, client, raw_sqs, make_queue):
    name, url = make_queue()
    sqs_attributes.ensure_queue_attributes(client, name, {"Policy": policy_for(arn_of(name))})
    recorder.params.clear()
    changed, state = sqs_attributes.ensure_queue_attributes(client, name, {"Policy": ""})
    assert changed is True
    assert sent_attributes(recorder) == [{"Policy": ""}]
    assert "Policy" not in server_attributes(raw_sqs, url)
    assert "Policy" not in state["attributes"]
    for cleared in ("", None):
        changed, _ = sqs_attributes.ensure_queue_attributes(client, name, {"Policy": cleared})
        assert changed is False


def test_fifo_attributes_need_a_fifo_queue(recorder, client, raw_sqs, make_queue):
    name, _ = make_queue()
    recorder.calls.clear()
    with pytest.raises(SqsAttributesError, match=f"^SQS attribute ContentBasedDeduplication only applies to FIFO queues; queue '{name}'"):
        sqs_attributes.ensure_queue_attributes(client, name, {"ContentBasedDeduplication": True})
    assert recorder.mutating_calls() == []

    fifo_name, fifo_url = make_queue(fifo=True)
    wanted = {"ContentBasedDeduplication": "yes", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"}
    changed, state = sqs_attributes.ensure_queue_attributes(client, fifo_name, wanted)
    assert changed is True
    server = server_attributes(raw_sqs, fifo_url)
    assert (server["ContentBasedDeduplication"], server["DeduplicationScope"], server["FifoThroughputLimit"]) == (
        "true",
        "messageGroup",
        "perMessageGroupId",
    )
    assert state["attributes"]["FifoQueue"] is True
    changed, _ = sqs_attributes.ensure_queue_attributes(client, fifo_name, wanted)
    assert changed is False


def test_api_errors_carry_the_botocore_error(client, raw_sqs, make_queue):
    # The queue goes away between the read and the write: the write fails, as on SQS.
    name, url = make_queue()
    current = sqs_attributes.get_queue(client, name)
    raw_sqs.delete_queue(QueueUrl=url)
    with pytest.raises(SqsAttributesError, match="^Failed to set SQS queue attributes") as caught:
        sqs_attributes.ensure_queue_attributes(client, name, {"SqsManagedSseEnabled": True}, current=current)
    assert isinstance(caught.value.exception, ClientError)


def test_result_has_url_arn_attributes_and_diff():
    before = {"queue_url": "u", "queue_arn": "a", "attributes": {"SqsManagedSseEnabled": False}}
    after = {"queue_url": "u", "queue_arn": "a", "attributes": {"SqsManagedSseEnabled": True}}
    assert sqs_attributes.module_result(True, before, after) == {
        "changed": True,
        "queue_url": "u",
        "queue_arn": "a",
        "attributes": {"SqsManagedSseEnabled": True},
        "diff": {"before": {"SqsManagedSseEnabled": False}, "after": {"SqsManagedSseEnabled": True}},
    }


# -- the module: thin, documented, in the action group ------------------------------------------------------
def test_module_documentation_is_valid_yaml():
    tree = ast.parse(MODULE_PATH.read_text())
    blocks = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
    }
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation["module"] == MODULE
    assert documentation["author"] == ["Karpenter HPA EKS contributors (!UNKNOWN)"]
    assert "amazon.aws.boto3" in documentation["extends_documentation_fragment"]
    assert set(documentation["options"]) == {"queue", "attributes"}
    assert isinstance(yaml.safe_load(blocks["EXAMPLES"]), list)
    assert set(yaml.safe_load(blocks["RETURN"])) == {"queue_url", "queue_arn", "attributes", "diff"}


# -- end to end through ansible-playbook ----------------------------------------------------------------------
def test_sqs_queue_attributes_module(run_module, raw_sqs, make_queue):
    """--check, apply, --check again, apply again: only the apply changes the queue, and only once."""
    name, url = make_queue()
    args = {
        "queue": name,
        "attributes": {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 300, "Policy": policy_for(arn_of(name))},
    }
    before = server_attributes(raw_sqs, url)

    result = run_module(MODULE, args, check=True, diff=True)
    assert result["changed"] is True, result
    assert result["diff"]["before"]["SqsManagedSseEnabled"] is False
    assert result["diff"]["after"]["SqsManagedSseEnabled"] is True
    assert result["diff"]["after"]["MessageRetentionPeriod"] == 300
    assert server_attributes(raw_sqs, url) == before

    result = run_module(MODULE, args)
    assert result["changed"] is True, result
    applied = server_attributes(raw_sqs, url)
    assert applied["SqsManagedSseEnabled"] == "true" and applied["MessageRetentionPeriod"] == "300"
    assert json.loads(applied["Policy"]) == policy_for(arn_of(name))
    assert result["queue_url"] == url and result["queue_arn"] == arn_of(name)
    assert result["attributes"] == sqs_attributes.normalise_queue_attributes(applied)

    result = run_module(MODULE, args, check=True)
    assert result["changed"] is False, result
    assert server_attributes(raw_sqs, url) == applied

    # By URL, and the policy as a JSON string with its keys in another order: still the same queue state.
    again = {"queue": url, "attributes": {**args["attributes"], "Policy": json.dumps(policy_for(arn_of(name)), sort_keys=True)}}
    result = run_module(MODULE, again)
    assert result["changed"] is False, result
    assert server_attributes(raw_sqs, url) == applied


def test_sqs_queue_attributes_module_errors(run_module, make_queue):
    result = run_module(MODULE, {"queue": "no-such-queue", "attributes": {"SqsManagedSseEnabled": True}})
    assert result["failed"] is True
    # fail_json_aws appends the AWS error message to ours.
    assert result["msg"].startswith(f"SQS queue 'no-such-queue' does not exist in {REGION} (this module does not create queues)")
    assert result["error"]["code"] in sqs_attributes.MISSING_QUEUE_CODES

    name, _ = make_queue()
    result = run_module(MODULE, {"queue": name, "attributes": {"SqsManagedSseEnabled": True, "KmsMasterKeyId": "alias/aws/sqs"}})
    assert result["failed"] is True
    assert result["msg"].startswith("SQS attribute SqsManagedSseEnabled=true cannot be combined with KmsMasterKeyId")
