# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The EventBridge rules of Karpenter's interruption handling, in one place for every role that needs them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: interruption_event_rules
short_description: The EventBridge rules for the EC2 and AWS Health events Karpenter handles
version_added: 0.1.0
author: Karpenter HPA EKS contributors
description:
  - Returns one item per EventBridge rule of Karpenter v1.14's interruption queue, as its getting-started
    CloudFormation template defines them, each a dict with C(suffix) (the rule's name suffix, after the
    template's logical id without C(Rule)) and C(pattern) (its event pattern, C(source) and C(detail-type)).
  - "The five rules: C(ScheduledChange) (C(aws.health) C(AWS Health Event)), C(SpotInterruption)
    (C(aws.ec2) C(EC2 Spot Instance Interruption Warning)), C(Rebalance) (C(EC2 Instance Rebalance Recommendation)),
    C(InstanceStateChange) (C(EC2 Instance State-change Notification)) and C(CapacityReservationInterruption)
    (C(EC2 Capacity Reservation Instance Interruption Warning))."
  - The one source of these facts for the C(interruption_queue) role (Karpenter's queue) and the C(event_bus)
    role (the rulebook's own queue, which gets a copy of the same events through rules of its own).
  - Use it with C(query) (or C(lookup) and C(wantlist=true)): the items are dicts.
options:
  _terms:
    description:
      - Suffixes of the rules wanted, in the order wanted; all five, in the template's order, when none is given.
      - An unknown suffix is an error naming it.
    type: list
    elements: str
    required: false
"""

EXAMPLES = r"""
- name: Forward every event Karpenter handles to a queue of ours
  amazon.aws.cloudwatchevent_rule:
    name: "MyCluster-{{ item.suffix }}"
    event_pattern: "{{ item.pattern | to_json }}"
    targets:
      - id: MyQueue
        arn: arn:aws:sqs:ap-southeast-1:123456789012:my-queue
  loop: "{{ query('eks_autoscaling.core.interruption_event_rules') }}"

- name: Only the two interruption warnings
  ansible.builtin.debug:
    msg: "{{ query('eks_autoscaling.core.interruption_event_rules', 'SpotInterruption', 'CapacityReservationInterruption') }}"
"""

RETURN = r"""
_raw:
  description: The rules, each with C(suffix) and C(pattern).
  type: list
  elements: dict
  sample:
    - suffix: CapacityReservationInterruption
      pattern:
        source: [aws.ec2]
        detail-type: [EC2 Capacity Reservation Instance Interruption Warning]
"""

import copy

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

# Karpenter v1.14 website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml,
# the *Rule resources at its end, in its order; pkg/controllers/interruption/parser.go parses each of them.
RULES = (
    {"suffix": "ScheduledChange", "pattern": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]}},
    {"suffix": "SpotInterruption", "pattern": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}},
    {"suffix": "Rebalance", "pattern": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]}},
    {"suffix": "InstanceStateChange", "pattern": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}},
    {
        "suffix": "CapacityReservationInterruption",
        "pattern": {"source": ["aws.ec2"], "detail-type": ["EC2 Capacity Reservation Instance Interruption Warning"]},
    },
)


def interruption_event_rules(suffixes=None):
    """The rules named by ``suffixes`` (all when empty), as fresh copies a caller may change."""
    by_suffix = {rule["suffix"]: rule for rule in RULES}
    unknown = [s for s in suffixes or [] if s not in by_suffix]
    if unknown:
        raise ValueError(f"unknown rule suffix(es) {', '.join(map(repr, unknown))}: one of {', '.join(by_suffix)}")
    return copy.deepcopy([by_suffix[s] for s in suffixes] if suffixes else list(RULES))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        try:
            return interruption_event_rules([str(term) for term in terms or []])
        except ValueError as e:
            raise AnsibleLookupError(f"eks_autoscaling.core.interruption_event_rules: {e}") from e
