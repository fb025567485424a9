"""The sqs_events event source: loading, at-least-once delivery, coalescing, batching, errors, cancellation.

Parsing and settings have their own tests (test_sqs_event_parsing.py, test_sqs_event_settings.py); here
the engine (module_utils/sqs_event_delivery.py) runs wired by the source file.

The source runs as ansible-rulebook runs it: ``main(queue, args)`` as an asyncio task putting events
on an asyncio.Queue, here against the in-process AWS server (moto) of conftest.py. Acknowledging is
done with module_utils/sqs_messages.py, as the remediation playbooks do through sqs_message_ack.

moto keeps visibility timeouts in real time, so the timings below are short: visibility timeouts of
2 seconds, heartbeats every 0.3 seconds, long polls of 1 second.
"""
import asyncio
import contextlib
import importlib.util
import json
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ansible_collections.eks_autoscaling.core.plugins.module_utils import ec2_instance_id, sqs_messages
from lab import events as lab_events

from tests.conftest import COLLECTIONS, CREDENTIALS, REGION, RecordingClient, make_client
from .test_sqs_event_parsing import EVENT_KEYS, MALFORMED_CASES, PARSE_CASES, SQS_KEYS, alarm_body, eventbridge_body, spot_body

SOURCE_PATH = (
    COLLECTIONS / "ansible_collections" / "eks_autoscaling" / "core" / "extensions" / "eda" / "plugins" / "event_source" / "sqs_events.py"
)
FAST = {"wait_time_seconds": 1, "visibility_timeout": 2, "heartbeat_interval": 0.3, "max_inflight_seconds": 60}


def _load_source():
    # As ansible-rulebook does (runpy.run_path): a file, not a package module.
    spec = importlib.util.spec_from_file_location("sqs_events_under_test", SOURCE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sqs_events = _load_source()


def test_the_source_and_the_remediation_share_one_instance_id_rule():
    """The source loads its collection's module_utils by path (ansible-rulebook runs it with run_path), and
    its parsing ec2_instance_id.py; the remediation role's test plugin imports it: the same function, not a
    copy of its pattern."""
    from ansible_collections.eks_autoscaling.core.plugins.test.ec2_instance_id import TestModule

    parsing = sys.modules[f"{sqs_events._PACKAGE}.sqs_event_parsing"]
    assert parsing.is_ec2_instance_id.__code__.co_filename == ec2_instance_id.__file__
    assert TestModule().tests()["ec2_instance_id"] is ec2_instance_id.is_ec2_instance_id
    assert all("[0-9a-f]" not in path.read_text() for path in (SOURCE_PATH, Path(parsing.__file__)))


def test_the_source_runs_as_ansible_rulebook_loads_it_without_ansible_collections_on_the_path(tmp_path):
    """runpy.run_path from elsewhere, with only the venv's collections importable: the source finds the
    module_utils next to it by path, never another copy of this collection."""
    script = (
        "import runpy, sys, asyncio\n"
        f"module = runpy.run_path({str(SOURCE_PATH)!r})\n"
        "assert asyncio.iscoroutinefunction(module['main'])\n"
        "assert not [name for name in sys.modules if name.startswith('ansible_collections.eks_autoscaling')]\n"
        "print(module['sqs_event_delivery'].__file__)\n"
        "print(module['sqs_event_settings'].__file__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    module_utils = SOURCE_PATH.parents[4] / "plugins" / "module_utils"
    assert result.stdout.split() == [str(module_utils / "sqs_event_delivery.py"), str(module_utils / "sqs_event_settings.py")]


# -- against the in-process AWS server ------------------------------------------------------------------------
@pytest.fixture
def sqs(aws_endpoint):
    return make_client(aws_endpoint, "sqs")


@pytest.fixture
def make_queue(sqs):
    def _make(**attributes):
        name = f"events-{uuid.uuid4().hex[:10]}"
        return sqs.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]

    return _make


@pytest.fixture
def ack_client(aws_endpoint):
    """A client as sqs_message_ack gets it, for acknowledging the way the playbooks do."""
    return RecordingClient(aws_endpoint, "sqs").client


@pytest.fixture
def source_args(aws_endpoint):
    def _args(queue_url, **overrides):
        return {"queue_url": queue_url, "endpoint_url": aws_endpoint, "region": REGION, **CREDENTIALS, **FAST, **overrides}

    return _args


@contextlib.asynccontextmanager
async def running(args):
    """The source as ansible-rulebook runs it, cancelled (and checked to end) on the way out."""
    events = asyncio.Queue()
    task = asyncio.create_task(sqs_events.main(events, args))
    try:
        yield events, task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def take(events, count, timeout=10.0):
    taken = []
    deadline = time.monotonic() + timeout
    while len(taken) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{len(taken)} event(s) of {count} after {timeout}s: {[e['kind'] for e in taken]}")
        taken.append(await asyncio.wait_for(events.get(), remaining))
    return taken


async def assert_no_event(events, seconds):
    with pytest.raises(asyncio.TimeoutError):
        event = await asyncio.wait_for(events.get(), seconds)
        pytest.fail(f"unexpected event {event['kind']} {event['dedup_key']}")


def counts(sqs, url):
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


async def until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s")
        await asyncio.sleep(0.1)


def send(sqs, url, bodies):
    for start in range(0, len(bodies), 10):
        batch = bodies[start : start + 10]
        response = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(batch)])
        assert not response.get("Failed"), response


def ack(client, event):
    return sqs_messages.delete_message(client, event["sqs"]["queue_url"], event["sqs"]["receipt_handle"])


async def ack_until_empty(ack_client, sqs, url, handled):
    """Acknowledge each event as a playbook would; then the source must have deleted everything held with them."""
    for event in handled:
        assert ack(ack_client, event)["changed"] is True
    await until(lambda: counts(sqs, url) == (0, 0), what="empty queue")


async def test_lab_injected_events_arrive_in_one_shape(aws_endpoint, sqs, make_queue, source_args, ack_client):
    """Every event kind lab/events.py injects, through EventBridge and SNS as in the lab, then acknowledged."""
    url = make_queue()
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = f"bus-{uuid.uuid4().hex[:8]}"
    bridge = make_client(aws_endpoint, "events")
    bridge.create_event_bus(Name=bus)
    bridge.put_rule(Name="to-queue", EventBusName=bus, EventPattern=json.dumps({"source": ["aws.ec2", "aws.health"]}))
    bridge.put_targets(Rule="to-queue", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    sns = make_client(aws_endpoint, "sns")
    topic = sns.create_topic(Name=f"topic-{uuid.uuid4().hex[:8]}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)

    for kind, instance in (
        ("spot-interruption", "i-0e100000000000000"),
        ("rebalance-recommendation", "i-0e200000000000000"),
        ("instance-state-change", "i-0e300000000000000"),
        ("scheduled-change", "i-0e400000000000000"),
        ("capacity-reservation-interruption", "i-0e500000000000000"),
    ):
        lab_events.inject(aws_endpoint, kind, instance_id=instance, event_bus=bus, region=REGION)
    lab_events.inject(aws_endpoint, "billing-alarm", topic_arn=topic)
    lab_events.inject(aws_endpoint, "budget-alert", topic_arn=topic, budget_name="text-budget")
    lab_events.inject(aws_endpoint, "budget-alert", topic_arn=topic, budget_name="json-budget", as_json=True)

    async with running(source_args(url)) as (events, _):
        received = await take(events, 8)
        by_kind = {}
        for event in received:
            assert set(event) == EVENT_KEYS and set(event["sqs"]) == SQS_KEYS
            by_kind.setdefault(event["kind"], []).append(event)
        assert {kind: len(items) for kind, items in by_kind.items()} == {
            "spot_interruption": 1,
            "rebalance_recommendation": 1,
            "instance_state_change": 1,
            "scheduled_change": 1,
            "capacity_reservation_interruption": 1,
            "alarm": 1,
            "budget": 2,
        }
        assert by_kind["spot_interruption"][0]["instance_id"] == "i-0e100000000000000"
        assert by_kind["instance_state_change"][0]["state"] == "terminated"
        assert by_kind["scheduled_change"][0]["instance_id"] == "i-0e400000000000000"
        assert by_kind["capacity_reservation_interruption"][0]["instance_ids"] == ["i-0e500000000000000"]
        assert by_kind["capacity_reservation_interruption"][0]["instance_action"] == "terminate"
        assert by_kind["alarm"][0]["new_state"] == "ALARM"
        assert sorted(e["budget_name"] for e in by_kind["budget"]) == ["json-budget", "text-budget"]
        assert all(e["sqs"]["queue_url"] == url and e["sqs"]["receive_count"] == 1 for e in received)
        # Where the remediation deletes the message, whichever cluster of a fleet acts on it.
        assert {e["sqs"]["region"] for e in received} == {REGION}

        await ack_until_empty(ack_client, sqs, url, received)
        await assert_no_event(events, 1)


async def test_event_stays_in_flight_until_acknowledged(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    send(sqs, url, [spot_body("i-0f100000000000000")])
    async with running(source_args(url)) as (events, _):
        (event,) = await take(events, 1)
        assert event["kind"] == "spot_interruption" and event["sqs"]["receive_count"] == 1
        # Twice the visibility timeout: without heartbeats the message would be visible again by now.
        await assert_no_event(events, 4)
        assert counts(sqs, url) == (0, 1)

        result = ack(ack_client, event)
        assert result["changed"] is True and result["receipt_handle_stale"] is False
        assert counts(sqs, url) == (0, 0)
        # The source notices at its next heartbeat and stops tracking; nothing comes back.
        await assert_no_event(events, 1.5)
        assert ack(ack_client, event)["changed"] is False


async def test_unacknowledged_event_is_delivered_again_after_max_inflight(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    send(sqs, url, [spot_body("i-0f200000000000000")])
    async with running(source_args(url, max_inflight_seconds=1.5)) as (events, _):
        (first,) = await take(events, 1)
        (second,) = await take(events, 1, timeout=6)
        assert second["sqs"]["message_id"] == first["sqs"]["message_id"]
        assert second["sqs"]["receive_count"] == 2
        # The first receipt handle is stale now; the second one acknowledges.
        assert ack(ack_client, second)["changed"] is True
        await until(lambda: counts(sqs, url) == (0, 0), what="empty queue")


async def test_unhandled_event_ends_in_the_dead_letter_queue(sqs, make_queue, source_args):
    dlq = make_queue()
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = make_queue(RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    send(sqs, url, [spot_body("i-0f300000000000000")])
    async with running(source_args(url, max_inflight_seconds=1)) as (events, _):
        received = await take(events, 2, timeout=8)
        assert [e["sqs"]["receive_count"] for e in received] == [1, 2]
        await until(lambda: counts(sqs, dlq)[0] == 1, what="message in the dead-letter queue")
        await assert_no_event(events, 1)
        assert counts(sqs, url) == (0, 0)


async def test_duplicates_coalesce_into_one_event_per_key(sqs, make_queue, source_args, ack_client):
    """8 copies for each of 5 instances: 5 events; acknowledging the 5 empties the queue."""
    url = make_queue()
    instances = [f"i-0d{index}00000000000000" for index in range(5)]
    send(sqs, url, [spot_body(instance) for _ in range(8) for instance in instances])
    async with running(source_args(url)) as (events, _):
        received = await take(events, 5)
        assert sorted(e["instance_id"] for e in received) == instances
        await until(lambda: counts(sqs, url) == (0, 40), what="all 40 messages in flight")
        await assert_no_event(events, 2.5)  # beyond the visibility timeout: held copies are kept invisible

        for event in received:
            assert ack(ack_client, event)["changed"] is True
        await until(lambda: counts(sqs, url) == (0, 0), what="held duplicates deleted")

        # A copy arriving just after its event was handled is deleted, not emitted again.
        send(sqs, url, [spot_body(instances[0])])
        await until(lambda: counts(sqs, url) == (0, 0), what="late duplicate deleted")
        await assert_no_event(events, 0.5)


async def test_different_alarm_states_are_not_coalesced(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    send(sqs, url, [alarm_body("bill", "ALARM"), alarm_body("bill", "ALARM"), alarm_body("bill", "OK")])
    async with running(source_args(url)) as (events, _):
        received = await take(events, 2)
        assert sorted(e["new_state"] for e in received) == ["ALARM", "OK"]
        await until(lambda: counts(sqs, url) == (0, 3), what="all in flight")
        for event in received:
            ack(ack_client, event)
        await until(lambda: counts(sqs, url) == (0, 0), what="empty queue")


async def test_other_kinds_for_the_same_instance_are_not_coalesced(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    terminated = eventbridge_body("instance-state-change", "i-0d100000000000000", state="terminated")
    send(sqs, url, [spot_body("i-0d100000000000000"), spot_body("i-0d100000000000000"), terminated])
    async with running(source_args(url)) as (events, _):
        received = await take(events, 2)
        assert sorted(e["kind"] for e in received) == ["instance_state_change", "spot_interruption"]
        for event in received:
            ack(ack_client, event)
        await until(lambda: counts(sqs, url) == (0, 0), what="empty queue")


async def test_without_dedup_every_copy_is_an_event(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    send(sqs, url, [spot_body("i-0c100000000000000")] * 3)
    async with running(source_args(url, dedup=False)) as (events, _):
        received = await take(events, 3)
        assert len({e["sqs"]["message_id"] for e in received}) == 3
        for event in received:
            ack(ack_client, event)
        await until(lambda: counts(sqs, url) == (0, 0), what="empty queue")


async def test_lead_timeout_releases_its_duplicates_too(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    send(sqs, url, [spot_body("i-0b100000000000000")] * 3)
    async with running(source_args(url, max_inflight_seconds=1.5)) as (events, _):
        (first,) = await take(events, 1)
        await until(lambda: counts(sqs, url) == (0, 3), what="all in flight")
        # Released together, received again: one of the three leads again, the others are held again.
        (again,) = await take(events, 1, timeout=6)
        assert again["dedup_key"] == first["dedup_key"] == "spot_interruption:instance:i-0b100000000000000"
        assert again["sqs"]["receive_count"] == 2
        assert ack(ack_client, again)["changed"] is True
        await until(lambda: counts(sqs, url) == (0, 0), what="duplicates deleted with the new lead")


async def test_malformed_bodies_are_deleted_and_never_emitted_unknown_ones_are_emitted_as_unknown(sqs, make_queue, source_args, caplog):
    url = make_queue()
    caplog.set_level(logging.INFO, logger="eks_autoscaling.core.sqs_events")
    malformed = [body for _, body, _ in MALFORMED_CASES]
    unknown = [body for name, body, expected in PARSE_CASES if expected["kind"] == "unknown"]
    send(sqs, url, malformed + unknown)
    async with running(source_args(url)) as (events, task):
        received = await take(events, len(unknown))
        assert {e["kind"] for e in received} == {"unknown"}
        assert all(e["sqs"]["acked_by_source"] is True and e["dedup_key"] is None for e in received)
        await until(lambda: counts(sqs, url) == (0, 0), what="malformed and unknown messages deleted")
        await assert_no_event(events, 1)
        dropped = [r for r in caplog.records if "is malformed" in r.getMessage()]
        assert len(dropped) == len(malformed) and all(r.levelno == logging.WARNING for r in dropped)
        assert not task.done()


async def test_a_bad_instance_id_in_a_burst_is_dropped_alone_and_the_batch_goes_out_without_it(
    sqs, make_queue, source_args, ack_client, caplog
):
    """The issue's burst: warnings whose instance id is no EC2 id, among real ones gathered into a batch.
    The bad ones are deleted on receipt; the batch names exactly the real instances and is acknowledged
    whole, so no real warning waits for redelivery or ends in the dead-letter queue."""
    url = make_queue()
    caplog.set_level(logging.INFO, logger="eks_autoscaling.core.sqs_events")
    send(sqs, url, [spot_body("i-0f000000000000000")])
    async with running(source_args(url, batch_interval=1.5)) as (events, _):
        (first,) = await take(events, 1)
        real = [f"i-0f{index}00000000000000" for index in range(1, 6)] + ["i-0f0f0f0f"]
        bad = ["i-0f1000000000000000; reboot", "i-\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17", "../../../etc/passwd",
               "i-" + "f" * 100_000, "I-0F20000000000000", "i-0f3000000000000"]
        bodies = [spot_body(instance) for pair in zip(real, bad) for instance in pair]
        send(sqs, url, bodies)
        (batch,) = await take(events, 1, timeout=8)
        assert batch["kind"] == "spot_interruption"
        assert sorted(batch["instance_ids"]) == sorted(real)
        assert sorted(i for entry in batch["batch"] for i in entry["instance_ids"]) == sorted(real)
        await until(lambda: counts(sqs, url) == (0, 1 + len(real)), what="bad warnings deleted, real ones in flight")
        dropped = [r.getMessage() for r in caplog.records if "is malformed" in r.getMessage()]
        assert len(dropped) == len(bad) and all("detail.instance-id is not an EC2 instance id" in m for m in dropped)
        await ack_until_empty(ack_client, sqs, url, [first, batch])
        await assert_no_event(events, 0.5)


async def test_unknown_events_can_be_left_to_the_rulebook_malformed_ones_cannot(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    send(sqs, url, [json.dumps({"detail-type": "EC2 AMI State Change", "source": "aws.ec2", "detail": {}}), "not json {"])
    async with running(source_args(url, ack_unknown=False)) as (events, _):
        (event,) = await take(events, 1)
        assert event["kind"] == "unknown" and event["sqs"]["acked_by_source"] is False
        await assert_no_event(events, 2.5)
        # The malformed one is gone: nothing downstream could ever handle it.
        assert counts(sqs, url) == (0, 1)
        ack(ack_client, event)
        assert counts(sqs, url) == (0, 0)


async def test_cancellation_ends_cleanly_and_releases_messages(sqs, make_queue, source_args, caplog):
    url = make_queue()
    send(sqs, url, [spot_body("i-0a100000000000000"), spot_body("i-0a100000000000000")])
    caplog.set_level(logging.INFO, logger="eks_autoscaling.core.sqs_events")
    events = asyncio.Queue()
    # Visibility far beyond the test: only the release on cancellation can make the messages visible.
    task = asyncio.create_task(sqs_events.main(events, source_args(url, visibility_timeout=300, heartbeat_interval=0.3)))
    await take(events, 1)
    await until(lambda: counts(sqs, url) == (0, 2), what="both in flight")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 5
    assert counts(sqs, url) == (2, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class FlakyClient:
    """The real client, except that the named operations fail the first time(s) they are called."""

    def __init__(self, client, failures):
        self._client = client
        self.failures = dict(failures)
        self.calls = []

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(**kwargs):
            self.calls.append(name)
            if self.failures.get(name):
                self.failures[name] -= 1
                if name == "change_message_visibility_batch":
                    raise EndpointConnectionError(endpoint_url="http://sqs.invalid")
                raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try again"}}, name)
            return method(**kwargs)

        return call


async def test_transient_errors_are_retried(sqs, make_queue, source_args, ack_client, monkeypatch):
    url = make_queue()
    name = url.rsplit("/", 1)[1]
    send(sqs, url, [spot_body("i-09900000000000000")])
    flaky = {}

    def make_flaky_client(config, **kwargs):
        flaky["client"] = FlakyClient(
            sqs_events_make_client(config, **kwargs),
            {"get_queue_url": 1, "receive_message": 2, "change_message_visibility_batch": 1},
        )
        return flaky["client"]

    sqs_events_make_client = sqs_events.make_client
    monkeypatch.setattr(sqs_events, "make_client", make_flaky_client)
    monkeypatch.setattr(sqs_events.sqs_event_delivery, "BACKOFF_BASE", 0.05)
    args = source_args(url)
    del args["queue_url"]
    async with running({**args, "queue_name": name}) as (events, _):
        (event,) = await take(events, 1)
        assert event["instance_id"] == "i-09900000000000000"
        # A failed heartbeat is made up by the next one: no redelivery.
        await assert_no_event(events, 3)
        assert flaky["client"].failures == {"get_queue_url": 0, "receive_message": 0, "change_message_visibility_batch": 0}
        assert ack(ack_client, event)["changed"] is True
        await until(lambda: counts(sqs, url) == (0, 0), what="empty queue")


# -- batching ------------------------------------------------------------------------------------------------
async def test_batching_gathers_other_instances_into_one_event_and_acks_them_with_it(sqs, make_queue, source_args, ack_client):
    """The first warning goes out alone; warnings for 5 more nodes (2 copies each) within batch_interval go out
    as one event naming the 5; a rebalance recommendation meanwhile is another group and is not held back."""
    url = make_queue()
    send(sqs, url, [spot_body("i-0a000000000000000")])
    async with running(source_args(url, batch_interval=1.5)) as (events, _):
        (first,) = await take(events, 1)
        assert first["instance_ids"] == ["i-0a000000000000000"] and [b["instance_ids"] for b in first["batch"]] == [["i-0a000000000000000"]]
        later = [f"i-0a{index}00000000000000" for index in range(1, 6)]
        send(sqs, url, [spot_body(instance) for _ in range(2) for instance in later])
        send(sqs, url, [eventbridge_body("rebalance-recommendation", "i-0a100000000000000")])
        received = await take(events, 2, timeout=8)
        by_kind = {event["kind"]: event for event in received}
        assert by_kind["rebalance_recommendation"]["instance_ids"] == ["i-0a100000000000000"]
        batch = by_kind["spot_interruption"]
        assert sorted(batch["instance_ids"]) == later and batch["instance_id"] == batch["instance_ids"][0]
        assert batch["dedup_key"] == "spot_interruption:instance:" + ",".join(later)
        # One entry per instance's first message; the copies are held as duplicates, not listed.
        assert sorted(i for entry in batch["batch"] for i in entry["instance_ids"]) == later
        assert len({entry["message_id"] for entry in batch["batch"]}) == 5
        assert batch["sqs"]["message_id"] == batch["batch"][0]["message_id"]
        await until(lambda: counts(sqs, url) == (0, 12), what="all 12 messages in flight")
        await assert_no_event(events, 2.5)

        assert ack(ack_client, batch)["changed"] is True
        await until(lambda: counts(sqs, url) == (0, 2), what="the batch's 10 messages deleted with its lead")
        # Copies of batched instances that come late are deleted, not emitted again.
        send(sqs, url, [spot_body("i-0a300000000000000")])
        await until(lambda: counts(sqs, url) == (0, 2), what="late copy deleted")
        await ack_until_empty(ack_client, sqs, url, (first, by_kind["rebalance_recommendation"]))
        await assert_no_event(events, 0.5)


async def test_a_burst_of_capacity_reservation_warnings_is_batched_like_spot_warnings(sqs, make_queue, source_args, ack_client):
    """A reclaimed reservation takes many instances at once: the first warning goes out alone, the warnings
    (and copies) for the others within batch_interval go out as one event; spot warnings meanwhile are a
    group of their own, so one playbook run never mixes the two reasons."""
    url = make_queue()

    def warning(instance):
        return eventbridge_body("capacity-reservation-interruption", instance, zone_id="apse1-az1")

    send(sqs, url, [warning("i-0e000000000000000")])
    async with running(source_args(url, batch_interval=1.5)) as (events, _):
        (first,) = await take(events, 1)
        assert first["kind"] == "capacity_reservation_interruption" and first["instance_ids"] == ["i-0e000000000000000"]
        later = [f"i-0e{index}00000000000000" for index in range(1, 5)]
        send(sqs, url, [warning(instance) for _ in range(3) for instance in later])
        send(sqs, url, [spot_body("i-0e100000000000000")])
        received = await take(events, 2, timeout=8)
        by_kind = {event["kind"]: event for event in received}
        assert set(by_kind) == {"capacity_reservation_interruption", "spot_interruption"}
        assert by_kind["spot_interruption"]["instance_ids"] == ["i-0e100000000000000"]
        batch = by_kind["capacity_reservation_interruption"]
        assert sorted(batch["instance_ids"]) == later
        assert batch["dedup_key"] == "capacity_reservation_interruption:instance:" + ",".join(later)
        assert len({entry["message_id"] for entry in batch["batch"]}) == 4
        await until(lambda: counts(sqs, url) == (0, 14), what="all 14 messages in flight")
        await assert_no_event(events, 2)
        assert ack(ack_client, batch)["changed"] is True
        await until(lambda: counts(sqs, url) == (0, 2), what="the batch's 12 messages deleted with its lead")
        await ack_until_empty(ack_client, sqs, url, (first, by_kind["spot_interruption"]))
        await assert_no_event(events, 0.5)


async def test_a_lone_event_is_not_delayed_by_batching(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    send(sqs, url, [spot_body("i-0b000000000000000")])
    # The interval is far longer than the wait: only an event that skips it can arrive.
    async with running(source_args(url, batch_interval=30)) as (events, _):
        (event,) = await take(events, 1, timeout=5)
        assert event["instance_ids"] == ["i-0b000000000000000"]
        await ack_until_empty(ack_client, sqs, url, [event])


async def test_a_full_batch_goes_out_at_once(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    send(sqs, url, [spot_body("i-0c000000000000000")])
    async with running(source_args(url, batch_interval=30, batch_max_instances=2)) as (events, _):
        (first,) = await take(events, 1, timeout=5)
        send(sqs, url, [spot_body(f"i-0c{index}00000000000000") for index in range(1, 6)])
        # The first four fill two batches of 2 that go out without waiting 30 s; the fifth waits in the third.
        received = await take(events, 2, timeout=8)
        assert sorted(len(event["instance_ids"]) for event in received) == [2, 2]
        assert sorted(i for event in received for i in event["instance_ids"]) == [f"i-0c{index}00000000000000" for index in range(1, 5)]
        await assert_no_event(events, 1)
        for event in [first, *received]:
            assert ack(ack_client, event)["changed"] is True
        await until(lambda: counts(sqs, url) == (0, 1), what="the four batched messages deleted")


async def test_an_unhandled_batch_is_delivered_again_whole(sqs, make_queue, source_args, ack_client):
    url = make_queue()
    send(sqs, url, [spot_body("i-0d000000000000000")])
    async with running(source_args(url, batch_interval=0.5, max_inflight_seconds=2)) as (events, _):
        (first,) = await take(events, 1)
        assert ack(ack_client, first)["changed"] is True
        send(sqs, url, [spot_body("i-0d100000000000000"), spot_body("i-0d200000000000000"), spot_body("i-0d300000000000000")])
        (batch,) = await take(events, 1, timeout=5)
        assert sorted(batch["instance_ids"]) == ["i-0d100000000000000", "i-0d200000000000000", "i-0d300000000000000"]
        # Not acknowledged: after max_inflight_seconds all three come back, and none is lost.
        again = await take(events, 1, timeout=8)
        instances = set(again[0]["instance_ids"])
        while instances != {"i-0d100000000000000", "i-0d200000000000000", "i-0d300000000000000"}:
            again += await take(events, 1, timeout=5)
            instances |= set(again[-1]["instance_ids"])
        assert all(event["sqs"]["receive_count"] == 2 for event in again)
        await ack_until_empty(ack_client, sqs, url, again)


async def test_cancellation_releases_a_batch_still_being_gathered(sqs, make_queue, source_args, caplog):
    url = make_queue()
    send(sqs, url, [spot_body("i-0e000000000000000")])
    caplog.set_level(logging.DEBUG, logger="eks_autoscaling.core.sqs_events")
    events = asyncio.Queue()
    task = asyncio.create_task(sqs_events.main(events, source_args(url, visibility_timeout=300, heartbeat_interval=0.3, batch_interval=30)))
    await take(events, 1)
    send(sqs, url, [spot_body("i-0e100000000000000"), spot_body("i-0e200000000000000")])
    # Received by SQS is not yet dispatched by the source: wait until both are in the batch.
    await until(lambda: len([r for r in caplog.records if "batch" in r.getMessage() and "i-0e" in r.getMessage()]) == 2,
                what="both gathered")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert counts(sqs, url) == (3, 0)
