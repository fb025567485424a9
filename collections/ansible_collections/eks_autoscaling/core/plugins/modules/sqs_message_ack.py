#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: sqs_message_ack
version_added: 0.1.0
short_description: Acknowledge an Amazon SQS message by receipt handle
description:
  - Delete an Amazon SQS message once the event it carried is handled, or keep it invisible for longer
    while the handling goes on.
  - The counterpart of the C(eks_autoscaling.core.sqs_events) event source, which delivers each event at
    least once and keeps its message invisible until a playbook deletes it with this module, using the
    event's C(sqs.queue_url) and C(sqs.receipt_handle).
  - Idempotent. A receipt handle that SQS refuses because the message was already deleted, the handle is
    invalid, or it expired (the message became visible again and may be delivered again) changes nothing
    and is not a failure; RV(receipt_handle_stale) says so and RV(stale_reason) gives SQS's reason.
  - SQS accepts a delete of a message deleted before, so to tell the two apart the module first changes
    the message's visibility (which SQS refuses for a message that is gone) and deletes it after that.
author:
  - Karpenter HPA EKS contributors (!UNKNOWN)
options:
  queue_url:
    description:
      - URL of the queue the message was received from.
    type: str
    required: true
  receipt_handle:
    description:
      - Receipt handle of the message, from the C(ReceiveMessage) that delivered it.
    type: str
    required: true
  action:
    description:
      - V(delete) deletes the message.
      - V(extend) sets the message's visibility timeout to O(visibility_timeout) seconds from now.
    type: str
    choices: [delete, extend]
    default: delete
  visibility_timeout:
    description:
      - Seconds the message stays invisible from now, 0 to 43200, with O(action=extend). V(0) makes it
        visible at once, to hand it back for redelivery.
      - Required with O(action=extend).
    type: int
notes:
  - Supports check mode. In check mode the queue is read, so a wrong O(queue_url) fails, but the message
    is not touched; as SQS has no call that checks a receipt handle without changing the message, the
    result is V(changed=true).
  - Needs C(sqs:ChangeMessageVisibility), C(sqs:DeleteMessage) and, in check mode, C(sqs:GetQueueAttributes).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# In a playbook run by ansible-rulebook for an event of eks_autoscaling.core.sqs_events.

- name: Acknowledge the event once it is handled
  eks_autoscaling.core.sqs_message_ack:
    queue_url: "{{ ansible_eda.event.sqs.queue_url }}"
    receipt_handle: "{{ ansible_eda.event.sqs.receipt_handle }}"
  register: ack

- name: Say when another run handled it first
  ansible.builtin.debug:
    msg: "Message already acknowledged: {{ ack.stale_reason }}"
  when: ack.receipt_handle_stale

- name: Keep the message invisible for ten more minutes during a long drain
  eks_autoscaling.core.sqs_message_ack:
    queue_url: "{{ ansible_eda.event.sqs.queue_url }}"
    receipt_handle: "{{ ansible_eda.event.sqs.receipt_handle }}"
    action: extend
    visibility_timeout: 600

- name: Give the message back for redelivery after a failed remediation
  eks_autoscaling.core.sqs_message_ack:
    queue_url: "{{ ansible_eda.event.sqs.queue_url }}"
    receipt_handle: "{{ ansible_eda.event.sqs.receipt_handle }}"
    action: extend
    visibility_timeout: 0
"""

RETURN = r"""
queue_url:
  description: URL of the queue.
  returned: success
  type: str
  sample: https://sqs.ap-southeast-1.amazonaws.com/123456789012/eksworkshop
action:
  description: What was asked, V(delete) or V(extend).
  returned: success
  type: str
  sample: delete
visibility_timeout:
  description: The visibility timeout set with O(action=extend); V(null) with O(action=delete).
  returned: success
  type: int
  sample: 600
receipt_handle_stale:
  description:
    - V(true) when SQS refused the receipt handle, so nothing was changed. The message was already
      deleted, the handle is invalid, or it expired (the message became visible again).
  returned: success
  type: bool
  sample: false
stale_reason:
  description: SQS's error code and message when RV(receipt_handle_stale) is V(true), else V(null).
  returned: success
  type: str
  sample: "ReceiptHandleIsInvalid: The input receipt handle is invalid."
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_messages import ACTIONS
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_messages import SqsMessagesError
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_messages import acknowledge
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_messages import validate


def main():
    argument_spec = dict(
        queue_url=dict(type="str", required=True),
        receipt_handle=dict(type="str", required=True, no_log=False),
        action=dict(type="str", choices=list(ACTIONS), default="delete"),
        visibility_timeout=dict(type="int"),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("action", "extend", ["visibility_timeout"])],
    )
    params = module.params

    try:
        # Refuse bad input before making a client.
        validate(params["queue_url"], params["receipt_handle"], params["action"], params["visibility_timeout"])
        client = module.client("sqs", retry_decorator=AWSRetry.jittered_backoff())
        result = acknowledge(
            client,
            params["queue_url"],
            params["receipt_handle"],
            action=params["action"],
            visibility_timeout=params["visibility_timeout"],
            check_mode=module.check_mode,
        )
    except SqsMessagesError as e:
        module.fail_json_aws_error(e)

    module.exit_json(**result)


if __name__ == "__main__":
    main()
