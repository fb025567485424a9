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


def test_capacity_reservation_interruption_warning_shape():
    """EC2 User Guide, "Monitor interruptible Capacity Reservations": the instance, terminate, when, and the zone id."""
    entry = events.ec2_event("capacity-reservation-interruption", "i-0abc", "123456789012", "ap-southeast-1b", now=NOW, zone_id="apse1-az2")
    assert entry["Source"] == "aws.ec2"
    assert entry["DetailType"] == "EC2 Capacity Reservation Instance Interruption Warning"
    assert entry["Resources"] == ["arn:aws:ec2:ap-southeast-1:123456789012:instance/i-0abc"]
    assert json.loads(entry["Detail"]) == {
        "instance-id": "i-0abc",
        "instance-action": "terminate",
        "instance-termination-time": "2026-11-25T12:02:00Z",
        "azId": "apse1-az2",
    }


def test_capacity_reservation_warning_through_put_events_carries_the_zone_id_of_the_instance(aws_endpoint):
    """lab-inject's path: the instance's zone and that zone's id from EC2, then PutEvents to a rule's queue."""
    from tests.conftest import make_client

    ec2, sqs, bridge = make_client(aws_endpoint, "ec2"), make_client(aws_endpoint, "sqs"), make_client(aws_endpoint, "events")
    subnet = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": ["ap-southeast-1b"]}])["Subnets"]
    subnet_id = subnet[0]["SubnetId"] if subnet else ec2.create_subnet(
        VpcId=ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"], CidrBlock="10.43.1.0/24", AvailabilityZone="ap-southeast-1b")["Subnet"]["SubnetId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet_id)["Instances"][0]["InstanceId"]
    zone_id = ec2.describe_availability_zones(ZoneNames=["ap-southeast-1b"])["AvailabilityZones"][0]["ZoneId"]
    bus = f"bus-{instance_id}"
    bridge.create_event_bus(Name=bus)
    url = sqs.create_queue(QueueName=f"cr-{instance_id}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bridge.put_rule(Name="cr", EventBusName=bus, EventPattern=json.dumps(
        {"source": ["aws.ec2"], "detail-type": ["EC2 Capacity Reservation Instance Interruption Warning"]}))
    bridge.put_targets(Rule="cr", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    result = events.inject(aws_endpoint, "capacity-reservation-interruption", instance_id=instance_id, event_bus=bus)
    assert result["instance_id"] == instance_id and len(result["event_ids"]) == 1
    (message,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    body = json.loads(message["Body"])
    assert body["detail-type"] == "EC2 Capacity Reservation Instance Interruption Warning" and body["source"] == "aws.ec2"
    assert body["detail"]["instance-id"] == instance_id and body["detail"]["instance-action"] == "terminate"
    assert body["detail"]["azId"] == zone_id
    termination = datetime.datetime.strptime(body["detail"]["instance-termination-time"], "%Y-%m-%dT%H:%M:%SZ")
    assert 100 <= (termination - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)).total_seconds() <= 120


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
