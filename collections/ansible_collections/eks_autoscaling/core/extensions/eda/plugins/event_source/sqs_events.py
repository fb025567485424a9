# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
short_description: Receive EC2, AWS Health, CloudWatch alarm and AWS Budgets events from Amazon SQS, at least once
description:
  - An ansible-rulebook event source that long-polls an Amazon SQS queue and puts one event per
    message on the rulebook's queue, all in one shape whatever the message carried.
  - "Bodies understood: EventBridge events (C(aws.ec2) C(EC2 Spot Instance Interruption Warning),
    C(EC2 Capacity Reservation Instance Interruption Warning), C(EC2 Instance Rebalance Recommendation),
    C(EC2 Instance State-change Notification); C(aws.health)
    C(AWS Health Event) of category C(scheduledChange) naming instances; C(aws.cloudwatch)
    C(CloudWatch Alarm State Change)), and SNS notifications (the SNS envelope, or the raw message when
    the subscription has raw message delivery) holding a CloudWatch alarm (JSON) or an AWS Budgets
    notification (plain text or JSON). A well-formed message of another kind (an EventBridge event of
    another source or detail-type, an AWS Health event of another category or naming no instance, an SNS
    notification of something else, a JSON object of none of these shapes) becomes an event of kind
    V(unknown); a body never stops the source."
  - "Malformed bodies are dropped: logged (a warning with the message id and the reason), deleted by the
    source at once whatever O(ack_unknown) says, and never emitted, not even as V(unknown). A body is
    malformed when it is no message at all (text other than an AWS Budgets notification, broken or
    truncated JSON, JSON that is not an object, an SNS envelope whose C(Message) is not a string) or when
    it has the keys of a kind above but not its shape: an EventBridge event whose C(source) or
    C(detail-type) is not a string, whose C(detail) is not an object or whose C(resources) is not a list of
    strings; an EC2 event naming no instance, or whose C(instance-id) (or instance ARN in C(resources), or
    C(i-) entity of a Health event) is not an EC2 instance id, whose C(instance-type) or
    C(instance-action) is not a string, or whose C(state) is not one of V(pending), V(running),
    V(stopping), V(stopped), V(shutting-down), V(terminated); an alarm whose name is not 1 to 255
    characters or whose state is not V(OK), V(ALARM) or V(INSUFFICIENT_DATA); a budget whose name is not
    1 to 100 characters without C(:) or C(\\)."
  - "An EC2 instance id is C(i-) followed by exactly 8 or exactly 17 lowercase hexadecimal characters: the
    rule of C(module_utils/ec2_instance_id.py) in this collection, which the
    C(eks_autoscaling.core.ec2_instance_id) test applies in the remediation role too. So an id the source
    emits always passes the remediation's check, and a message with any other id is dropped on its own
    before batching: it never joins, and never gets refused, a batch of valid warnings."
  - "Every event has these keys, V(null) (or an empty list) where the message does not say:
    C(sqs) (C(queue_url), C(message_id), C(receipt_handle), C(receive_count), C(sent_timestamp),
    C(acked_by_source)), C(kind) (V(spot_interruption), V(capacity_reservation_interruption), V(rebalance_recommendation),
    V(instance_state_change), V(scheduled_change), V(alarm), V(budget) or V(unknown)), C(source),
    C(detail_type), C(account), C(region), C(time), C(instance_id), C(instance_ids), C(instance_type),
    C(instance_action), C(state), C(alarm_name), C(new_state), C(budget_name), C(dedup_key), C(batch), C(detail)
    (the EventBridge detail, the alarm or budget notification parsed, or the text) and C(body) (the
    message body, parsed when it is JSON)."
  - Delivery is at least once. The source never deletes the message of an event it understood. It keeps
    the message invisible (C(ChangeMessageVisibilityBatch) every O(heartbeat_interval) seconds) while the
    event is handled, and whoever handles it deletes it with M(eks_autoscaling.core.sqs_message_ack) and
    the event's C(sqs.queue_url) and C(sqs.receipt_handle). When a heartbeat finds the message gone, the
    event counts as handled. An event not handled within O(max_inflight_seconds) has its message made
    visible again, so SQS delivers it again (and, after the queue's C(maxReceiveCount), moves it to the
    dead-letter queue of its redrive policy).
  - Duplicates are coalesced. A message whose C(dedup_key) (V(<kind>:instance:<id>) for EC2 and Health events, with the state for state changes,
    V(alarm:<name>:<state>), V(budget:<name>)) is that of an event in flight is not emitted. It is kept
    invisible, and deleted by the source once the event in flight is handled, or made visible again with
    it when that event times out. Duplicates arriving up to O(dedup_window) seconds after the event was
    handled are deleted too.
  - Instance events can be batched (O(batch_interval)). The first event of a kind goes out at once; events
    of the same kind (and, for state changes, the same state) naming other instances that arrive less than
    O(batch_interval) seconds after it are held and go out together, as one event whose C(instance_ids)
    names every instance, once that interval has passed. So a burst of interruptions for many nodes runs
    a few remediations, each for many nodes, instead of one per node, while a lone event waits for nothing.
    A batch event is the event of its first message with C(instance_ids), C(instance_id) (the first) and
    C(dedup_key) (all the instances) widened, and C(batch) listing each message's C(message_id),
    C(instance_ids) and C(instance_type); the other messages are held with it like duplicates, so
    acknowledging its C(sqs.receipt_handle) acknowledges them all. Without batching C(batch) is V([]).
  - Events of kind V(unknown) are emitted, so that a rule can log them, and their messages deleted by the
    source right after (O(ack_unknown)); C(sqs.acked_by_source) is V(true) on those events.
  - A body the parser fails on unexpectedly (a bug, not a malformed body) is logged with its traceback and
    left alone, neither emitted nor deleted, so SQS delivers it again and, after the queue's
    C(maxReceiveCount), moves it to the dead-letter queue.
  - SQS errors (throttling, network, a queue that does not exist yet) are logged and retried with
    exponential backoff; the source only stops when ansible-rulebook cancels it.
options:
  queue_name:
    description:
      - Name of the queue, looked up with C(GetQueueUrl). One of O(queue_name) and O(queue_url) is required.
    type: str
  queue_url:
    description:
      - URL of the queue.
    type: str
  region:
    description:
      - AWS region. Defaults to the region in O(queue_url), then to the environment and the profile.
    type: str
    aliases: [aws_region]
  endpoint_url:
    description:
      - URL of the SQS endpoint, for an emulator or a VPC endpoint.
    type: str
    aliases: [aws_endpoint_url]
  aws_access_key_id:
    description:
      - AWS access key. Without it, the usual AWS credential chain (environment, profile, instance role) is used.
    type: str
    aliases: [access_key, aws_access_key]
  aws_secret_access_key:
    description:
      - AWS secret key.
    type: str
    aliases: [secret_key, aws_secret_key]
  aws_session_token:
    description:
      - AWS session token, for temporary credentials.
    type: str
    aliases: [session_token]
  profile:
    description:
      - Named AWS profile to take credentials and region from.
    type: str
    aliases: [aws_profile]
  wait_time_seconds:
    description:
      - Long-poll time of each C(ReceiveMessage), 0 to 20 seconds.
    type: int
    default: 20
  max_messages:
    description:
      - Messages asked for in each C(ReceiveMessage), 1 to 10.
    type: int
    default: 10
  visibility_timeout:
    description:
      - Seconds a received message stays invisible, set on receipt and again at each heartbeat.
      - This is how long a message stays invisible after the source stops (or crashes) without releasing it.
    type: int
    default: 30
  heartbeat_interval:
    description:
      - Seconds between heartbeats. Must be shorter than O(visibility_timeout); defaults to a third of it.
      - It is also how long it can take to notice that an event was handled.
    type: float
  max_inflight_seconds:
    description:
      - Seconds an event may stay unhandled before its message (and the duplicates held with it) is made
        visible again for redelivery.
      - O(max_inflight_seconds) plus O(visibility_timeout) must stay within SQS's 12 hours.
    type: float
    default: 600
  dedup:
    description:
      - Coalesce messages with the C(dedup_key) of an event in flight. V(false) emits every message.
    type: bool
    default: true
  dedup_window:
    description:
      - Seconds after an event was handled during which messages with its C(dedup_key) are deleted without
        being emitted. V(0) turns this off.
    type: float
    default: 60
  batch_interval:
    description:
      - Seconds during which instance events of one kind, after one was emitted, are gathered into one
        event (see above). V(0) emits one event per instance.
      - Must be less than O(max_inflight_seconds).
    type: float
    default: 0
  batch_max_instances:
    description:
      - Most instances in one batch event; a full batch goes out at once.
      - A batch event's remediation must finish within O(max_inflight_seconds) for all of them.
    type: int
    default: 100
  ack_unknown:
    description:
      - Delete the message of an event of kind V(unknown) once it is emitted. With V(false) such messages
        are delivered at least once like any other.
      - Malformed messages are deleted whatever this says (they are never emitted, so nothing else could).
    type: bool
    default: true
notes:
  - Uses boto3 in a thread pool, as aiobotocore is not a dependency of this project.
  - For a rulebook run from a directory, C(ansible-rulebook -S <collection>/extensions/eda/plugins/event_source)
    with the source named C(sqs_events) also works.
  - A C(ReceiveMessage) in progress when the source is cancelled finishes in the background, up to
    O(wait_time_seconds) later; messages it receives become visible again after O(visibility_timeout).
  - On cancellation, the messages of events in flight are made visible again at once, best effort.
  - Needs C(sqs:ReceiveMessage), C(sqs:ChangeMessageVisibility), C(sqs:DeleteMessage) and, with
    O(queue_name), C(sqs:GetQueueUrl).
"""

EXAMPLES = r"""
- name: React to EC2 interruptions and cost notifications
  hosts: localhost
  sources:
    - eks_autoscaling.core.sqs_events:
        queue_name: eksworkshop
        region: ap-southeast-1
        visibility_timeout: 60
        max_inflight_seconds: 900
        # A burst of warnings for many nodes: one drain playbook run per 3 seconds, for all of them.
        batch_interval: 3
  rules:
    - name: Drain the node of an interrupted spot instance
      condition: event.kind == "spot_interruption"
      action:
        run_playbook:
          name: playbooks/remediation/spot_interruption.yml
    - name: Billing alarm
      condition: event.kind == "alarm" and event.new_state == "ALARM"
      action:
        run_playbook:
          name: playbooks/remediation/cost_alarm.yml
    - name: Log what the source does not act on (it deletes those messages itself; malformed ones are never emitted)
      condition: event.kind == "unknown"
      action:
        debug:
          msg: "Unknown SQS message {{ event.sqs.message_id }}: {{ event.body }}"

# The remediation playbook acknowledges the event once it is handled:
#
# - name: Acknowledge the event
#   eks_autoscaling.core.sqs_message_ack:
#     queue_url: "{{ ansible_eda.event.sqs.queue_url }}"
#     receipt_handle: "{{ ansible_eda.event.sqs.receipt_handle }}"

- name: Against the lab's AWS server
  hosts: localhost
  sources:
    - eks_autoscaling.core.sqs_events:
        queue_url: "{{ lab_aws_endpoint }}/123456789012/eksworkshop"
        endpoint_url: "{{ lab_aws_endpoint }}"
        region: ap-southeast-1
        aws_access_key_id: testing
        aws_secret_access_key: testing
        wait_time_seconds: 5
  rules:
    - name: Print every event
      condition: event.kind is defined
      action:
        print_event:
          pretty: true
"""

import asyncio
import concurrent.futures
import functools
import importlib.util
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions

logger = logging.getLogger("eks_autoscaling.core.sqs_events")

KINDS = (
    "spot_interruption",
    "capacity_reservation_interruption",
    "rebalance_recommendation",
    "instance_state_change",
    "scheduled_change",
    "alarm",
    "budget",
    "unknown",
)
EC2_DETAIL_TYPES = {
    "EC2 Spot Instance Interruption Warning": "spot_interruption",
    # Instances of an interruptible Capacity Reservation, two minutes before its owner reclaims them; the
    # same detail as a spot warning (instance-id, instance-action), plus instance-termination-time and azId.
    "EC2 Capacity Reservation Instance Interruption Warning": "capacity_reservation_interruption",
    "EC2 Instance Rebalance Recommendation": "rebalance_recommendation",
    "EC2 Instance State-change Notification": "instance_state_change",
}
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
BUDGET_DETAIL_TYPE = "AWS Budget Notification"

# Backoff after failed SQS calls; module-level so that tests can shorten it.
BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
# How long cancellation may spend making in-flight messages visible again.
RELEASE_ON_CANCEL_TIMEOUT = 5.0
# SQS's ceiling on the total time a message can be kept invisible.
MAX_VISIBILITY = 43200

_SQS_URL_HOST_RE = re.compile(r"^(?:sqs\.)?(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com")
# The budget and account regexes run on any text body (up to 256 KiB, on the event loop): each line is
# matched with [ \t] and [^\n], never \s, which crosses lines and made them quadratic on a body of blank lines.
_BUDGET_NAME_LINE_RE = re.compile(r"^[ \t]*Budget Name:[ \t]*(?P<name>[^\n]*)$", re.MULTILINE)
_BUDGET_SENTENCE_RE = re.compile(r"associated with your (?P<name>\S+) budget")
_BUDGET_SUBJECT_RE = re.compile(r"^AWS Budgets:[ \t]*(?P<name>\S+) has exceeded")
_ACCOUNT_LINE_RE = re.compile(r"^[ \t]*AWS Account[ \t]+(?P<account>\d{12})[ \t\r]*$", re.MULTILINE)
_FIELD_LINE_RE = re.compile(r"^[ \t]*(?P<key>[A-Za-z][A-Za-z ]{1,40}):[ \t]*(?P<value>[^\n]*)$", re.MULTILINE)
_INSTANCE_ARN_RE = re.compile(r"arn:[^:]*:ec2:[^:]*:[^:]*:instance/(?P<id>.*)\Z", re.DOTALL)

# Documented values (EC2 User Guide, "State change events"; CloudWatch StateValue; Budgets BudgetName).
INSTANCE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")
ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
ALARM_NAME_MAX = 255
BUDGET_NAME_MAX = 100


def _load_instance_id_rule():
    """module_utils/ec2_instance_id.py of this same collection: the rule the remediation role applies too.

    ansible-rulebook runs this file with runpy.run_path, with no ansible_collections package on sys.path,
    so the module is loaded by its path in the collection; the import is for a copy of this file run
    from elsewhere, with the collection installed on sys.path."""
    path = Path(__file__).resolve().parents[4] / "plugins" / "module_utils" / "ec2_instance_id.py"
    if path.is_file():
        spec = importlib.util.spec_from_file_location("eks_autoscaling_core_ec2_instance_id", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.is_ec2_instance_id
    from ansible_collections.eks_autoscaling.core.plugins.module_utils.ec2_instance_id import is_ec2_instance_id

    return is_ec2_instance_id


is_ec2_instance_id = _load_instance_id_rule()


class MalformedBody(ValueError):
    """A body that is no message at all, or not of the shape its type documents: never emitted."""


def _preview(value, limit=80):
    """A short printable form of a value, for a reason that goes to the log (a body can hold 256 KiB)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _string(doc, key, where, required=False):
    """doc[key] when it is a string, None when it is absent or null (unless required); otherwise malformed."""
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise MalformedBody(f"{where}{key} is not a string: {_preview(value)}")
    return value


def _instance_id(value, where):
    if not is_ec2_instance_id(value):
        raise MalformedBody(f"{where} is not an EC2 instance id: {_preview(value)}")
    return value


def _alarm_name(value, where):
    if not isinstance(value, str) or not 1 <= len(value) <= ALARM_NAME_MAX:
        raise MalformedBody(f"{where} is not an alarm name (1 to {ALARM_NAME_MAX} characters): {_preview(value)}")
    return value


def _alarm_state(value, where):
    if value not in ALARM_STATES:
        raise MalformedBody(f"{where} is not an alarm state ({', '.join(ALARM_STATES)}): {_preview(value)}")
    return value


def _budget_name(value, where):
    if not isinstance(value, str) or not 1 <= len(value) <= BUDGET_NAME_MAX or ":" in value or "\\" in value:
        raise MalformedBody(f"{where} is not a budget name (1 to {BUDGET_NAME_MAX} characters, no : or \\): {_preview(value)}")
    return value


# -- parsing: every body into one event shape, or MalformedBody --------------------------------------------
def _blank_event():
    return {
        "kind": "unknown",
        "source": None,
        "detail_type": None,
        "account": None,
        "region": None,
        "time": None,
        "instance_id": None,
        "instance_ids": [],
        "instance_type": None,
        "instance_action": None,
        "state": None,
        "alarm_name": None,
        "new_state": None,
        "budget_name": None,
        "dedup_key": None,
        "batch": [],
        "detail": None,
    }


def _loads(text, where="the body"):
    """The JSON document in ``text``, or ``text`` itself when it is plain text. Text that opens like a JSON
    object but is not JSON (truncated, or nested beyond what the parser follows) is malformed, not plain
    text: it must never be read as a budget notification."""
    if not isinstance(text, str):
        raise MalformedBody(f"{where} is not text: {_preview(text)}")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        if text.lstrip().startswith("{"):
            raise MalformedBody(f"{where} is broken JSON ({type(e).__name__}: {_preview(str(e))})") from None
        return text
    if isinstance(doc, str):
        # Encoded twice: a string here would pass for the plain text of a notification.
        raise MalformedBody(f"{where} is JSON but not an object: {_preview(doc)}")
    return doc


def _arn_part(arn, index):
    parts = arn.split(":") if isinstance(arn, str) else []
    return (parts[index] or None) if len(parts) > 5 and parts[0] == "arn" else None


def _instance_ids_from_resources(resources):
    """The instances among an event's resources (instance ARNs, or bare ids as AWS Health lists them);
    a resource that claims to be an instance but is no EC2 instance id makes the whole message malformed."""
    ids = []
    for index, resource in enumerate(resources):
        match = _INSTANCE_ARN_RE.match(resource)
        candidate = match.group("id") if match else resource
        if match or candidate.startswith("i-"):
            _instance_id(candidate, f"resources[{index}]")
            if candidate not in ids:
                ids.append(candidate)
    return ids


def _set_instances(event, ids):
    event["instance_ids"] = ids
    event["instance_id"] = ids[0] if ids else None
    # A Health event may name several instances; the key covers the set so that a repeat of it coalesces.
    # The kind (and a state change's state) is part of the key: a "terminated" must not be swallowed by
    # the spot warning of the same instance, which needs other handling.
    if ids:
        qualifier = event["kind"] + (":" + str(event["state"]) if event["kind"] == "instance_state_change" else "")
        event["dedup_key"] = f"{qualifier}:instance:" + ",".join(sorted(ids))
    else:
        event["dedup_key"] = None


def _ec2_instance_event(event, detail, resources):
    kind = EC2_DETAIL_TYPES[event["detail_type"]]
    # Every documented EC2 event names its instance in detail.instance-id; the resources are the fallback,
    # and are checked either way (after detail, whose field the reason names first): a message naming a
    # bad id anywhere is dropped whole.
    detail_ids = [_instance_id(detail["instance-id"], "detail.instance-id")] if "instance-id" in detail else []
    resource_ids = _instance_ids_from_resources(resources)
    ids = detail_ids or resource_ids
    if not ids:
        raise MalformedBody(f"{event['detail_type']} names no instance (detail.instance-id, or an instance in resources)")
    event["kind"] = kind
    event["instance_type"] = _string(detail, "instance-type", "detail.")
    event["instance_action"] = _string(detail, "instance-action", "detail.")
    if kind == "instance_state_change":
        state = detail.get("state")
        if state not in INSTANCE_STATES:
            raise MalformedBody(f"detail.state is not an instance state ({', '.join(INSTANCE_STATES)}): {_preview(state)}")
        event["state"] = state
    _set_instances(event, ids)


def _health_event(event, detail, resources):
    category = _string(detail, "eventTypeCategory", "detail.")
    resource_ids = _instance_ids_from_resources(resources)
    if category != "scheduledChange":
        return  # issues, account notifications: nothing this source acts on (kind unknown)
    entities = detail.get("affectedEntities", [])
    if not isinstance(entities, list):
        raise MalformedBody(f"detail.affectedEntities is not a list: {_preview(entities)}")
    ids = []
    for index, entity in enumerate(entities):
        if not isinstance(entity, dict):
            raise MalformedBody(f"detail.affectedEntities[{index}] is not an object: {_preview(entity)}")
        value = _string(entity, "entityValue", f"detail.affectedEntities[{index}].", required=True)
        # Other services' entities (volumes, hosts, ARNs) are not instances; an "i-" one must be one.
        if value.startswith("i-"):
            _instance_id(value, f"detail.affectedEntities[{index}].entityValue")
            if value not in ids:
                ids.append(value)
    ids = ids or resource_ids
    if ids:
        event["kind"] = "scheduled_change"
        _set_instances(event, ids)


def _eventbridge_event(doc):
    event = _blank_event()
    source = _string(doc, "source", "", required=True)
    detail_type = _string(doc, "detail-type", "", required=True)
    # EventBridge always delivers an object here, for every source: anything else is no EventBridge event.
    detail = doc.get("detail")
    if not isinstance(detail, dict):
        raise MalformedBody(f"detail is not an object: {_preview(detail)}")
    resources = doc.get("resources", [])
    if not isinstance(resources, list) or not all(isinstance(resource, str) for resource in resources):
        raise MalformedBody(f"resources is not a list of strings: {_preview(resources)}")
    event.update(
        source=source,
        detail_type=detail_type,
        account=_string(doc, "account", "") or next((_arn_part(r, 4) for r in resources if _arn_part(r, 4)), None),
        region=_string(doc, "region", ""),
        time=_string(doc, "time", ""),
        detail=detail,
    )
    if source == "aws.ec2" and detail_type in EC2_DETAIL_TYPES:
        _ec2_instance_event(event, detail, resources)
    elif source == "aws.health" and detail_type == "AWS Health Event":
        _health_event(event, detail, resources)
    elif source == "aws.cloudwatch" and detail_type == ALARM_DETAIL_TYPE:
        state = detail.get("state")
        if not isinstance(state, dict):
            raise MalformedBody(f"detail.state is not an object: {_preview(state)}")
        _set_alarm(
            event,
            _alarm_name(detail.get("alarmName"), "detail.alarmName"),
            _alarm_state(state.get("value"), "detail.state.value"),
            _string(state, "timestamp", "detail.state."),
        )
    return event


def _set_alarm(event, name, state, changed_at=None):
    event.update(kind="alarm", alarm_name=name, new_state=state)
    # The state is part of the key: an OK must not be swallowed by the ALARM it resolves. So is the time
    # of the transition when the notification gives it: copies of one notification share it, while the
    # next ALARM after an OK is a new transition even within dedup_window.
    event["dedup_key"] = f"alarm:{name}:{state}" + (f"@{changed_at}" if changed_at else "")


def _alarm_notification(doc):
    event = _blank_event()
    event.update(
        source="aws.cloudwatch",
        detail_type=ALARM_DETAIL_TYPE,
        account=_string(doc, "AWSAccountId", ""),
        region=_arn_part(_string(doc, "AlarmArn", ""), 3),
        time=_string(doc, "StateChangeTime", ""),
        detail=doc,
    )
    _set_alarm(event, _alarm_name(doc.get("AlarmName"), "AlarmName"), _alarm_state(doc.get("NewStateValue"), "NewStateValue"), event["time"])
    return event


def _set_budget(event, name):
    event.update(kind="budget", source="aws.budgets", detail_type=BUDGET_DETAIL_TYPE, budget_name=name)
    event["dedup_key"] = f"budget:{name}"


def _budget_json(doc):
    key = "budgetName" if "budgetName" in doc else "BudgetName"
    event = _blank_event()
    _set_budget(event, _budget_name(doc[key], key))
    event.update(account=_string(doc, "accountId", "") or _string(doc, "AccountId", ""), detail=doc)
    return event


def _budget_text(text, subject=None):
    """An AWS Budgets notification as Budgets publishes it to SNS (plain text), or None."""
    line = _BUDGET_NAME_LINE_RE.search(text)
    name = line.group("name").strip() if line else None
    if not name:
        match = _BUDGET_SENTENCE_RE.search(text) or (_BUDGET_SUBJECT_RE.match(subject) if isinstance(subject, str) else None)
        name = match.group("name") if match else None
    if not name or "budget" not in (text + (subject or "")).lower():
        return None
    event = _blank_event()
    _set_budget(event, _budget_name(name, "the budget name"))
    account = _ACCOUNT_LINE_RE.search(text)
    fields = {m.group("key").strip(): m.group("value").strip() for m in _FIELD_LINE_RE.finditer(text) if m.group("value").strip()}
    event.update(account=account.group("account") if account else None, detail={"text": text, "fields": fields})
    return event


def _classify(doc, subject=None, raw=True):
    """The event of a parsed message: an EventBridge event, an alarm or a budget notification, else unknown.

    A document that carries the keys of one of them is held to its shape. ``raw`` is the body itself
    (not the message of an SNS envelope): there, text other than a budget notification, and JSON that is
    no object, are no message at all."""
    if isinstance(doc, dict):
        if "detail-type" in doc or ("source" in doc and "detail" in doc):
            return _eventbridge_event(doc)
        if "AlarmName" in doc or "NewStateValue" in doc:
            return _alarm_notification(doc)
        if "budgetName" in doc or "BudgetName" in doc:
            return _budget_json(doc)
    elif isinstance(doc, str):
        budget = _budget_text(doc, subject)
        if budget:
            return budget
        if raw:
            raise MalformedBody(f"the body is neither JSON nor an AWS Budgets notification: {_preview(doc)}")
    elif raw:
        raise MalformedBody(f"the body is JSON but not an object: {_preview(doc)}")
    event = _blank_event()
    event["detail"] = doc
    return event


def _is_sns_envelope(doc):
    return isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc


def parse_body(body):
    """The event for one SQS message body, without its ``sqs`` key.

    Raises MalformedBody (with the reason) for a body to drop; any other exception is a bug of the parser."""
    doc = _loads(body)
    if _is_sns_envelope(doc):
        message = doc["Message"]
        if not isinstance(message, str):
            raise MalformedBody(f"the SNS Message is not a string: {_preview(message)}")
        subject = _string(doc, "Subject", "the SNS ")
        event = _classify(_loads(message, "the SNS Message"), subject=subject, raw=False)
        topic = _string(doc, "TopicArn", "the SNS ")
        event["account"] = event["account"] or _arn_part(topic, 4)
        event["region"] = event["region"] or _arn_part(topic, 3)
        event["time"] = event["time"] or _string(doc, "Timestamp", "the SNS ")
        event["source"] = event["source"] or "aws.sns"
    else:
        event = _classify(doc)
    event["body"] = doc
    return event


def _as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def build_event(message, queue_url):
    """The event for one message of a ReceiveMessage answer; MalformedBody for a body to drop."""
    attributes = message.get("Attributes") or {}
    event = {
        "sqs": {
            "queue_url": queue_url,
            "message_id": message.get("MessageId"),
            "receipt_handle": message.get("ReceiptHandle"),
            "receive_count": _as_int(attributes.get("ApproximateReceiveCount")),
            "sent_timestamp": _as_int(attributes.get("SentTimestamp")),
            "acked_by_source": False,
        }
    }
    event.update(parse_body(message.get("Body")))
    return event



# -- arguments -------------------------------------------------------------------------------------------
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


def _int_arg(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"sqs_events: {name} must be a whole number, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"sqs_events: {name} must be a whole number, got {value!r}") from None


def _float_arg(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"sqs_events: {name} must be a number of seconds, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"sqs_events: {name} must be a number of seconds, got {value!r}") from None


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


# -- the source ------------------------------------------------------------------------------------------
@dataclass
class _InFlight:
    message_id: str
    receipt_handle: str
    dedup_key: Optional[str]
    since: float
    # Duplicates held with a lead: message id -> receipt handle.
    held: Dict[str, str] = field(default_factory=dict)
    # The dedup keys of the other messages of its batch, coalesced and acknowledged with it.
    batch_keys: List[str] = field(default_factory=list)

    @property
    def keys(self):
        return ([self.dedup_key] if self.dedup_key is not None else []) + self.batch_keys


@dataclass
class _Batch:
    """Instance events of one kind gathered while batch_interval runs, emitted as one event."""

    lead: _InFlight
    event: Dict[str, Any]
    instance_ids: List[str]
    entries: List[Dict[str, Any]]
    timer: Optional[asyncio.Task] = None


# Instance events that can go out together: their remediations act on a list of nodes.
BATCHED_KINDS = (
    "spot_interruption", "capacity_reservation_interruption", "rebalance_recommendation", "instance_state_change", "scheduled_change",
)


def _batch_entry(message_id, event):
    return {"message_id": message_id, "instance_ids": list(event["instance_ids"]), "instance_type": event["instance_type"]}


def _backoff(failures):
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)


def _chunks(items, size=10):
    return [items[start : start + size] for start in range(0, len(items), size)]


class SqsEventSource:
    """Receives, emits, heartbeats and coalesces. One instance per main() call."""

    def __init__(self, queue, config, client, executor):
        self.queue = queue
        self.config = config
        self.client = client
        self.executor = executor
        self._visibility_calls = set()
        self.queue_url = config.queue_url
        # Events in flight, by message id, and the lead message id for each dedup key.
        self.leads: Dict[str, _InFlight] = {}
        self.lead_by_key: Dict[str, str] = {}
        # Held duplicate message id -> its lead's message id.
        self.held: Dict[str, str] = {}
        # Dedup key -> (monotonic expiry, message id of the handled lead).
        self.handled: Dict[str, tuple] = {}
        # Messages the source has to delete (held duplicates of handled events, unknown events).
        self.doomed: Dict[str, str] = {}
        # Batches being gathered, and when the last event went out, by batch group (kind, state).
        self.pending: Dict[str, _Batch] = {}
        self.last_emitted: Dict[str, float] = {}

    async def _call(self, method, **kwargs):
        future = self.executor.submit(functools.partial(getattr(self.client, method), **kwargs))
        if method == "change_message_visibility_batch":
            # Cancelling the awaiting task does not stop the call in its thread: a heartbeat still in
            # flight when the source is cancelled would hide the messages again after their release.
            self._visibility_calls.add(future)
            future.add_done_callback(self._visibility_calls.discard)
        return await asyncio.wrap_future(future)

    async def _settle_visibility_calls(self):
        pending = list(self._visibility_calls)
        if pending:
            await asyncio.get_running_loop().run_in_executor(None, functools.partial(concurrent.futures.wait, pending, RELEASE_ON_CANCEL_TIMEOUT))

    # -- lifecycle
    async def run(self):
        await self._resolve_queue_url()
        logger.info("receiving events from %s", self.queue_url)
        tasks = [asyncio.create_task(self._receive_loop()), asyncio.create_task(self._heartbeat_loop())]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            tasks += [batch.timer for batch in self.pending.values() if batch.timer is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self._settle_visibility_calls()
                await asyncio.wait_for(self.release_all(), RELEASE_ON_CANCEL_TIMEOUT)
            except Exception:  # noqa: BLE001 - best effort (timeouts included); the visibility timeout covers the rest
                logger.warning("could not release every message in flight; they become visible within %ss", self.config.visibility_timeout)
            raise

    async def _resolve_queue_url(self):
        failures = 0
        while self.queue_url is None:
            try:
                self.queue_url = (await self._call("get_queue_url", QueueName=self.config.queue_name))["QueueUrl"]
            except Exception as e:  # noqa: BLE001 - the queue may not exist yet; keep trying
                failures += 1
                delay = _backoff(failures)
                logger.error("cannot find SQS queue %r (%s); retrying in %.1fs", self.config.queue_name, e, delay)
                await asyncio.sleep(delay)

    async def release_all(self):
        entries = []
        for lead in list(self.leads.values()):
            entries += self._untrack(lead)
        if entries:
            await self._change_visibility(entries, 0)
            logger.info("released %d message(s) in flight", len(entries))

    # -- receiving
    async def _receive_loop(self):
        failures = 0
        while True:
            try:
                response = await self._call(
                    "receive_message",
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=self.config.max_messages,
                    WaitTimeSeconds=self.config.wait_time_seconds,
                    VisibilityTimeout=self.config.visibility_timeout,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                )
            except Exception as e:  # noqa: BLE001 - transient or not, the source keeps polling
                failures += 1
                delay = _backoff(failures)
                logger.warning("ReceiveMessage on %s failed (%s); retrying in %.1fs", self.queue_url, e, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            for message in response.get("Messages") or []:
                await self._dispatch(message)
            if self.doomed:
                await self._delete_doomed()

    async def _dispatch(self, message):
        message_id, handle = message["MessageId"], message["ReceiptHandle"]
        if message_id in self.doomed:
            self.doomed[message_id] = handle
            return
        if message_id in self.held:
            lead = self.leads.get(self.held[message_id])
            if lead is not None:
                lead.held[message_id] = handle
            return
        try:
            event = build_event(message, self.queue_url)
        except MalformedBody as e:
            # Dropped alone, before coalescing and batching: it can never hold back, or get refused with it,
            # a valid event, and nothing could handle it on a redelivery either.
            logger.warning("message %s is malformed (%s); deleting it without emitting it", message_id, e)
            self.doomed[message_id] = handle
            return
        except Exception:  # noqa: BLE001 - a parser bug must not stop the source, nor lose the message
            logger.exception("could not parse message %s; leaving it for redelivery (and the dead-letter queue)", message_id)
            return
        if message_id in self.leads:
            # Only when heartbeats could not keep it invisible: the handler's receipt handle may no
            # longer delete it, so the event goes out again with the new one.
            self.leads[message_id].receipt_handle = handle
            logger.warning("message %s came back while its event was in flight; emitting it again", message_id)
            await self.queue.put(event)
            return
        if event["kind"] == "unknown" and self.config.ack_unknown:
            event["sqs"]["acked_by_source"] = True
            logger.info("message %s is not an event this source knows; emitting it as unknown and deleting it", message_id)
            await self.queue.put(event)
            self.doomed[message_id] = handle
            return
        key = event["dedup_key"] if self.config.dedup else None
        if key is not None:
            lead_id = self.lead_by_key.get(key)
            if lead_id is not None:
                self.leads[lead_id].held[message_id] = handle
                self.held[message_id] = lead_id
                logger.debug("message %s duplicates %s (%s); held", message_id, lead_id, key)
                return
            handled = self.handled.get(key)
            if handled and handled[0] > time.monotonic() and handled[1] != message_id:
                logger.info("message %s duplicates an event handled moments ago (%s); deleting it", message_id, key)
                self.doomed[message_id] = handle
                return
            group = self._batch_group(event)
            if group is not None and await self._gather(group, event, message_id, handle, key):
                return
        self._track(message_id, handle, key)
        logger.info("emitting %s event for message %s (%s)", event["kind"], message_id, key)
        await self.queue.put(event)

    # -- batching
    def _batch_group(self, event):
        if self.config.batch_interval <= 0 or event["kind"] not in BATCHED_KINDS or not event["instance_ids"]:
            return None
        return event["kind"] + (":" + str(event["state"]) if event["kind"] == "instance_state_change" else "")

    def _track(self, message_id, handle, key):
        lead = _InFlight(message_id, handle, key, time.monotonic())
        self.leads[message_id] = lead
        if key is not None:
            self.lead_by_key[key] = message_id
        return lead

    async def _gather(self, group, event, message_id, handle, key):
        """Hold the message in its group's pending batch (True), or let it go out at once when the group has
        been quiet for batch_interval (False)."""
        batch = self.pending.get(group)
        if batch is not None:
            new_ids = [i for i in event["instance_ids"] if i not in batch.instance_ids]
            if len(batch.instance_ids) + len(new_ids) <= self.config.batch_max_instances:
                lead = batch.lead
                lead.held[message_id] = handle
                lead.batch_keys.append(key)
                self.held[message_id] = lead.message_id
                self.lead_by_key[key] = lead.message_id
                batch.instance_ids += new_ids
                batch.entries.append(_batch_entry(message_id, event))
                logger.debug("message %s (%s) joins the %s batch of %s", message_id, key, group, lead.message_id)
                return True
            await self._flush(group)
        now = time.monotonic()
        last = self.last_emitted.get(group)
        event["batch"] = [_batch_entry(message_id, event)]
        if last is None or now - last >= self.config.batch_interval:
            self.last_emitted[group] = now
            return False
        batch = _Batch(self._track(message_id, handle, key), event, list(event["instance_ids"]), event["batch"])
        self.pending[group] = batch
        logger.info("gathering a %s batch from message %s (%s)", group, message_id, key)
        batch.timer = asyncio.create_task(self._flush_after(group, batch, last + self.config.batch_interval - now))
        return True

    async def _flush_after(self, group, batch, delay):
        await asyncio.sleep(delay)
        if self.pending.get(group) is batch:
            await self._flush(group)

    async def _flush(self, group):
        batch = self.pending.pop(group)
        if batch.timer is not None and batch.timer is not asyncio.current_task():
            batch.timer.cancel()
        lead = batch.lead
        if self.leads.get(lead.message_id) is not lead:
            return  # released or gone while it was gathered; its messages went with it
        now = time.monotonic()
        # max_inflight_seconds counts from when the rulebook got the event.
        lead.since = now
        self.last_emitted[group] = now
        event = batch.event
        _set_instances(event, batch.instance_ids)
        event["batch"] = batch.entries
        logger.info(
            "emitting %s event for %d message(s), %d instance(s) (%s)",
            event["kind"], len(batch.entries), len(batch.instance_ids), event["dedup_key"],
        )
        await self.queue.put(event)

    # -- heartbeats
    async def _heartbeat_loop(self):
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                await self.heartbeat()
            except Exception:  # noqa: BLE001 - a failed beat is retried at the next one
                logger.exception("heartbeat failed")

    def _untrack(self, lead):
        """Stop tracking a lead and its held duplicates; return all their (message id, receipt handle)."""
        self.leads.pop(lead.message_id, None)
        for key in lead.keys:
            if self.lead_by_key.get(key) == lead.message_id:
                del self.lead_by_key[key]
        for held_id in lead.held:
            self.held.pop(held_id, None)
        return [(lead.message_id, lead.receipt_handle), *lead.held.items()]

    async def heartbeat(self):
        now = time.monotonic()
        self.handled = {key: value for key, value in self.handled.items() if value[0] > now}

        expired = [lead for lead in self.leads.values() if now - lead.since >= self.config.max_inflight_seconds]
        released = []
        for lead in expired:
            # Untracked before the call, so a redelivery that races it is a new lead, not a duplicate.
            released += self._untrack(lead)
            logger.warning(
                "event of message %s (%s) not handled within %ss; making it and %d duplicate(s) visible again",
                lead.message_id,
                lead.dedup_key,
                self.config.max_inflight_seconds,
                len(lead.held),
            )
        if released:
            await self._change_visibility(released, 0)

        entries = [(lead.message_id, lead.receipt_handle) for lead in self.leads.values()]
        entries += [(held_id, handle) for lead in self.leads.values() for held_id, handle in lead.held.items()]
        if entries:
            results = await self._change_visibility(entries, self.config.visibility_timeout)
            orphans = self._apply_heartbeat(results)
            if orphans:
                await self._change_visibility(orphans, 0)
        if self.doomed:
            await self._delete_doomed()

    def _apply_heartbeat(self, results):
        """Forget what was handled; return the messages to make visible again (see below)."""
        orphans = []
        pending_leads = {batch.lead.message_id for batch in self.pending.values()}
        for (message_id, handle), status in results.items():
            if status != "gone":
                continue
            lead = self.leads.get(message_id)
            # The handle check skips answers about a handle replaced by a redelivery during the call.
            if lead is not None and lead.receipt_handle == handle and message_id in pending_leads:
                # Gone before its batch went out (a purge, retention): nobody handled the others.
                orphans += self._untrack(lead)[1:]
                logger.warning("message %s left the queue before its batch was emitted; releasing the rest", message_id)
                continue
            if lead is not None and lead.receipt_handle == handle:
                duplicates = dict(lead.held)
                self._untrack(lead)
                self.doomed.update(duplicates)
                if self.config.dedup_window > 0:
                    for key in lead.keys:
                        self.handled[key] = (time.monotonic() + self.config.dedup_window, message_id)
                logger.info(
                    "message %s (%s) was deleted: its event was handled; deleting %d duplicate(s)",
                    message_id,
                    lead.dedup_key,
                    len(duplicates),
                )
                continue
            owner = self.leads.get(self.held.get(message_id))
            if owner is not None and owner.held.get(message_id) == handle:
                # Someone else deleted a duplicate; nothing left to do for it.
                del owner.held[message_id]
                del self.held[message_id]
        return orphans

    async def _change_visibility(self, entries, timeout):
        """ChangeMessageVisibilityBatch for (message id, receipt handle) pairs, ten at a time, concurrently.
        Returns {(message id, handle): "ok" | "gone" | "error"}; "gone" is a refusal of the handle."""

        async def one_batch(batch):
            try:
                response = await self._call(
                    "change_message_visibility_batch",
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": timeout}
                        for index, (_, handle) in enumerate(batch)
                    ],
                )
            except Exception as e:  # noqa: BLE001 - retried at the next heartbeat
                logger.warning("ChangeMessageVisibilityBatch on %s failed (%s)", self.queue_url, e)
                return {entry: "error" for entry in batch}
            results = {batch[int(item["Id"])]: "ok" for item in response.get("Successful") or []}
            for item in response.get("Failed") or []:
                # A sender fault refuses the handle (deleted, expired or invalid); anything else is SQS's
                # own trouble and is tried again at the next heartbeat.
                results[batch[int(item["Id"])]] = "gone" if item.get("SenderFault") else "error"
                if not item.get("SenderFault"):
                    logger.warning("ChangeMessageVisibility failed for a message: %s", item)
            return results

        results = {}
        for answer in await asyncio.gather(*(one_batch(batch) for batch in _chunks(entries))):
            results.update(answer)
        return results

    async def _delete_doomed(self):
        entries = list(self.doomed.items())

        async def one_batch(batch):
            try:
                response = await self._call(
                    "delete_message_batch",
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(index), "ReceiptHandle": handle} for index, (_, handle) in enumerate(batch)],
                )
            except Exception as e:  # noqa: BLE001 - kept in doomed, retried at the next heartbeat
                logger.warning("DeleteMessageBatch on %s failed (%s)", self.queue_url, e)
                return []
            done = [batch[int(item["Id"])] for item in response.get("Successful") or []]
            # A refused handle means the message is already gone (or will come back and be deleted then).
            done += [batch[int(item["Id"])] for item in response.get("Failed") or [] if item.get("SenderFault")]
            return done

        for answer in await asyncio.gather(*(one_batch(batch) for batch in _chunks(entries))):
            for message_id, handle in answer:
                if self.doomed.get(message_id) == handle:
                    del self.doomed[message_id]


async def main(queue: asyncio.Queue, args: Dict[str, Any]) -> None:
    """Entry point for ansible-rulebook. Runs until cancelled."""
    config = SourceConfig.from_args(args)
    # A dedicated pool: a long poll in progress must not hold up the loop's default executor at shutdown.
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="sqs_events")
    try:
        client = make_client(config, max_pool_connections=8)
        await SqsEventSource(queue, config, client, executor).run()
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__":
    # Run alone for a quick look at a queue: python sqs_events.py <queue-url-or-name> [endpoint-url]
    import sys

    class _PrintQueue:
        async def put(self, event):
            print(json.dumps(event, indent=2, default=str))

    logging.basicConfig(level=logging.INFO)
    target = sys.argv[1]
    cli_args = {"queue_url" if target.startswith(("http://", "https://")) else "queue_name": target}
    if len(sys.argv) > 2:
        cli_args["endpoint_url"] = sys.argv[2]
    asyncio.run(main(_PrintQueue(), cli_args))
