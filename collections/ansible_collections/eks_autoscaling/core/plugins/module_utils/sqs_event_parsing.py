# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The sqs_events event source's parsing: one SQS message body into one event shape, or MalformedBody.

Pure functions, no I/O: the source's delivery engine (sqs_event_delivery.py) calls ``build_event`` for
each message it receives, and decides from the answer what to emit, hold or delete. What the shapes are,
and what makes a body malformed, is documented in the source's DOCUMENTATION.

Imports within this collection's module_utils are relative: the event source loads this directory by
its path (ansible-rulebook runs the source with runpy.run_path, without ansible_collections on sys.path).
"""

import json
import re

from .ec2_instance_id import is_ec2_instance_id

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


def set_instances(event, ids):
    """Name ``ids`` as the event's instances and key it by them; the delivery engine widens a batch event so too."""
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
    set_instances(event, ids)


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
        set_instances(event, ids)


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


def build_event(message, queue_url, queue_region=None):
    """The event for one message of a ReceiveMessage answer; MalformedBody for a body to drop."""
    attributes = message.get("Attributes") or {}
    event = {
        "sqs": {
            "queue_url": queue_url,
            "region": queue_region,
            "message_id": message.get("MessageId"),
            "receipt_handle": message.get("ReceiptHandle"),
            "receive_count": _as_int(attributes.get("ApproximateReceiveCount")),
            "sent_timestamp": _as_int(attributes.get("SentTimestamp")),
            "acked_by_source": False,
        }
    }
    event.update(parse_body(message.get("Body")))
    return event
