"""The sqs_events event source's parsing (module_utils/sqs_event_parsing.py): every body AWS delivers into
one event shape, and every body of the wrong shape malformed, with a reason short enough for a log line.

Pure functions, tested without a queue. The bodies are built as AWS delivers them, with lab/events.py;
test_sqs_event_source.py and test_sqs_event_source_fuzz.py send the same bodies through the running source.
"""
import datetime
import json
import time
import uuid

import pytest

from ansible_collections.eks_autoscaling.core.plugins.module_utils import sqs_event_parsing
from lab import events as lab_events

from tests.conftest import REGION

ACCOUNT = "123456789012"
EVENT_KEYS = {
    "sqs", "kind", "source", "detail_type", "account", "region", "time", "instance_id", "instance_ids",
    "instance_type", "instance_action", "state", "alarm_name", "new_state", "budget_name", "dedup_key", "batch", "detail",
    "body",
}
SQS_KEYS = {"queue_url", "region", "message_id", "receipt_handle", "receive_count", "sent_timestamp", "acked_by_source"}


# -- bodies as AWS delivers them, built with lab/events.py ------------------------------------------------
NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.timezone.utc)


def eventbridge_body(kind, instance_id, zone="ap-southeast-1a", **kwargs):
    """What an EventBridge rule puts in an SQS queue for one lab event."""
    entry = lab_events.ec2_event(kind, instance_id, ACCOUNT, zone, now=NOW, **kwargs)
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": ACCOUNT,
            "time": "2026-11-27T12:00:00Z",
            "region": REGION,
            "resources": entry["Resources"],
            "detail": json.loads(entry["Detail"]),
        }
    )


def sns_body(subject, message, topic="arn:aws:sns:us-east-1:123456789012:billing"):
    """The SNS envelope an SQS subscription receives without raw message delivery."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Subject": subject,
            "Message": message,
            "Timestamp": "2026-11-27T12:00:00.000Z",
            "SignatureVersion": "1",
        }
    )


def alarm_body(name, state, raw=False):
    subject, message = lab_events.alarm_message(name, state, ACCOUNT)
    return message if raw else sns_body(subject, message)


def budget_body(name, as_json=False, raw=False):
    subject, message = lab_events.budget_message(name, ACCOUNT, as_json=as_json)
    return message if raw else sns_body(subject, message)


def spot_body(instance_id):
    return eventbridge_body("spot-interruption", instance_id)


CLOUDWATCH_EVENT = json.dumps(
    {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": "2026-11-27T12:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:cpu-high"],
        "detail": {"alarmName": "cpu-high", "state": {"value": "ALARM", "reason": "Threshold Crossed"}},
    }
)

# (id, body, expected subset of the event)
PARSE_CASES = [
    (
        "spot-interruption",
        eventbridge_body("spot-interruption", "i-0aaa0000000000000", zone="ap-southeast-1b"),
        {
            "kind": "spot_interruption",
            "source": "aws.ec2",
            "detail_type": "EC2 Spot Instance Interruption Warning",
            "account": ACCOUNT,
            "region": REGION,
            "instance_id": "i-0aaa0000000000000",
            "instance_ids": ["i-0aaa0000000000000"],
            "instance_action": "terminate",
            "instance_type": None,
            "state": None,
            "dedup_key": "spot_interruption:instance:i-0aaa0000000000000",
        },
    ),
    (
        "capacity-reservation-interruption",
        eventbridge_body("capacity-reservation-interruption", "i-0aab0000000000000", zone_id="apse1-az1"),
        {
            "kind": "capacity_reservation_interruption",
            "source": "aws.ec2",
            "detail_type": "EC2 Capacity Reservation Instance Interruption Warning",
            "account": ACCOUNT,
            "region": REGION,
            "instance_id": "i-0aab0000000000000",
            "instance_ids": ["i-0aab0000000000000"],
            "instance_action": "terminate",
            "instance_type": None,
            "state": None,
            "dedup_key": "capacity_reservation_interruption:instance:i-0aab0000000000000",
            "detail": {"instance-id": "i-0aab0000000000000", "instance-action": "terminate",
                       "instance-termination-time": "2026-11-27T12:02:00Z", "azId": "apse1-az1"},
        },
    ),
    (
        "capacity-reservation-from-resources-only",
        json.dumps(
            {
                "detail-type": "EC2 Capacity Reservation Instance Interruption Warning",
                "source": "aws.ec2",
                "resources": [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0aac0000000000000"],
                "detail": {"instance-action": "terminate"},
            }
        ),
        {"kind": "capacity_reservation_interruption", "instance_ids": ["i-0aac0000000000000"], "account": ACCOUNT},
    ),
    (
        "rebalance-recommendation",
        eventbridge_body("rebalance-recommendation", "i-0bbb0000000000000"),
        {"kind": "rebalance_recommendation", "instance_id": "i-0bbb0000000000000", "dedup_key": "rebalance_recommendation:instance:i-0bbb0000000000000", "instance_action": None},
    ),
    (
        "instance-state-change",
        eventbridge_body("instance-state-change", "i-0ccc0000000000000", state="stopping"),
        {
            "kind": "instance_state_change",
            "detail_type": "EC2 Instance State-change Notification",
            "instance_id": "i-0ccc0000000000000",
            "state": "stopping",
            "dedup_key": "instance_state_change:stopping:instance:i-0ccc0000000000000",
        },
    ),
    (
        "scheduled-change",
        eventbridge_body("scheduled-change", "i-0ddd0000000000000"),
        {
            "kind": "scheduled_change",
            "source": "aws.health",
            "detail_type": "AWS Health Event",
            "instance_id": "i-0ddd0000000000000",
            "instance_ids": ["i-0ddd0000000000000"],
            "dedup_key": "scheduled_change:instance:i-0ddd0000000000000",
        },
    ),
    (
        "instance-type-when-present",
        json.dumps(
            {
                "detail-type": "EC2 Spot Instance Interruption Warning",
                "source": "aws.ec2",
                "resources": [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0eee0000000000000"],
                "detail": {"instance-id": "i-0eee0000000000000", "instance-action": "stop", "instance-type": "m5.large"},
            }
        ),
        {"kind": "spot_interruption", "instance_type": "m5.large", "instance_action": "stop", "account": ACCOUNT, "region": None},
    ),
    (
        "billing-alarm-sns",
        alarm_body("eksworkshop-billing", "ALARM"),
        {
            "kind": "alarm",
            "source": "aws.cloudwatch",
            "detail_type": "CloudWatch Alarm State Change",
            "account": ACCOUNT,
            "region": "us-east-1",
            "alarm_name": "eksworkshop-billing",
            "new_state": "ALARM",
        },
    ),
    (
        "billing-alarm-ok-sns",
        alarm_body("eksworkshop-billing", "OK"),
        {"kind": "alarm", "new_state": "OK"},
    ),
    ("billing-alarm-raw", alarm_body("bill", "ALARM", raw=True), {"kind": "alarm", "alarm_name": "bill", "region": "us-east-1"}),
    (
        "alarm-eventbridge",
        CLOUDWATCH_EVENT,
        {"kind": "alarm", "alarm_name": "cpu-high", "new_state": "ALARM"},
    ),
    (
        "budget-text-sns",
        budget_body("eks-monthly"),
        {
            "kind": "budget",
            "source": "aws.budgets",
            "detail_type": "AWS Budget Notification",
            "budget_name": "eks-monthly",
            "account": ACCOUNT,
            "region": "us-east-1",
            "dedup_key": "budget:eks-monthly",
        },
    ),
    ("budget-json-sns", budget_body("eks-monthly", as_json=True), {"kind": "budget", "budget_name": "eks-monthly", "account": ACCOUNT}),
    ("budget-text-raw", budget_body("team budget", raw=True), {"kind": "budget", "budget_name": "team budget", "region": None}),
    (
        "budget-from-subject-only",
        sns_body("AWS Budgets: ops has exceeded your alert threshold", "Your budget has exceeded its threshold."),
        {"kind": "budget", "budget_name": "ops"},
    ),
    ("empty-object", "{}", {"kind": "unknown", "body": {}}),
    ("sns-other-text", sns_body("hello", "hello world"), {"kind": "unknown", "source": "aws.sns"}),
    (
        "ec2-other-detail-type",
        json.dumps({"detail-type": "EC2 AMI State Change", "source": "aws.ec2", "detail": {}}),
        {"kind": "unknown", "source": "aws.ec2", "detail_type": "EC2 AMI State Change", "dedup_key": None},
    ),
    (
        "health-issue",
        json.dumps({"detail-type": "AWS Health Event", "source": "aws.health", "detail": {"eventTypeCategory": "issue"}}),
        {"kind": "unknown", "source": "aws.health"},
    ),
    (
        "health-scheduled-change-of-another-service",
        json.dumps({"detail-type": "AWS Health Event", "source": "aws.health", "resources": ["vol-0123abcd"],
                    "detail": {"eventTypeCategory": "scheduledChange", "service": "EBS", "affectedEntities": [{"entityValue": "vol-0123abcd"}]}}),
        {"kind": "unknown", "instance_ids": []},
    ),
    (
        "health-scheduled-change-of-several-instances",
        json.dumps({"detail-type": "AWS Health Event", "source": "aws.health", "resources": [],
                    "detail": {"eventTypeCategory": "scheduledChange", "affectedEntities": [
                        {"entityValue": "i-0123abcd"}, {"entityValue": "i-0123456789abcdef0"}, {"entityValue": "i-0123abcd"}]}}),
        {"kind": "scheduled_change", "instance_ids": ["i-0123abcd", "i-0123456789abcdef0"],
         "dedup_key": "scheduled_change:instance:i-0123456789abcdef0,i-0123abcd"},
    ),
    (
        "short-instance-id",
        eventbridge_body("spot-interruption", "i-0a1b2c3d"),
        {"kind": "spot_interruption", "instance_ids": ["i-0a1b2c3d"]},
    ),
    ("insufficient-data-alarm", alarm_body("bill", "INSUFFICIENT_DATA"), {"kind": "alarm", "new_state": "INSUFFICIENT_DATA"}),
]


def _spot(**detail):
    return {"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "detail": detail}


def _alarm(**fields):
    return {**json.loads(json.loads(alarm_body("bill", "ALARM"))["Message"]), **fields}


VALID_ID = "i-0123456789abcdef0"
# (id, body, what the reason names): bodies to drop, never to emit, whatever they claim to be.
MALFORMED_CASES = [
    ("not-json", "this is not json {", "neither JSON nor an AWS Budgets notification"),
    ("unicode-text", "\u2603 snow", "neither JSON nor"),
    ("truncated-json", spot_body(VALID_ID)[:-7], "broken JSON"),
    ("json-list", "[1, 2]", "JSON but not an object"),
    ("json-null", "null", "JSON but not an object"),
    ("json-string", json.dumps(spot_body(VALID_ID)), "JSON but not an object"),
    ("too-deep", '{"a":' * 40_000 + "1" + "}" * 40_000, "broken JSON"),
    ("detail-list", json.dumps({**json.loads(spot_body(VALID_ID)), "detail": [{"instance-id": VALID_ID}]}), "detail is not an object"),
    ("detail-missing", json.dumps({"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2"}), "detail is not an object"),
    ("wrong-types", json.dumps({"detail-type": 5, "source": ["aws.ec2"], "detail": "x", "resources": "i-1"}), "source is not a string"),
    ("resources-not-a-list", json.dumps({**_spot(**{"instance-id": VALID_ID}), "resources": VALID_ID}), "resources is not a list"),
    ("spot-without-instance", json.dumps(_spot()), "names no instance"),
    ("capacity-reservation-without-instance",
     json.dumps({"detail-type": "EC2 Capacity Reservation Instance Interruption Warning", "source": "aws.ec2", "detail": {}}), "names no instance"),
    ("instance-id-number", json.dumps(_spot(**{"instance-id": 12345678})), "detail.instance-id is not an EC2 instance id: 12345678"),
    ("instance-id-null", json.dumps({**_spot(**{"instance-id": None}), "resources": [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{VALID_ID}"]}),
     "detail.instance-id is not an EC2 instance id: None"),
    ("instance-id-injection", json.dumps(_spot(**{"instance-id": VALID_ID + "; rm -rf /"})), "not an EC2 instance id"),
    ("instance-id-template", json.dumps(_spot(**{"instance-id": "{{ lookup('pipe', 'id') }}"})), "not an EC2 instance id"),
    ("instance-id-newline", json.dumps(_spot(**{"instance-id": VALID_ID + "\n"})), "not an EC2 instance id"),
    ("instance-id-16-characters", json.dumps(_spot(**{"instance-id": VALID_ID[:-1]})), "not an EC2 instance id"),
    ("instance-id-upper-case", json.dumps(_spot(**{"instance-id": VALID_ID.upper().replace("I-", "i-")})), "not an EC2 instance id"),
    ("instance-id-fullwidth-digits", json.dumps(_spot(**{"instance-id": "i-\uff10\uff11\uff12\uff13abcd"})), "not an EC2 instance id"),
    ("instance-id-path", json.dumps(_spot(**{"instance-id": "../../../etc/passwd"})), "not an EC2 instance id"),
    ("instance-id-200-kb", json.dumps(_spot(**{"instance-id": "i-" + "0" * 200_000})), "(200004 characters)"),
    ("instance-arn-injection",
     json.dumps({**_spot(), "resources": [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{VALID_ID};reboot"]}), "resources[0] is not an EC2 instance id"),
    ("state-number", eventbridge_body("instance-state-change", VALID_ID, state=3), "detail.state is not an instance state"),
    ("state-unknown", eventbridge_body("instance-state-change", VALID_ID, state="exploded"), "detail.state is not an instance state"),
    ("instance-type-list", json.dumps(_spot(**{"instance-id": VALID_ID, "instance-type": ["m5.large"]})), "detail.instance-type is not a string"),
    ("health-entities-object",
     json.dumps({"detail-type": "AWS Health Event", "source": "aws.health",
                 "detail": {"eventTypeCategory": "scheduledChange", "affectedEntities": {"entityValue": VALID_ID}}}), "affectedEntities is not a list"),
    ("health-entity-injection",
     json.dumps({"detail-type": "AWS Health Event", "source": "aws.health",
                 "detail": {"eventTypeCategory": "scheduledChange", "affectedEntities": [{"entityValue": VALID_ID}, {"entityValue": "i-$(reboot)"}]}}),
     "affectedEntities[1].entityValue is not an EC2 instance id"),
    ("alarm-without-state", json.dumps({"AlarmName": "a"}), "NewStateValue is not an alarm state"),
    ("alarm-state-number", json.dumps(_alarm(NewStateValue=1)), "NewStateValue is not an alarm state"),
    ("alarm-state-lower-case", sns_body("x", json.dumps(_alarm(NewStateValue="alarm"))), "NewStateValue is not an alarm state"),
    ("alarm-name-too-long", json.dumps(_alarm(AlarmName="a" * 256)), "AlarmName is not an alarm name"),
    ("alarm-eventbridge-state-value", json.dumps({**json.loads(CLOUDWATCH_EVENT), "detail": {"alarmName": "cpu-high", "state": {"value": 0}}}),
     "detail.state.value is not an alarm state"),
    ("alarm-eventbridge-state-string", json.dumps({**json.loads(CLOUDWATCH_EVENT), "detail": {"alarmName": "cpu-high", "state": "ALARM"}}),
     "detail.state is not an object"),
    ("sns-broken-message", sns_body("x", '{"AlarmName": '), "the SNS Message is broken JSON"),
    ("sns-message-object", json.dumps({**json.loads(sns_body("x", "")), "Message": {"AlarmName": "a"}}), "the SNS Message is not a string"),
    ("budget-name-number", json.dumps({"budgetName": 5}), "budgetName is not a budget name"),
    ("budget-name-colon", budget_body("a:b", as_json=True), "budgetName is not a budget name"),
    ("budget-text-name-too-long", budget_body("b" * 101, raw=True), "the budget name is not a budget name"),
]


@pytest.mark.parametrize(("body", "expected"), [case[1:] for case in PARSE_CASES], ids=[case[0] for case in PARSE_CASES])
def test_every_body_parses_into_one_shape(body, expected):
    event = sqs_event_parsing.parse_body(body)
    assert set(event) == EVENT_KEYS - {"sqs"}
    assert event["kind"] in sqs_event_parsing.KINDS
    assert {key: event[key] for key in expected} == expected
    assert all(sqs_event_parsing.is_ec2_instance_id(i) for i in event["instance_ids"])
    json.dumps(event)  # what the rulebook gets must be plain JSON


@pytest.mark.parametrize(("body", "reason"), [case[1:] for case in MALFORMED_CASES], ids=[case[0] for case in MALFORMED_CASES])
def test_a_body_of_the_wrong_shape_is_malformed_and_says_why_in_a_short_line(body, reason):
    with pytest.raises(sqs_event_parsing.MalformedBody) as raised:
        sqs_event_parsing.parse_body(body)
    assert reason in str(raised.value)
    # The reason goes to the log: bounded, and one line whatever the body held.
    assert len(str(raised.value)) < 300 and "\n" not in str(raised.value)



@pytest.mark.parametrize("budget_lines", ["\n" * 250_000, "Budget Name: b\n" + " \n" * 120_000, "associated with your budget " + "\t" * 200_000])
def test_a_large_text_body_is_parsed_in_linear_time(budget_lines):
    """The text regexes run on the event loop: quadratic ones stalled it for minutes on a 256 KiB body."""
    started = time.monotonic()
    try:
        sqs_event_parsing.parse_body(budget_lines)
    except sqs_event_parsing.MalformedBody:
        pass
    assert time.monotonic() - started < 1


def test_alarm_key_is_the_transition_copies_share_it_the_next_transition_does_not():
    first = sqs_event_parsing.parse_body(alarm_body("bill", "ALARM"))
    assert first["dedup_key"].startswith("alarm:bill:ALARM@")
    ok = sqs_event_parsing.parse_body(alarm_body("bill", "OK"))
    assert ok["dedup_key"].startswith("alarm:bill:OK@")
    # The same notification delivered twice: one key. Another ALARM transition later: another key.
    message = json.loads(json.loads(alarm_body("bill", "ALARM"))["Message"])
    later = {**message, "StateChangeTime": "2099-01-01T00:00:00.000+0000"}
    envelope = {"Type": "Notification", "MessageId": "x", "Subject": "ALARM", "Message": json.dumps(message)}
    again = {**envelope, "MessageId": "y"}
    assert sqs_event_parsing.parse_body(json.dumps(envelope))["dedup_key"] == sqs_event_parsing.parse_body(json.dumps(again))["dedup_key"] == f"alarm:bill:ALARM@{message['StateChangeTime']}"
    assert sqs_event_parsing.parse_body(json.dumps({**envelope, "Message": json.dumps(later)}))["dedup_key"] == "alarm:bill:ALARM@2099-01-01T00:00:00.000+0000"
    assert sqs_event_parsing.parse_body(CLOUDWATCH_EVENT)["dedup_key"].startswith("alarm:cpu-high:ALARM")


def test_body_keeps_the_parsed_original():
    body = alarm_body("bill", "ALARM")
    event = sqs_event_parsing.parse_body(body)
    assert event["body"] == json.loads(body)
    assert event["detail"] == json.loads(json.loads(body)["Message"])
    text_event = sqs_event_parsing.parse_body(budget_body("eks-monthly"))
    assert text_event["detail"]["fields"]["Budget Name"] == "eks-monthly"
    assert text_event["detail"]["fields"]["ACTUAL Amount"] == "$85.12"


def test_message_becomes_an_event_with_its_sqs_coordinates():
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh-1",
        "Body": spot_body("i-0abc0000000000000"),
        "Attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000000"},
    }
    event = sqs_event_parsing.build_event(message, "http://q", "eu-central-1")
    assert set(event) == EVENT_KEYS and set(event["sqs"]) == SQS_KEYS
    assert event["sqs"] == {
        "queue_url": "http://q",
        "region": "eu-central-1",
        "message_id": "m-1",
        "receipt_handle": "rh-1",
        "receive_count": 3,
        "sent_timestamp": 1700000000000,
        "acked_by_source": False,
    }
    assert event["kind"] == "spot_interruption"
