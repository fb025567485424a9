"""Inject AWS events into the lab the way AWS delivers them.

EC2 and AWS Health events go through EventBridge: PutEvents on the bus, and every rule whose
pattern matches forwards the event to its targets (SQS queues here), exactly as AWS does for
events it emits itself. CloudWatch alarm and AWS Budgets notifications go through SNS: Publish
on a topic, and each SQS subscription receives the SNS envelope (or the raw message when the
subscription has RawMessageDelivery). Bodies follow the shapes AWS documents:

* EC2 Spot Instance Interruption Warning, EC2 Capacity Reservation Instance Interruption Warning,
  EC2 Instance Rebalance Recommendation and EC2 Instance State-change Notification (source aws.ec2);
* AWS Health Event, scheduledChange category (source aws.health);
* CloudWatch alarm state change notification (JSON, as CloudWatch publishes to SNS);
* AWS Budgets notification (plain text, as Budgets publishes to SNS; JSON on request).
"""
import datetime
import json
import uuid

import boto3

from lab.ctl.tools import kubectl

REGION = "ap-southeast-1"
REGION_NAMES = {"ap-southeast-1": "Asia Pacific (Singapore)", "us-east-1": "US East (N. Virginia)"}

EVENT_TYPES = {
    "spot-interruption": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "capacity-reservation-interruption": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
    "rebalance-recommendation": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "instance-state-change": ("aws.ec2", "EC2 Instance State-change Notification"),
    "scheduled-change": ("aws.health", "AWS Health Event"),
}
SNS_TYPES = ("billing-alarm", "budget-alert")
# The event_bus role's names for cluster eksworkshop, so `make lab-inject` reaches the rulebook as is.
DEFAULT_COST_TOPIC = "eksworkshop-cost-alarms"
DEFAULT_ALARM = "eksworkshop-estimated-charges"
DEFAULT_BUDGET = "eksworkshop-monthly"


def _client(service, endpoint_url, region):
    return boto3.client(
        service, endpoint_url=endpoint_url, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _instance_zone(ec2, instance_id):
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return reservations[0]["Instances"][0]["Placement"]["AvailabilityZone"]
    except Exception:  # noqa: BLE001 - an instance the AWS server does not know (a kwok node): use the first AZ
        return f"{REGION}a"


def _zone_id(ec2, zone):
    """The zone's id (apse1-az2 for ap-southeast-1b in the lab's account), or None when the server does not say."""
    try:
        return ec2.describe_availability_zones(ZoneNames=[zone])["AvailabilityZones"][0].get("ZoneId")
    except Exception:  # noqa: BLE001 - a zone the AWS server does not know: the event goes without it
        return None


def ec2_event(kind, instance_id, account, zone, now=None, state="terminated", health_start=None, zone_id=None):
    """The `detail-type`, `source`, `resources` and `detail` of one EC2/Health event, as AWS emits it.
    `zone_id` is the availability zone id a capacity reservation interruption warning carries (azId)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    source, detail_type = EVENT_TYPES[kind]
    instance_arn = f"arn:aws:ec2:{zone}:{account}:instance/{instance_id}"
    if kind == "spot-interruption":
        # AWS gives two minutes' notice; `instance-action` is terminate, stop or hibernate.
        detail = {"instance-id": instance_id, "instance-action": "terminate"}
        resources = [instance_arn]
    elif kind == "capacity-reservation-interruption":
        # An instance of an interruptible Capacity Reservation, two minutes before the reservation's owner
        # reclaims the capacity (EC2 User Guide, "Monitor interruptible Capacity Reservations").
        detail = {
            "instance-id": instance_id,
            "instance-action": "terminate",
            "instance-termination-time": _iso(now + datetime.timedelta(minutes=2)),
            "azId": zone_id,
        }
        resources = [f"arn:aws:ec2:{zone[:-1]}:{account}:instance/{instance_id}"]
    elif kind == "rebalance-recommendation":
        detail = {"instance-id": instance_id}
        resources = [instance_arn]
    elif kind == "instance-state-change":
        detail = {"instance-id": instance_id, "state": state}
        resources = [f"arn:aws:ec2:{zone[:-1]}:{account}:instance/{instance_id}"]
    else:
        start = health_start or now + datetime.timedelta(hours=2)
        code = "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED"
        detail = {
            "eventArn": f"arn:aws:health:{zone[:-1]}::event/EC2/{code}/{code}_{uuid.uuid4().hex[:12]}",
            "service": "EC2",
            "eventTypeCode": code,
            "eventTypeCategory": "scheduledChange",
            "eventScopeCode": "ACCOUNT_SPECIFIC",
            "startTime": start.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "endTime": (start + datetime.timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "eventDescription": [
                {
                    "language": "en_US",
                    "latestDescription": f"EC2 has detected degradation of the underlying hardware hosting "
                    f"your instance {instance_id}. It is scheduled for retirement.",
                }
            ],
            "affectedEntities": [{"entityValue": instance_id, "status": "PENDING"}],
        }
        resources = [instance_id]
    return {"Source": source, "DetailType": detail_type, "Resources": resources, "Detail": json.dumps(detail)}


def alarm_message(alarm_name, state, account, region="us-east-1", threshold=100.0, old_state=None):
    """A CloudWatch alarm notification for an EstimatedCharges billing alarm, as CloudWatch sends it to SNS."""
    old_state = old_state or ("OK" if state == "ALARM" else "ALARM")
    now = datetime.datetime.now(datetime.timezone.utc)
    reason = (
        f"Threshold Crossed: 1 datapoint [{threshold * 1.2:.2f} ({_iso(now)})] was greater than the threshold ({threshold})."
        if state == "ALARM"
        else f"Threshold Crossed: 1 datapoint [{threshold * 0.5:.2f} ({_iso(now)})] was not greater than the threshold ({threshold})."
    )
    message = {
        "AlarmName": alarm_name,
        "AlarmDescription": "Estimated AWS charges over the configured ceiling",
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "NewStateValue": state,
        "NewStateReason": reason,
        "StateChangeTime": now.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "Region": REGION_NAMES.get(region, region),
        "AlarmArn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm_name}",
        "OldStateValue": old_state,
        "OKActions": [],
        "AlarmActions": [],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "EstimatedCharges",
            "Namespace": "AWS/Billing",
            "StatisticType": "Statistic",
            "Statistic": "MAXIMUM",
            "Unit": None,
            "Dimensions": [{"value": "USD", "name": "Currency"}],
            "Period": 21600,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": threshold,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }
    subject = f'{state}: "{alarm_name}" in {REGION_NAMES.get(region, region)}'
    return subject, json.dumps(message)


def budget_message(budget_name, account, amount=100.0, actual=85.12, threshold_percent=80.0, as_json=False):
    """An AWS Budgets notification as Budgets publishes it to SNS: plain text (or JSON on request)."""
    today = datetime.date.today().strftime("%B %d, %Y")
    subject = f"AWS Budgets: {budget_name} has exceeded your alert threshold"
    threshold = amount * threshold_percent / 100
    if as_json:
        return subject, json.dumps(
            {
                "budgetName": budget_name,
                "budgetType": "COST",
                "accountId": account,
                "budgetedAmount": amount,
                "notificationType": "ACTUAL",
                "comparisonOperator": "GREATER_THAN",
                "threshold": threshold_percent,
                "thresholdType": "PERCENTAGE",
                "actualAmount": actual,
                "currency": "USD",
            }
        )
    text = (
        f"AWS Budget Notification {today}\n"
        f"AWS Account {account}\n\n"
        "Dear AWS Customer,\n\n"
        f"You requested that we alert you when the ACTUAL Cost associated with your {budget_name} budget "
        f"is greater than ${threshold:.2f} for the current month. The ACTUAL Cost associated with this budget "
        f"is ${actual:.2f}. You can find additional details below and by accessing the AWS Budgets dashboard.\n\n"
        f"Budget Name: {budget_name}\n"
        "Budget Type: Cost\n"
        f"Budgeted Amount: ${amount:.2f}\n"
        "Alert Type: ACTUAL\n"
        f"Alert Threshold: > ${threshold:.2f}\n"
        f"ACTUAL Amount: ${actual:.2f}\n"
    )
    return subject, text


def instance_id_for_node(node_name, kubectl):
    """The EC2 instance id in a node's providerID (aws:///<zone>/<id>); kwok nodes get their name."""
    provider_id = kubectl("get", "node", node_name, "-o", "jsonpath={.spec.providerID}").stdout.strip()
    if provider_id.startswith("aws:///"):
        return provider_id.rsplit("/", 1)[-1]
    raise ValueError(f"node {node_name} has providerID {provider_id!r}, not an EC2 one (aws:///<zone>/<instance-id>)")


def inject(endpoint_url, event, instance_id=None, node=None, region=REGION, event_bus="default", topic_arn=None,
           state=None, alarm_name=DEFAULT_ALARM, budget_name=DEFAULT_BUDGET, as_json=False, count=1):
    """Deliver `count` events of one kind; return what the AWS server answered."""
    if event not in EVENT_TYPES and event not in SNS_TYPES:
        raise ValueError(f"unknown event {event!r}: one of {', '.join([*EVENT_TYPES, *SNS_TYPES])}")
    sts = _client("sts", endpoint_url, region)
    account = sts.get_caller_identity()["Account"]
    if event in EVENT_TYPES:
        if node and not instance_id:
            instance_id = instance_id_for_node(node, kubectl)
        if not instance_id:
            raise ValueError(f"event {event} needs --instance-id or --node")
        ec2 = _client("ec2", endpoint_url, region)
        zone = _instance_zone(ec2, instance_id)
        entry = ec2_event(event, instance_id, account, zone, state=state or "terminated", zone_id=_zone_id(ec2, zone))
        entry["EventBusName"] = event_bus
        events = _client("events", endpoint_url, region)
        results = []
        for start in range(0, count, 10):  # PutEvents takes at most 10 entries a call
            batch = [dict(entry) for _ in range(min(10, count - start))]
            response = events.put_events(Entries=batch)
            if response["FailedEntryCount"]:
                raise RuntimeError(f"PutEvents rejected entries: {response['Entries']}")
            results += [e["EventId"] for e in response["Entries"]]
        return {"event": event, "instance_id": instance_id, "event_ids": results}
    # One of SNS_TYPES: a notification published to the topic the alarm or budget notifies; by default
    # the cost topic the event_bus role makes for the tutorial's cluster.
    topic_arn = topic_arn or f"arn:aws:sns:us-east-1:{account}:{DEFAULT_COST_TOPIC}"
    topic_region = topic_arn.split(":")[3]
    sns = _client("sns", endpoint_url, topic_region)
    if event == "billing-alarm":
        # CloudWatch changes the alarm's state, then notifies: consumers that read the state back see it.
        cloudwatch = _client("cloudwatch", endpoint_url, topic_region)
        if cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"]:
            cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue=state or "ALARM", StateReason="injected by the lab")
        subject, message = alarm_message(alarm_name, state or "ALARM", account, region=topic_region)
    else:
        subject, message = budget_message(budget_name, account, as_json=as_json)
    ids = [sns.publish(TopicArn=topic_arn, Subject=subject, Message=message)["MessageId"] for _ in range(count)]
    return {"event": event, "topic_arn": topic_arn, "message_ids": ids}


def inject_burst(endpoint_url, event, instance_ids, copies=1, region=REGION, event_bus="default", state=None):
    """Deliver `copies` of one EC2 event for each instance, interleaved (i1, i2, ..., i1, i2, ...), ten per
    PutEvents call: a burst as overlapping producers and EventBridge retries make it."""
    if event not in EVENT_TYPES:
        raise ValueError(f"inject_burst takes an EC2/Health event: one of {', '.join(EVENT_TYPES)}")
    account = _client("sts", endpoint_url, region).get_caller_identity()["Account"]
    events = _client("events", endpoint_url, region)
    zone = f"{region}a"
    zone_id = _zone_id(_client("ec2", endpoint_url, region), zone) if event == "capacity-reservation-interruption" else None
    entries = []
    for _ in range(copies):
        for instance_id in instance_ids:
            entry = ec2_event(event, instance_id, account, zone, state=state or "terminated", zone_id=zone_id)
            entry["EventBusName"] = event_bus
            entries.append(entry)
    ids = []
    for start in range(0, len(entries), 10):
        response = events.put_events(Entries=entries[start:start + 10])
        if response["FailedEntryCount"]:
            raise RuntimeError(f"PutEvents rejected entries: {response['Entries']}")
        ids += [e["EventId"] for e in response["Entries"]]
    return {"event": event, "instances": len(instance_ids), "event_ids": ids}


def add_arguments(parser):
    parser.add_argument("event", choices=[*EVENT_TYPES, *SNS_TYPES])
    parser.add_argument("--instance-id", help="EC2 instance id the event is about")
    parser.add_argument("--node", help="Kubernetes node whose providerID gives the instance id")
    parser.add_argument("--event-bus", default="default")
    parser.add_argument("--topic-arn", help=f"SNS topic for billing-alarm and budget-alert (default: us-east-1 {DEFAULT_COST_TOPIC})")
    parser.add_argument("--state", help="instance state (instance-state-change) or alarm state ALARM/OK (billing-alarm)")
    parser.add_argument("--alarm-name", default=DEFAULT_ALARM)
    parser.add_argument("--budget-name", default=DEFAULT_BUDGET)
    parser.add_argument("--json", dest="as_json", action="store_true", help="budget-alert: JSON body instead of text")
    parser.add_argument("--count", type=int, default=1, help="deliver the same event this many times")


def extra_args(args):
    return {
        "event_bus": args.event_bus,
        "topic_arn": args.topic_arn,
        "state": args.state,
        "alarm_name": args.alarm_name,
        "budget_name": args.budget_name,
        "as_json": args.as_json,
        "count": args.count,
    }
