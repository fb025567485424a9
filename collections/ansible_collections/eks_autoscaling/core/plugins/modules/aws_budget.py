#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: aws_budget
version_added: 0.1.0
short_description: Manage an AWS Budgets cost budget and its notifications
description:
  - Create, update or delete a C(COST) budget of AWS Budgets, with a fixed limit per month,
    quarter or year, and the notifications (alerts) that email addresses or an SNS topic receive
    when the actual or forecasted cost crosses a threshold.
  - Idempotent. The limit is compared as a number, so V(100) and the C(100.0) that AWS stores are
    the same; cost filter values and subscribers are compared as sets.
  - A change of limit, time unit or cost filters is made with C(UpdateBudget), which keeps the
    budget's history. Notifications are added and deleted one by one, and the subscribers of a
    notification are changed in place, which keeps its alert state.
  - The one exception is replacing the only subscriber of a notification, an SNS topic, by another
    topic. AWS Budgets allows one SNS subscriber per notification and deletes a notification with its
    last subscriber, so that notification is deleted and created again with its new subscriber.
  - A notification is identified by its O(notifications[].notification_type), O(notifications[].comparison_operator),
    O(notifications[].threshold) and O(notifications[].threshold_type), as AWS Budgets has no
    notification ID; changing any of them replaces the notification.
  - Only C(COST) budgets with a fixed limit are managed. The module fails, naming the budget, when
    the existing budget is of another type, has planned limits or an auto-adjusting limit.
  - Input is checked before any API call, and an error names the option at fault, for example
    C(notifications[0].threshold must be > 0).
author:
  - Karpenter HPA EKS contributors (!UNKNOWN)
options:
  name:
    description:
      - Name of the budget, unique in the account.
      - 1 to 100 characters, without colons, backslashes or the text C(/action/).
    type: str
    required: true
    aliases: [budget_name]
  state:
    description:
      - Whether the budget should exist.
      - Deleting a budget deletes its notifications and their subscribers too.
    type: str
    choices: [present, absent]
    default: present
  account_id:
    description:
      - The 12-digit AWS account that owns the budget.
      - When not set, the account of the credentials, found with C(sts:GetCallerIdentity).
      - Quote it in YAML, or an account ID that starts with 0 loses its leading zeros.
    type: str
  limit_amount:
    description:
      - The budgeted amount per O(time_unit), a number greater than 0.
      - Required when O(state=present).
    type: raw
  limit_unit:
    description:
      - The currency of O(limit_amount).
    type: str
    default: USD
  time_unit:
    description:
      - How often the budget resets its actual and forecasted cost.
    type: str
    choices: [MONTHLY, QUARTERLY, ANNUALLY]
    default: MONTHLY
  cost_filters:
    description:
      - Cost filters of the budget, mapping a dimension name as the Budgets API spells it
        (for example C(Service), C(Region), C(LinkedAccount), C(TagKeyValue)) to a list of values.
      - Values are compared as a set; order and repeats are not changes.
      - An empty mapping removes every filter. When not set, the filters are left as they are.
      - Cannot be combined with a budget that filters with a C(FilterExpression).
    type: dict
  notifications:
    description:
      - The notifications of the budget.
      - When not set, the notifications are left as they are.
      - With O(purge_notifications=true), notifications of the budget that are not listed are deleted,
        so an empty list deletes them all.
      - At most 10. Each combination of O(notifications[].notification_type),
        O(notifications[].comparison_operator), O(notifications[].threshold) and
        O(notifications[].threshold_type) may appear once.
    type: list
    elements: dict
    suboptions:
      notification_type:
        description:
          - Whether the notification is about the actual or the forecasted cost.
        type: str
        choices: [ACTUAL, FORECASTED]
        default: ACTUAL
      comparison_operator:
        description:
          - How the cost is compared with O(notifications[].threshold).
        type: str
        choices: [GREATER_THAN, LESS_THAN, EQUAL_TO]
        default: GREATER_THAN
      threshold:
        description:
          - The threshold, greater than 0.
          - A percentage of O(limit_amount) with O(notifications[].threshold_type=PERCENTAGE) (V(80) is 80%),
            an amount in O(limit_unit) with O(notifications[].threshold_type=ABSOLUTE_VALUE).
        type: float
        required: true
      threshold_type:
        description:
          - Whether O(notifications[].threshold) is a percentage of the limit or an amount.
        type: str
        choices: [PERCENTAGE, ABSOLUTE_VALUE]
        default: PERCENTAGE
      subscribers:
        description:
          - Who is notified. At least one, at most one SNS topic and 10 email addresses.
          - Compared as a set; order and repeats are not changes.
        type: list
        elements: dict
        required: true
        suboptions:
          subscription_type:
            description:
              - How the subscriber is notified.
            type: str
            choices: [SNS, EMAIL]
            required: true
          address:
            description:
              - An email address for V(EMAIL), an SNS topic ARN for V(SNS).
              - The topic's policy must let C(budgets.amazonaws.com) publish to it.
            type: str
            required: true
  purge_notifications:
    description:
      - Delete the notifications of the budget that O(notifications) does not list.
      - Has no effect when O(notifications) is not set.
    type: bool
    default: true
notes:
  - Supports check mode and diff mode. In check mode no mutating API is called.
  - RV(diff) is returned on every run, in diff mode or not.
  - AWS Budgets is a global service; the region only picks the partition's endpoint.
  - Cost filter dimension names are kept as AWS spells them in RV(budget.cost_filters) (not converted to snake_case).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
# Authentication details come from the environment or the amazon.aws options; see the AWS guide.

- name: A monthly budget for the cluster, alerting the platform team at 80% actual and 100% forecasted
  eks_autoscaling.core.aws_budget:
    name: eksworkshop-monthly
    limit_amount: 500
    cost_filters:
      Service:
        - Amazon Elastic Compute Cloud - Compute
      Region:
        - ap-southeast-1
    notifications:
      - threshold: 80
        subscribers:
          - subscription_type: EMAIL
            address: platform-team@example.com
      - notification_type: FORECASTED
        threshold: 100
        subscribers:
          - subscription_type: EMAIL
            address: platform-team@example.com
          - subscription_type: SNS
            address: arn:aws:sns:ap-southeast-1:123456789012:eksworkshop-budget-alerts
  register: budget

- name: Raise the limit; notifications not listed are left alone
  eks_autoscaling.core.aws_budget:
    name: eksworkshop-monthly
    limit_amount: 750
    purge_notifications: false
    notifications:
      - threshold: 600
        threshold_type: ABSOLUTE_VALUE
        subscribers:
          - subscription_type: EMAIL
            address: finance@example.com

- name: A yearly budget in another account (cross-account credentials needed)
  eks_autoscaling.core.aws_budget:
    name: shared-services-yearly
    account_id: "210987654321"
    limit_amount: "12000.50"
    time_unit: ANNUALLY

- name: Remove the budget and its notifications
  eks_autoscaling.core.aws_budget:
    name: eksworkshop-monthly
    state: absent
"""

RETURN = r"""
account_id:
  description: The account that owns the budget.
  returned: success
  type: str
  sample: "123456789012"
budget:
  description:
    - The budget as C(DescribeBudget) returns it, with its notifications, keys in snake_case except the
      dimension names of RV(budget.cost_filters).
    - In check mode, the budget as it would be; fields only AWS fills in (time period, calculated spend)
      are missing when the budget would be created.
    - Empty when O(state=absent).
  returned: success
  type: dict
  contains:
    budget_name:
      description: Name of the budget.
      type: str
      sample: eksworkshop-monthly
    budget_type:
      description: Type of the budget, always C(COST).
      type: str
      sample: COST
    budget_limit:
      description: The limit per RV(budget.time_unit).
      type: dict
      sample: {"amount": "500.0", "unit": "USD"}
    time_unit:
      description: How often the budget resets.
      type: str
      sample: MONTHLY
    cost_filters:
      description: Cost filters, dimension names unchanged. Missing when the budget has none.
      type: dict
      sample: {"Service": ["Amazon Elastic Compute Cloud - Compute"], "Region": ["ap-southeast-1"]}
    cost_types:
      description: Which kinds of cost the budget counts, as AWS set them.
      type: dict
      sample: {"include_tax": true, "include_credit": true, "use_blended": false}
    time_period:
      description: Start and end of the period the budget covers.
      type: dict
      sample: {"start": "2026-11-01T00:00:00+00:00", "end": "2087-06-15T00:00:00+00:00"}
    calculated_spend:
      description: The actual and forecasted cost so far.
      type: dict
      sample: {"actual_spend": {"amount": "123.45", "unit": "USD"}, "forecasted_spend": {"amount": "410.2", "unit": "USD"}}
    last_updated_time:
      description: When the budget was last changed.
      type: str
      sample: "2026-11-25T12:00:00+00:00"
    notifications:
      description: The notifications of the budget, ordered by type, operator, threshold type and threshold.
      type: list
      elements: dict
      contains:
        notification_type:
          description: C(ACTUAL) or C(FORECASTED).
          type: str
          sample: ACTUAL
        comparison_operator:
          description: How the cost is compared with the threshold.
          type: str
          sample: GREATER_THAN
        threshold:
          description: The threshold.
          type: float
          sample: 80.0
        threshold_type:
          description: C(PERCENTAGE) or C(ABSOLUTE_VALUE).
          type: str
          sample: PERCENTAGE
        notification_state:
          description: C(ALARM) once the threshold was crossed in the current period, else C(OK). Missing for a new notification.
          type: str
          sample: OK
        subscribers:
          description: The subscribers of the notification, ordered by type and address.
          type: list
          elements: dict
          sample: [{"subscription_type": "EMAIL", "address": "platform-team@example.com"}]
diff:
  description: RV(budget) before and after the run.
  returned: success
  type: dict
  contains:
    before:
      description: The budget before the run, empty when it did not exist.
      type: dict
      sample: {"budget_name": "eksworkshop-monthly", "budget_limit": {"amount": "500.0", "unit": "USD"}}
    after:
      description: The budget after the run, empty when it was deleted.
      type: dict
      sample: {"budget_name": "eksworkshop-monthly", "budget_limit": {"amount": "750", "unit": "USD"}}
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import COMPARISON_OPERATORS
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import NOTIFICATION_TYPES
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import SUBSCRIPTION_TYPES
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import THRESHOLD_TYPES
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import TIME_UNITS
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import BudgetsError
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import ensure_budget
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import ensure_budget_absent
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import get_account_id
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import get_budget
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import module_result
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import validate_account_id
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import validate_budget_name
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import validate_budget_params


def main():
    subscriber_spec = dict(
        subscription_type=dict(type="str", required=True, choices=list(SUBSCRIPTION_TYPES)),
        address=dict(type="str", required=True),
    )
    notification_spec = dict(
        notification_type=dict(type="str", default="ACTUAL", choices=list(NOTIFICATION_TYPES)),
        comparison_operator=dict(type="str", default="GREATER_THAN", choices=list(COMPARISON_OPERATORS)),
        threshold=dict(type="float", required=True),
        threshold_type=dict(type="str", default="PERCENTAGE", choices=list(THRESHOLD_TYPES)),
        subscribers=dict(type="list", elements="dict", required=True, options=subscriber_spec),
    )
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["budget_name"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        account_id=dict(type="str"),
        # raw, not float: the amount reaches AWS as a decimal string, and str would warn about numbers.
        limit_amount=dict(type="raw"),
        limit_unit=dict(type="str", default="USD"),
        time_unit=dict(type="str", default="MONTHLY", choices=list(TIME_UNITS)),
        cost_filters=dict(type="dict"),
        notifications=dict(type="list", elements="dict", options=notification_spec),
        purge_notifications=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["limit_amount"])],
        supports_check_mode=True,
    )
    params = module.params
    name, account_id = params["name"], params["account_id"]

    try:
        # Refuse bad input before the first API call, not half-way through a change.
        if params["state"] == "present":
            validate_budget_params(
                name,
                params["limit_amount"],
                params["limit_unit"],
                params["time_unit"],
                params["cost_filters"],
                params["notifications"],
                account_id,
            )
        else:
            validate_budget_name(name)
            if account_id is not None:
                validate_account_id(account_id)
        if account_id is None:
            account_id = get_account_id(module.client("sts", retry_decorator=AWSRetry.jittered_backoff()))
        client = module.client("budgets", retry_decorator=AWSRetry.jittered_backoff())
        before = get_budget(client, account_id, name)
        if params["state"] == "present":
            changed, after = ensure_budget(
                client,
                account_id,
                name,
                limit_amount=params["limit_amount"],
                limit_unit=params["limit_unit"],
                time_unit=params["time_unit"],
                cost_filters=params["cost_filters"],
                notifications=params["notifications"],
                purge_notifications=params["purge_notifications"],
                check_mode=module.check_mode,
                current=before,
            )
        else:
            changed, after = ensure_budget_absent(client, account_id, name, check_mode=module.check_mode, current=before)
    except BudgetsError as e:
        module.fail_json_aws_error(e)

    module.exit_json(**module_result(changed, account_id, before, after))


if __name__ == "__main__":
    main()
