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
    C(sqs) (C(queue_url), C(region) (where the queue is read: the message is deleted there), C(message_id),
    C(receipt_handle), C(receive_count), C(sent_timestamp), C(acked_by_source)), C(kind) (V(spot_interruption), V(capacity_reservation_interruption), V(rebalance_recommendation),
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

# The code lives in this collection's module_utils, one module per concern, each tested on its own:
# sqs_event_parsing.py (a body into an event, or malformed), sqs_event_settings.py (the arguments, and the
# SQS client they describe) and sqs_event_delivery.py (receiving, coalescing, batching, acknowledging).
# This file documents the source and wires them for ansible-rulebook.
import asyncio
import concurrent.futures
import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict


def _module_utils_package():
    """The name to import this collection's module_utils by.

    ansible-rulebook runs this file with runpy.run_path, with no ansible_collections package on sys.path:
    the module_utils directory next to this file is loaded by its path, as a package of its own (so that
    its modules' relative imports find each other), named after that path so that another copy of the
    collection in the same process is never mixed in. The import is for a copy of this file run from
    elsewhere, with the collection installed on sys.path."""
    directory = Path(__file__).resolve().parents[4] / "plugins" / "module_utils"
    if not directory.is_dir():
        return "ansible_collections.eks_autoscaling.core.plugins.module_utils"
    name = "_eks_autoscaling_core_module_utils_" + hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
        sys.modules[name] = importlib.util.module_from_spec(spec)
    return name


_PACKAGE = _module_utils_package()
sqs_event_settings = importlib.import_module(f"{_PACKAGE}.sqs_event_settings")
sqs_event_delivery = importlib.import_module(f"{_PACKAGE}.sqs_event_delivery")
SourceConfig = sqs_event_settings.SourceConfig
make_client = sqs_event_settings.make_client
SqsEventSource = sqs_event_delivery.SqsEventSource


async def main(queue: asyncio.Queue, args: Dict[str, Any]) -> None:
    """Entry point for ansible-rulebook. Never returns: runs until cancelled.

    Bad arguments raise ValueError before any AWS call. On cancellation the engine makes the messages
    in flight visible again (best effort, within seconds) and CancelledError goes on to ansible-rulebook."""
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
    class _PrintQueue:
        async def put(self, event):
            print(json.dumps(event, indent=2, default=str))

    logging.basicConfig(level=logging.INFO)
    target = sys.argv[1]
    cli_args = {"queue_url" if target.startswith(("http://", "https://")) else "queue_name": target}
    if len(sys.argv) > 2:
        cli_args["endpoint_url"] = sys.argv[2]
    asyncio.run(main(_PrintQueue(), cli_args))
