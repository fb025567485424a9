"""Event bodies the lab injects must have the shapes AWS documents."""
import datetime
import json

import pytest

from lab import events

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.timezone.utc)


def test_spot_interruption_warning_shape():
    entry = events.ec2_event("spot-interruption", "i-0abc", "123456789012", "ap-southeast-1b", now=NOW)
    assert entry["Source"] == "aws.ec2"
    assert entry["DetailType"] == "EC2 Spot Instance Interruption Warning"
    assert entry["Resources"] == ["arn:aws:ec2:ap-southeast-1b:123456789012:instance/i-0abc"]
    assert json.loads(entry["Detail"]) == {"instance-id": "i-0abc", "instance-action": "terminate"}


def test_state_change_uses_the_region_in_its_arn():
    entry = events.ec2_event("instance-state-change", "i-0abc", "123456789012", "ap-southeast-1b", state="stopping")
    assert entry["Resources"] == ["arn:aws:ec2:ap-southeast-1:123456789012:instance/i-0abc"]
    assert json.loads(entry["Detail"])["state"] == "stopping"


def test_health_scheduled_change_names_the_instance_and_a_window():
    entry = events.ec2_event("scheduled-change", "i-0abc", "123456789012", "ap-southeast-1a", now=NOW)
    detail = json.loads(entry["Detail"])
    assert entry["Source"] == "aws.health" and entry["DetailType"] == "AWS Health Event"
    assert detail["eventTypeCategory"] == "scheduledChange"
    assert detail["affectedEntities"][0]["entityValue"] == "i-0abc"
    start = datetime.datetime.strptime(detail["startTime"], "%a, %d %b %Y %H:%M:%S GMT")
    assert start == datetime.datetime(2026, 11, 25, 14, 0)


@pytest.mark.parametrize("state,old", [("ALARM", "OK"), ("OK", "ALARM")])
def test_billing_alarm_notification(state, old):
    subject, body = events.alarm_message("bill", state, "123456789012")
    message = json.loads(body)
    assert subject == f'{state}: "bill" in US East (N. Virginia)'
    assert message["NewStateValue"] == state and message["OldStateValue"] == old
    assert message["Trigger"]["Namespace"] == "AWS/Billing"
    assert message["AlarmArn"] == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:bill"


def test_budget_notification_text_and_json():
    subject, text = events.budget_message("monthly", "123456789012", amount=100, actual=85.12, threshold_percent=80)
    assert subject == "AWS Budgets: monthly has exceeded your alert threshold"
    assert "Budget Name: monthly" in text and "ACTUAL Amount: $85.12" in text and "Alert Threshold: > $80.00" in text
    _, body = events.budget_message("monthly", "123456789012", as_json=True)
    assert json.loads(body)["budgetName"] == "monthly"


def test_unknown_event_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown event 'nope'"):
        events.inject("http://127.0.0.1:1", "nope")


def test_instance_id_from_an_eks_provider_id():
    class Result:
        stdout = "aws:///ap-southeast-1a/i-0123456789abcdef0"

    assert events.instance_id_for_node("n", lambda *a: Result) == "i-0123456789abcdef0"
    Result.stdout = "kwok://kwok-node-1"
    with pytest.raises(ValueError, match="not an EC2 one"):
        events.instance_id_for_node("n", lambda *a: Result)


def test_inject_burst_interleaves_copies_ten_per_put_events(monkeypatch):
    from lab import events

    calls = []

    class Fake:
        def get_caller_identity(self):
            return {"Account": "123456789012"}

        def put_events(self, Entries):
            calls.append([e["Detail"] for e in Entries])
            return {"FailedEntryCount": 0, "Entries": [{"EventId": str(len(calls)) + "-" + str(i)} for i in range(len(Entries))]}

    monkeypatch.setattr(events, "_client", lambda service, endpoint, region: Fake())
    result = events.inject_burst("http://x", "spot-interruption", ["i-01", "i-02", "i-03"], copies=5)
    assert len(result["event_ids"]) == 15 and [len(c) for c in calls] == [10, 5]
    order = [json.loads(d)["instance-id"] for c in calls for d in c]
    assert order == ["i-01", "i-02", "i-03"] * 5
