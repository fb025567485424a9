"""The lookup eks_autoscaling.core.interruption_event_rules: the one list of EventBridge rules for Karpenter's
interruption queue (interruption_queue role) and the rulebook's own queue (event_bus role).

The rules must be Karpenter's reference template's, each event the lab injects must be forwarded by exactly the
rule of its type (EventBridge pattern matching of the in-process AWS server), and every forwarded event must be
one the event source understands."""
import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from ansible_collections.eks_autoscaling.core.plugins.lookup.interruption_event_rules import interruption_event_rules
from lab import events as lab_events

from tests.conftest import REGION, make_client
from tests.paths import REPO
from .test_sqs_event_parsing import eventbridge_body, sqs_event_parsing

MIRROR = Path("/work/.mirror/aws+karpenter-provider-aws/repo")
# Karpenter v1.14's getting-started cloudformation.yaml, its *Rule resources: (logical id, source, detail-type).
REFERENCE = [
    ("ScheduledChangeRule", "aws.health", "AWS Health Event"),
    ("SpotInterruptionRule", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    ("RebalanceRule", "aws.ec2", "EC2 Instance Rebalance Recommendation"),
    ("InstanceStateChangeRule", "aws.ec2", "EC2 Instance State-change Notification"),
    ("CapacityReservationInterruptionRule", "aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
]
# The lab event that stands for each rule, and the kind the event source gives it.
LAB_EVENT = {
    "ScheduledChange": ("scheduled-change", "scheduled_change"),
    "SpotInterruption": ("spot-interruption", "spot_interruption"),
    "Rebalance": ("rebalance-recommendation", "rebalance_recommendation"),
    "InstanceStateChange": ("instance-state-change", "instance_state_change"),
    "CapacityReservationInterruption": ("capacity-reservation-interruption", "capacity_reservation_interruption"),
}


def test_the_five_rules_of_the_reference_template_in_its_order():
    rules = interruption_event_rules()
    assert [(r["suffix"] + "Rule", r["pattern"]["source"], r["pattern"]["detail-type"]) for r in rules] == [
        (logical_id, [source], [detail_type]) for logical_id, source, detail_type in REFERENCE
    ]
    assert all(set(r) == {"suffix", "pattern"} and set(r["pattern"]) == {"source", "detail-type"} for r in rules)


@pytest.mark.skipif(not MIRROR.is_dir(), reason="the karpenter-provider-aws mirror is not on this machine")
def test_the_reference_template_itself_has_these_rules():
    text = subprocess.run(
        ["git", "-C", str(MIRROR), "show",
         "HEAD:website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml"],
        capture_output=True, text=True, check=True,
    ).stdout

    class Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short-form tags (!Sub, !GetAtt, ...) are not YAML's: read them as plain values.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    resources = yaml.load(text, Loader=Loader)["Resources"]
    rules = [(name, r["Properties"]["EventPattern"]) for name, r in resources.items() if r["Type"] == "AWS::Events::Rule"]
    assert [(name, pattern["source"], pattern["detail-type"]) for name, pattern in rules] == [
        (r["suffix"] + "Rule", r["pattern"]["source"], r["pattern"]["detail-type"]) for r in interruption_event_rules()
    ]


def test_some_rules_by_suffix_fresh_copies_and_an_unknown_suffix_named():
    chosen = interruption_event_rules(["CapacityReservationInterruption", "SpotInterruption"])
    assert [r["suffix"] for r in chosen] == ["CapacityReservationInterruption", "SpotInterruption"]
    chosen[0]["pattern"]["source"].append("changed")
    assert interruption_event_rules()[4]["pattern"]["source"] == ["aws.ec2"]
    with pytest.raises(ValueError, match="'Spot'"):
        interruption_event_rules(["Spot"])


def test_both_roles_take_their_rules_from_the_lookup():
    for path, name in (("roles/interruption_queue/defaults/main.yml", "interruption_queue_rules"),
                       ("roles/event_bus/defaults/main.yml", "event_bus_rules")):
        defaults = yaml.safe_load((REPO / path).read_text())
        assert defaults[name] == "{{ query('eks_autoscaling.core.interruption_event_rules') }}", path


def test_ansible_resolves_the_lookup_to_the_five_rules(tmp_path):
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", "ansible.builtin.debug",
         "-a", "msg={{ query('eks_autoscaling.core.interruption_event_rules') | to_json }}", "-o"],
        cwd=REPO, env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout.split("=>", 1)[1])
    assert json.loads(answer["msg"]) == interruption_event_rules()


def test_each_lab_event_reaches_exactly_the_rule_of_its_type(aws_endpoint):
    """Five rules on a bus, each to its own queue; one event of each type put on the bus, as the lab injects it."""
    sqs, bridge = make_client(aws_endpoint, "sqs"), make_client(aws_endpoint, "events")
    bus = f"bus-{uuid.uuid4().hex[:8]}"
    bridge.create_event_bus(Name=bus)
    queues = {}
    for rule in interruption_event_rules():
        url = sqs.create_queue(QueueName=f"rule-{rule['suffix']}-{uuid.uuid4().hex[:6]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bridge.put_rule(Name=rule["suffix"], EventBusName=bus, EventPattern=json.dumps(rule["pattern"]))
        bridge.put_targets(Rule=rule["suffix"], EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
        queues[rule["suffix"]] = url
    for index, (event, _) in enumerate(LAB_EVENT.values()):
        lab_events.inject(aws_endpoint, event, instance_id=f"i-0a1b2c3d4e5f6070{index}", event_bus=bus, region=REGION)
    for suffix, url in queues.items():
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        assert len(messages) == 1, f"{suffix}: {len(messages)} message(s)"
        event = sqs_event_parsing.parse_body(messages[0]["Body"])
        assert event["kind"] == LAB_EVENT[suffix][1]
        assert [event["detail_type"]] == next(r["pattern"]["detail-type"] for r in interruption_event_rules() if r["suffix"] == suffix)


@pytest.mark.parametrize("suffix", list(LAB_EVENT))
def test_the_event_source_understands_every_forwarded_type(suffix):
    event = sqs_event_parsing.parse_body(eventbridge_body(LAB_EVENT[suffix][0], "i-0123456789abcdef0"))
    assert event["kind"] == LAB_EVENT[suffix][1] and event["instance_ids"] == ["i-0123456789abcdef0"]
