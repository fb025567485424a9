"""`lab inject`: deliver an AWS event (EventBridge or SNS) through the lab's AWS server, with lab/events.py."""
import json

from lab import events
from lab.ctl.config import AWS_ENDPOINT


def cmd_inject(args):
    result = events.inject(AWS_ENDPOINT, args.event, instance_id=args.instance_id, node=args.node, **events.extra_args(args))
    print(json.dumps(result, indent=1, default=str))
