# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The sqs_events event source's delivery engine: receiving, coalescing, batching, heartbeats, deleting
and redelivery, at least once (the guarantees are documented in the source's DOCUMENTATION).

``SqsEventSource(queue, config, client, executor).run()`` puts events on ``queue`` (anything with an
async ``put``) until it is cancelled; ``config`` is a sqs_event_settings.SourceConfig and ``client`` a
boto3 SQS client, called in ``executor``'s threads. Each body is parsed by sqs_event_parsing.py.

Imports within this collection's module_utils are relative: the event source loads this directory by
its path (ansible-rulebook runs the source with runpy.run_path, without ansible_collections on sys.path).
"""

import asyncio
import concurrent.futures
import functools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .sqs_event_parsing import MalformedBody, build_event, set_instances

# The source's name: what a rulebook's log configuration knows it by.
logger = logging.getLogger("eks_autoscaling.core.sqs_events")

# Backoff after failed SQS calls; module-level so that tests can shorten it.
BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
# How long cancellation may spend making in-flight messages visible again.
RELEASE_ON_CANCEL_TIMEOUT = 5.0

# -- the engine ------------------------------------------------------------------------------------------
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
        # The region the queue is read in, on every event (sqs.region): the remediation deletes the message there,
        # whichever cluster of a fleet acts on it. The client's, which falls back to the environment and profile.
        self.queue_region = config.region or getattr(getattr(client, "meta", None), "region_name", None)
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
            event = build_event(message, self.queue_url, self.queue_region)
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
        set_instances(event, batch.instance_ids)
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
