"""The sqs_events source under a burst of bodies of every shape, valid and not, against the in-process SQS.

Random bytes, truncated and nested JSON, wrong types, injection strings and fields up to SQS's 256 KiB
are mixed, in a seeded random order, with the AWS-documented events the source parses (built with
lab/events.py, as in test_sqs_event_source.py). The source runs with batching on, as the rulebook runs it,
and this test plays the rulebook: it deletes the message of every event it gets by its receipt handle, as
the remediation playbooks do, ten at a time (DeleteMessageBatch: moto shares this process and the machine is
slow, and one ChangeMessageVisibility and one DeleteMessage per event took most of a minute). Then:

* the source is still running and logged no error;
* every valid message reached the queue once, with exactly its kind and instance ids (alone, or as its
  own entry of a batch), and no event names an id that breaks the instance id rule;
* every well-formed message of another kind went out as kind unknown, deleted by the source;
* every malformed message was logged as such and never emitted;
* the SQS queue ends empty: nothing visible, nothing in flight (so the malformed ones were deleted).

A failure names the seed; SQS_EVENTS_FUZZ_SEED=<seed> reruns the same bodies in the same order.
"""
import asyncio
import json
import logging
import os
import random
import string
import time

from ansible_collections.eks_autoscaling.core.plugins.module_utils import sqs_event_parsing

from tests.conftest import REGION
from .test_sqs_event_parsing import ACCOUNT, CLOUDWATCH_EVENT, alarm_body, budget_body, eventbridge_body, sns_body
from .test_sqs_event_source import counts, make_queue, running, source_args, sqs, until

# Fixtures of test_sqs_event_source.py, used here by name.
__all__ = ["make_queue", "source_args", "sqs"]

SEED = int(os.environ.get("SQS_EVENTS_FUZZ_SEED", "14003"))
# What SQS takes in one message, and in one SendMessageBatch.
SQS_MAX_BYTES = 262_144
VALID, UNKNOWN, MALFORMED = 450, 80, 520
WAVE = 150
ARGS = {
    "wait_time_seconds": 1,
    # Longer than the other tests': this one is about bodies, and under load a late heartbeat must not
    # turn into a redelivery.
    "visibility_timeout": 30,
    "heartbeat_interval": 3,
    "max_inflight_seconds": 120,
    "batch_interval": 0.5,
    "batch_max_instances": 100,
}
INSTANCE_KINDS = {
    "spot-interruption": "spot_interruption",
    "capacity-reservation-interruption": "capacity_reservation_interruption",
    "rebalance-recommendation": "rebalance_recommendation",
    "instance-state-change": "instance_state_change",
    "scheduled-change": "scheduled_change",
}
INJECTIONS = [
    "; rm -rf /", "$(reboot)", "`id`", "{{ lookup('pipe', 'id') }}", "{% raw %}x{% endraw %}", "' OR '1'='1", "../../etc/passwd",
    "/dev/null", "%0a", "<script>alert(1)</script>", "null", "None", "0", "", "i-", "\\", "i-*", "i-%s", "i-0123456789abcdef0/../x",
]


class Fuzz:
    """Bodies and what the source must make of each, from one seeded generator."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.ids = set()
        self.names = set()

    # -- what AWS sends
    def instance_id(self):
        while True:
            length = self.rng.choice((8, 17, 17, 17))
            candidate = "i-" + "".join(self.rng.choice("0123456789abcdef") for _ in range(length))
            if candidate not in self.ids:
                self.ids.add(candidate)
                return candidate

    def name(self, prefix):
        while True:
            candidate = f"{prefix}-{self.rng.randrange(10**9)}"
            if candidate not in self.names:
                self.names.add(candidate)
                return candidate

    def instance_event(self):
        """(EventBridge document, expectation) of one documented EC2 or AWS Health event."""
        lab_kind = self.rng.choice(list(INSTANCE_KINDS))
        instance = self.instance_id()
        state = self.rng.choice(sqs_event_parsing.INSTANCE_STATES)
        doc = json.loads(eventbridge_body(lab_kind, instance, state=state, zone_id="apse1-az1"))
        expected = {"kind": INSTANCE_KINDS[lab_kind], "instance_ids": [instance]}
        if lab_kind == "instance-state-change":
            expected["state"] = state
        if lab_kind == "scheduled-change" and self.rng.random() < 0.3:
            # A Health notice can name several instances.
            more = [self.instance_id() for _ in range(self.rng.randint(1, 4))]
            doc["detail"]["affectedEntities"] += [{"entityValue": i, "status": "PENDING"} for i in more]
            doc["resources"] += more
            expected["instance_ids"] = [instance, *more]
        return doc, expected

    def alarm(self):
        name, state = self.name("billing"), self.rng.choice(sqs_event_parsing.ALARM_STATES)
        expected = {"kind": "alarm", "alarm_name": name, "new_state": state}
        shape = self.rng.choice(("sns", "raw", "eventbridge"))
        if shape == "eventbridge":
            doc = json.loads(CLOUDWATCH_EVENT)
            doc["detail"] = {"alarmName": name, "state": {"value": state, "timestamp": "2026-11-27T12:00:00.000+0000"}}
            return json.dumps(doc), expected
        return alarm_body(name, state, raw=shape == "raw"), expected

    def budget(self):
        name = self.name(self.rng.choice(("eks monthly", "team")))
        as_json, raw = self.rng.choice(((False, False), (True, False), (False, True)))
        return budget_body(name, as_json=as_json, raw=raw), {"kind": "budget", "budget_name": name}

    def valid(self):
        roll = self.rng.random()
        if roll < 0.7:
            doc, expected = self.instance_event()
            if self.rng.random() < 0.01:
                # Valid however large: an unknown field may take nearly all of SQS's limit.
                doc["detail"]["x-padding"] = "p" * (SQS_MAX_BYTES - len(json.dumps(doc)) - 64)
            return json.dumps(doc), expected
        return self.alarm() if roll < 0.85 else self.budget()

    def unknown(self):
        return self.rng.choice((
            lambda: json.dumps({}),
            lambda: json.dumps({"note": self.text(40)}),
            lambda: sns_body("hello", "hello " + self.text(30, alphabet=string.ascii_letters)),
            lambda: json.dumps({"detail-type": "EC2 AMI State Change", "source": "aws.ec2", "detail": {"ImageId": "ami-0123abcd"}, "resources": []}),
            lambda: json.dumps({"detail-type": "AWS Health Event", "source": "aws.health", "detail": {"eventTypeCategory": "issue"}}),
            lambda: json.dumps({"detail-type": "AWS Health Event", "source": "aws.health",
                                "detail": {"eventTypeCategory": "scheduledChange", "affectedEntities": [{"entityValue": "vol-0123abcd"}]}}),
        ))()

    # -- what the source must drop
    def text(self, length, alphabet=None):
        if alphabet:
            return "".join(self.rng.choice(alphabet) for _ in range(length))
        # Random bytes as SQS can carry them: any code point of its allowed ranges (no NUL, no surrogates).
        return "".join(self.rng.choice((self._printable, self._code_point))() for _ in range(length))

    def _printable(self):
        return self.rng.choice(string.printable)

    def _code_point(self):
        low, high = self.rng.choice(((0x80, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF)))
        return chr(self.rng.randint(low, high))

    def bad_id(self):
        valid = self.instance_id()
        return self.rng.choice((
            lambda: valid + self.rng.choice([suffix for suffix in INJECTIONS if suffix]),
            lambda: self.rng.choice(INJECTIONS),
            lambda: valid[:-1], lambda: valid + self.rng.choice("0123456789abcdef"),  # one short, one long
            lambda: valid.upper(), lambda: "I" + valid[1:], lambda: valid[:-1] + "g",
            lambda: valid + self.rng.choice(("\n", " ", "\t", "\x00", "\u200b")), lambda: " " + valid,
            lambda: "i-\uff10" + "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in valid[3:]),  # fullwidth digits
            lambda: "i-\u202e" + valid[2:],
            lambda: "i-" + self.text(self.rng.choice((8, 17))),
            lambda: "i-" + "0" * self.rng.choice((18, 100, 1_000, 100_000)),
        ))()

    def bad_instance_entity(self):
        """A bad id that still claims to be an instance (i-...): Health entities of other kinds are ignored."""
        while True:
            candidate = self.bad_id()
            if candidate.startswith("i-"):
                return candidate

    def instance_arn(self, instance):
        return f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance}"

    def wrong_type(self):
        return self.rng.choice((0, 1.5, True, [], {}, ["x"], {"a": 1}, 10**30))

    def mutated(self):
        """A documented event with one field of the wrong shape for its type."""
        doc, expected = self.instance_event()
        detail = doc["detail"]
        mutation = self.rng.choice(("detail", "source", "detail-type", "resources", "instance-id", "arn", "entity", "optional", "state"))
        if mutation == "detail":
            doc["detail"] = self.rng.choice(([detail], json.dumps(detail), None, 7, "detail"))
        elif mutation in ("source", "detail-type"):
            doc[mutation] = self.rng.choice((None, 5, [doc[mutation]], {"name": doc[mutation]}))
        elif mutation == "resources":
            doc["resources"] = self.rng.choice((doc["resources"][0], [7], [None], {"0": doc["resources"][0]}, 3))
        elif mutation == "arn" and "instance-id" in detail:
            del detail["instance-id"]
            doc["resources"] = [self.instance_arn(self.bad_id())]
        elif mutation == "entity" and expected["kind"] == "scheduled_change":
            detail["affectedEntities"].append(
                self.rng.choice(({"entityValue": self.bad_instance_entity()}, {"entityValue": self.wrong_type()}, "i-0123abcd")))
        elif mutation == "optional" and "instance-id" in detail:
            detail[self.rng.choice(("instance-type", "instance-action"))] = self.wrong_type()
        elif mutation == "state" and expected["kind"] == "instance_state_change":
            detail["state"] = self.rng.choice((self.wrong_type(), None, "Running", "exploded", detail["state"] + " "))
        elif "instance-id" in detail:
            detail["instance-id"] = self.rng.choice((self.bad_id(), self.wrong_type(), None))
        elif self.rng.random() < 0.5:
            # Not [] (no entity at all, and the resources still name the instance: a valid notice).
            detail["affectedEntities"] = self.rng.choice((0, {}, None, "i-0123abcd", [self.wrong_type()]))
        else:
            # Checked even where detail names the instance: a bad id anywhere drops the message.
            doc["resources"].append(self.rng.choice((self.instance_arn(self.bad_id()), self.bad_instance_entity())))
        return json.dumps(doc)

    def bad_alarm_or_budget(self):
        name = self.name("bad")
        message = json.loads(json.loads(alarm_body(name, "ALARM"))["Message"])
        choice = self.rng.randrange(6)
        if choice == 0:
            message["NewStateValue"] = self.rng.choice((self.wrong_type(), None, "alarm", "ALARMING", "", "OK "))
        elif choice == 1:
            message["AlarmName"] = self.rng.choice((self.wrong_type(), None, "", "a" * self.rng.randint(256, 200_000)))
        elif choice == 2:
            doc = json.loads(CLOUDWATCH_EVENT)
            doc["detail"] = self.rng.choice(({"alarmName": name, "state": "ALARM"}, {"alarmName": name, "state": {"value": self.wrong_type()}},
                                             {"alarmName": self.wrong_type(), "state": {"value": "OK"}}))
            return json.dumps(doc)
        elif choice == 3:
            return sns_body("x", json.dumps({"budgetName": self.rng.choice((self.wrong_type(), "", "a:b", "a\\b", "b" * 101))}))
        elif choice == 4:
            return budget_body("b" * self.rng.randint(101, 100_000), raw=True)
        else:
            return json.dumps({**json.loads(sns_body("x", "")), "Message": self.rng.choice((message, [message], 5, None))})
        return self.rng.choice((json.dumps(message), sns_body("ALARM", json.dumps(message))))

    def nested(self):
        doc, _ = self.instance_event()
        depth = self.rng.randint(2_000, 40_000)
        return self.rng.choice((
            lambda: json.dumps([doc, doc]),
            lambda: json.dumps(json.dumps(doc)),  # encoded twice
            lambda: '{"a":' * depth + "1" + "}" * depth,
            lambda: "[" * depth + "]" * depth,
            lambda: sns_body("x", '{"AlarmName": ' * (depth // 4)),
        ))()

    def truncated(self):
        body = json.dumps(self.instance_event()[0]) if self.rng.random() < 0.5 else self.alarm()[0]
        if not body.startswith("{"):  # a raw alarm is JSON too; keep to bodies that open like JSON
            body = json.dumps(json.loads(body))
        return body[: self.rng.randint(1, len(body) - 1)]

    def huge_text(self):
        size = self.rng.randint(100_000, SQS_MAX_BYTES)
        return self.rng.choice((
            lambda: "\n" * size,
            lambda: "Budget Name: \n" + " \n" * ((size - 20) // 2),
            lambda: "associated with your budget " + "\t" * (size - 40),
            lambda: self.text(size // 4),  # up to 4 bytes a character
        ))()

    def malformed(self):
        (family,) = self.rng.choices(
            (lambda: self.text(self.rng.randint(1, 2_000)), self.truncated, self.nested, self.mutated, self.bad_alarm_or_budget, self.huge_text),
            weights=(5, 3, 2, 8, 3, 0.3),
        )
        return family()

    def cases(self):
        cases = [("valid", *self.valid()) for _ in range(VALID)]
        cases += [("unknown", self.unknown(), {"kind": "unknown"}) for _ in range(UNKNOWN)]
        cases += [("malformed", self.malformed(), None) for _ in range(MALFORMED)]
        self.rng.shuffle(cases)
        for category, body, _ in cases:
            assert 0 < len(body.encode()) <= SQS_MAX_BYTES, (SEED, category, len(body.encode()))
        return cases


def send_all(sqs, url, cases):
    """Send every body, in order, in batches SQS accepts; message id -> (category, body, expected)."""
    by_id, batch, size = {}, [], 0

    def flush():
        response = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": c[1]} for i, c in enumerate(batch)])
        assert not response.get("Failed"), (SEED, response["Failed"])
        for entry in response["Successful"]:
            by_id[entry["MessageId"]] = batch[int(entry["Id"])]

    for case in cases:
        length = len(case[1].encode())
        if batch and (len(batch) == 10 or size + length > SQS_MAX_BYTES):
            flush()
            batch, size = [], 0
        batch.append(case)
        size += length
    flush()
    return by_id


def check_event(event, by_id, seen):
    """Match an event to the messages it stands for; return whether the rulebook acknowledges it."""
    if event["kind"] == "unknown":
        message_id = event["sqs"]["message_id"]
        assert by_id[message_id][0] == "unknown", (SEED, by_id[message_id][:2])
        assert event["sqs"]["acked_by_source"] is True
        assert message_id not in seen, (SEED, "emitted twice", message_id)
        seen.add(message_id)
        return False
    assert all(sqs_event_parsing.is_ec2_instance_id(i) for i in event["instance_ids"]), (SEED, event["instance_ids"])
    entries = event["batch"] or [{"message_id": event["sqs"]["message_id"], "instance_ids": event["instance_ids"]}]
    assert sorted(event["instance_ids"]) == sorted(i for entry in entries for i in entry["instance_ids"]), SEED
    for entry in entries:
        category, body, expected = by_id[entry["message_id"]]
        assert category == "valid", (SEED, category, body[:200])
        assert entry["message_id"] not in seen, (SEED, "emitted twice", entry["message_id"])
        seen.add(entry["message_id"])
        assert event["kind"] == expected["kind"], (SEED, event["kind"], body[:300])
        assert entry["instance_ids"] == expected.get("instance_ids", []), (SEED, entry, body[:300])
        for key in ("state", "alarm_name", "new_state", "budget_name"):
            if key in expected:
                assert event[key] == expected[key], (SEED, key, event[key], body[:300])
    assert event["sqs"]["receive_count"] == 1, (SEED, "delivered again", event["sqs"])
    return True


async def test_a_burst_of_every_shape_of_body(sqs, make_queue, source_args, caplog):
    started = time.monotonic()
    caplog.set_level(logging.INFO, logger="eks_autoscaling.core.sqs_events")
    cases = Fuzz(SEED).cases()
    url = make_queue()
    by_id, expected_ids, seen, handled = {}, set(), set(), []

    async def acknowledge():
        # Off the event loop the source runs on, as a playbook run is.
        while handled:
            entries = [{"Id": str(index), "ReceiptHandle": handle} for index, handle in enumerate(handled[:10])]
            del handled[:10]
            response = await asyncio.to_thread(sqs.delete_message_batch, QueueUrl=url, Entries=entries)
            assert not response.get("Failed"), (SEED, response["Failed"])

    async with running(source_args(url, **ARGS)) as (events, task):
        deadline = time.monotonic() + 150
        # In waves of bursts: moto recounts the whole queue on every SendMessage, so a queue of all
        # the bodies at once took most of a minute just to fill.
        for start in range(0, len(cases), WAVE):
            wave = await asyncio.to_thread(send_all, sqs, url, cases[start : start + WAVE])
            by_id.update(wave)
            expected_ids |= {message_id for message_id, case in wave.items() if case[0] != "malformed"}
            while not expected_ids <= seen:
                remaining = deadline - time.monotonic()
                assert remaining > 0, (SEED, f"{len(expected_ids - seen)} valid or unknown message(s) never emitted",
                                       [by_id[m][1][:200] for m in list(expected_ids - seen)[:3]])
                try:
                    event = await asyncio.wait_for(events.get(), min(remaining, 1))
                except asyncio.TimeoutError:
                    await acknowledge()
                    continue
                if check_event(event, by_id, seen):
                    handled.append(event["sqs"]["receipt_handle"])
                    if len(handled) >= 10:
                        await acknowledge()
            await acknowledge()
        assert len(by_id) == len(cases)

        await until(lambda: counts(sqs, url) == (0, 0), timeout=30, what=f"an empty queue (seed {SEED})")
        assert events.empty(), (SEED, "events beyond the expected ones")
        assert not task.done(), SEED

    malformed_ids = {message_id for message_id, case in by_id.items() if case[0] == "malformed"}
    dropped = [r for r in caplog.records if r.name == "eks_autoscaling.core.sqs_events" and "is malformed" in r.getMessage()]
    assert {r.args[0] for r in dropped} == malformed_ids, SEED
    assert len(dropped) == len(malformed_ids), (SEED, "a malformed message was received twice")
    assert not [r for r in caplog.records if r.name == "eks_autoscaling.core.sqs_events" and r.levelno >= logging.ERROR], SEED
    logging.getLogger(__name__).info("seed %s: %d bodies in %.1fs", SEED, len(cases), time.monotonic() - started)
