"""The sqs_events event source's settings (module_utils/sqs_event_settings.py): defaults, aliases and
coercion of the rulebook's arguments, and every bad argument refused with its name before any AWS call."""
import pytest

from ansible_collections.eks_autoscaling.core.plugins.module_utils import sqs_event_settings


def test_arguments_defaults_aliases_and_coercion():
    config = sqs_event_settings.SourceConfig.from_args(
        {
            "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
            "access_key": "AK",
            "aws_secret_key": "SK",
            "dedup": "false",
            "max_messages": "5",
            "eda_feedback_queue": object(),
        }
    )
    assert (config.region, config.aws_access_key_id, config.aws_secret_access_key) == ("eu-west-1", "AK", "SK")
    assert config.dedup is False and config.max_messages == 5
    assert (config.wait_time_seconds, config.visibility_timeout, config.heartbeat_interval) == (20, 30, 10.0)
    assert (config.max_inflight_seconds, config.ack_unknown, config.dedup_window) == (600.0, True, 60.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "exactly one of queue_name and queue_url"),
        ({"queue_name": "a", "queue_url": "http://x/1/a"}, "exactly one of queue_name and queue_url"),
        ({"queue_name": "a", "max_messages": 11}, "max_messages must be 1 to 10"),
        ({"queue_name": "a", "wait_time_seconds": 21}, "wait_time_seconds must be 0 to 20"),
        ({"queue_name": "a", "visibility_timeout": 10, "heartbeat_interval": 10}, "heartbeat_interval"),
        ({"queue_name": "a", "max_inflight_seconds": 43200}, "max_inflight_seconds"),
        ({"queue_name": "a", "dedup": "maybe"}, "dedup must be a boolean"),
        ({"queue_name": "a", "visibility_timeout": True}, "visibility_timeout must be a whole number"),
        ({"queue_name": "a", "queue": "b"}, "unknown argument 'queue'"),
        ({"queue_name": 5}, "queue_name must be a non-empty string"),
        ({"queue_name": "a", "batch_interval": -1}, "batch_interval must be 0 or more"),
        ({"queue_name": "a", "max_inflight_seconds": 10, "batch_interval": 10}, "less than max_inflight_seconds"),
        ({"queue_name": "a", "batch_max_instances": 0}, "batch_max_instances must be 1 or more"),
        ({"queue_name": "a", "batch_max_instances": "many"}, "batch_max_instances must be a whole number"),
    ],
)
def test_bad_arguments_are_refused_before_any_call(args, message):
    with pytest.raises(ValueError, match=message):
        sqs_event_settings.SourceConfig.from_args(args)
