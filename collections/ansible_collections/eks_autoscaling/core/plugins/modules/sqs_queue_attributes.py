#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: sqs_queue_attributes
version_added: 0.1.0
short_description: Set attributes of an existing Amazon SQS queue
description:
  - Set attributes of an existing Amazon SQS queue, idempotently, with C(SetQueueAttributes).
  - Covers attributes that M(community.aws.sqs_queue) cannot set, such as C(SqsManagedSseEnabled).
    Karpenter's interruption queue needs SSE-SQS, because EventBridge cannot deliver to a queue
    encrypted with the AWS managed KMS key C(alias/aws/sqs).
  - The queue must exist; the module fails, naming the queue and the region, when it does not.
    It never creates or deletes queues.
  - Values are compared the way SQS stores them, so a run that asks for what the queue already has
    reports no change. Booleans and whole numbers may be given as YAML values or as strings. Policies
    are compared as parsed JSON, so key order and whitespace are never a change.
  - Only the attributes that differ are sent, in a single C(SetQueueAttributes) call.
author:
  - Karpenter HPA EKS contributors (!UNKNOWN)
options:
  queue:
    description:
      - Name or URL of the queue.
      - A name is looked up with C(GetQueueUrl) in the account and region of the connection.
    type: str
    required: true
  attributes:
    description:
      - SQS attribute names, spelled as in the SQS API, mapped to the values wanted.
      - Attributes not listed are left as they are. An empty mapping changes nothing and only reports the queue.
      - Settable attributes are C(DelaySeconds), C(MaximumMessageSize), C(MessageRetentionPeriod),
        C(Policy), C(ReceiveMessageWaitTimeSeconds), C(VisibilityTimeout), C(RedrivePolicy),
        C(RedriveAllowPolicy), C(KmsMasterKeyId), C(KmsDataKeyReusePeriodSeconds), C(SqsManagedSseEnabled),
        and, for FIFO queues only, C(ContentBasedDeduplication), C(DeduplicationScope) and C(FifoThroughputLimit).
      - Any other name is refused before any API call, and so is C(FifoQueue), which only C(CreateQueue) can set.
      - C(SqsManagedSseEnabled) and C(ContentBasedDeduplication) take a boolean.
      - C(DelaySeconds), C(MaximumMessageSize), C(MessageRetentionPeriod), C(ReceiveMessageWaitTimeSeconds),
        C(VisibilityTimeout) and C(KmsDataKeyReusePeriodSeconds) take a whole number; SQS checks the ranges.
      - C(Policy), C(RedrivePolicy) and C(RedriveAllowPolicy) take a mapping or a string holding a JSON object.
        V("") or V(null) removes the document.
      - C(KmsMasterKeyId) takes a KMS key ID, ARN or alias; V("") or V(null) stops SSE-KMS.
      - C(SqsManagedSseEnabled=true) together with a non-empty C(KmsMasterKeyId) is refused, as a queue uses
        one kind of server-side encryption.
    type: dict
    required: true
notes:
  - Supports check mode and diff mode. In check mode no mutating API is called.
  - Attribute names in RV(attributes) and the diff stay as SQS spells them (not converted to snake_case).
  - SQS takes up to a minute (up to 15 minutes for C(MessageRetentionPeriod)) to show a change everywhere.
    RV(attributes) reports what was set rather than reading the queue again, and a run started right after
    a change may find the old value and send the same change again, which is harmless.
  - To switch a queue between SSE-KMS and SSE-SQS, set both attributes in the same task, for example
    C(SqsManagedSseEnabled=true) with C(KmsMasterKeyId=""), or C(SqsManagedSseEnabled=false) with the key.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Authentication details come from the environment or the amazon.aws options; see the AWS guide.

- name: Create Karpenter's interruption queue
  community.aws.sqs_queue:
    name: eksworkshop
  register: interruption_queue

- name: Encrypt it with SSE-SQS, keep messages 5 minutes and let EventBridge deliver to it
  eks_autoscaling.core.sqs_queue_attributes:
    queue: "{{ interruption_queue.queue_url }}"
    attributes:
      SqsManagedSseEnabled: true
      MessageRetentionPeriod: 300
      Policy:
        Version: "2012-10-17"
        Id: EC2InterruptionPolicy
        Statement:
          - Effect: Allow
            Principal:
              Service: [events.amazonaws.com, sqs.amazonaws.com]
            Action: sqs:SendMessage
            Resource: "{{ interruption_queue.queue_arn }}"

- name: Send messages that fail three times to a dead-letter queue
  eks_autoscaling.core.sqs_queue_attributes:
    queue: orders
    attributes:
      RedrivePolicy:
        deadLetterTargetArn: arn:aws:sqs:ap-southeast-1:123456789012:orders-dlq
        maxReceiveCount: 3

- name: Move a queue from SSE-KMS to SSE-SQS
  eks_autoscaling.core.sqs_queue_attributes:
    queue: orders
    attributes:
      KmsMasterKeyId: ""
      SqsManagedSseEnabled: true

- name: Remove the queue policy
  eks_autoscaling.core.sqs_queue_attributes:
    queue: orders
    attributes:
      Policy: ""
"""

RETURN = r"""
queue_url:
  description: URL of the queue.
  returned: success
  type: str
  sample: https://sqs.ap-southeast-1.amazonaws.com/123456789012/eksworkshop
queue_arn:
  description: ARN of the queue.
  returned: success
  type: str
  sample: arn:aws:sqs:ap-southeast-1:123456789012:eksworkshop
attributes:
  description:
    - The configuration attributes of the queue after the run (in check mode, as they would be), names as SQS
      spells them.
    - Booleans and whole numbers are returned as such, C(Policy), C(RedrivePolicy) and C(RedriveAllowPolicy)
      as parsed JSON. Attributes that are not set are missing.
    - Counters and timestamps (C(ApproximateNumberOfMessages), C(CreatedTimestamp), ...) are not included,
      so the result only changes when the configuration does.
  returned: success
  type: dict
  sample:
    DelaySeconds: 0
    MaximumMessageSize: 1048576
    MessageRetentionPeriod: 300
    ReceiveMessageWaitTimeSeconds: 0
    VisibilityTimeout: 30
    SqsManagedSseEnabled: true
    Policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Principal: {Service: [events.amazonaws.com, sqs.amazonaws.com]}
          Action: sqs:SendMessage
          Resource: arn:aws:sqs:ap-southeast-1:123456789012:eksworkshop
diff:
  description: RV(attributes) before and after the run.
  returned: success
  type: dict
  contains:
    before:
      description: The attributes before the run.
      type: dict
      sample: {"MessageRetentionPeriod": 345600, "SqsManagedSseEnabled": false}
    after:
      description: The attributes after the run.
      type: dict
      sample: {"MessageRetentionPeriod": 300, "SqsManagedSseEnabled": true}
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_attributes import SqsAttributesError
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_attributes import ensure_queue_attributes
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_attributes import get_queue
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_attributes import module_result
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_attributes import normalise_attributes
from ansible_collections.eks_autoscaling.core.plugins.module_utils.sqs_attributes import validate_queue


def main():
    argument_spec = dict(
        queue=dict(type="str", required=True),
        attributes=dict(type="dict", required=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    try:
        # Refuse bad input before the first API call, not after reading the queue.
        validate_queue(params["queue"])
        normalise_attributes(params["attributes"])
        client = module.client("sqs", retry_decorator=AWSRetry.jittered_backoff())
        before = get_queue(client, params["queue"])
        changed, after = ensure_queue_attributes(
            client, params["queue"], params["attributes"], check_mode=module.check_mode, current=before
        )
    except SqsAttributesError as e:
        module.fail_json_aws_error(e)

    module.exit_json(**module_result(changed, before, after))


if __name__ == "__main__":
    main()
