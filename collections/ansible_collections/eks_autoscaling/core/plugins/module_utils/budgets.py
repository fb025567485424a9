# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AWS Budgets cost budgets and their notifications: every API call aws_budget makes.

As in eks_access.py, the module only parses its options and reports; validation, reads, the
comparison, retries and error translation live here, so they can be tested against the in-process
AWS server without AnsibleModule.

The clients are made the amazon.aws way, wrapped for retries:

    client = module.client("budgets", retry_decorator=AWSRetry.jittered_backoff())

Failures are raised as ``BudgetsError`` (an ``AnsibleAWSError``) for ``module.fail_json_aws_error``.

The state this module works with is the budget as DescribeBudget returns it (camelCase, as boto3
has it), plus ``Notifications``: each notification as DescribeNotificationsForBudget returns it,
with its ``Subscribers``. Notifications and subscribers are kept sorted so that two reads of the
same budget compare equal whatever order the API answered in.

``ensure_*`` functions return ``(changed, state)``; ``state`` is None when the budget is absent.
In check mode nothing is changed and ``state`` is the budget as it would be.
"""

import re
from decimal import Decimal
from decimal import InvalidOperation

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

BUDGET_TYPE = "COST"
TIME_UNITS = ("MONTHLY", "QUARTERLY", "ANNUALLY")
NOTIFICATION_TYPES = ("ACTUAL", "FORECASTED")
COMPARISON_OPERATORS = ("GREATER_THAN", "LESS_THAN", "EQUAL_TO")
THRESHOLD_TYPES = ("PERCENTAGE", "ABSOLUTE_VALUE")
SUBSCRIPTION_TYPES = ("SNS", "EMAIL")
# What Budgets assumes when a notification is created without a threshold type.
DEFAULT_THRESHOLD_TYPE = "PERCENTAGE"
# The Budgets API's own limits: a notification has one SNS and up to 10 email subscribers, and
# CreateBudget takes at most 10 notifications.
MAX_SNS_SUBSCRIBERS = 1
MAX_EMAIL_SUBSCRIBERS = 10
SUBSCRIBER_LIMITS = {"SNS": MAX_SNS_SUBSCRIBERS, "EMAIL": MAX_EMAIL_SUBSCRIBERS}
MAX_NOTIFICATIONS = 10
# Fields DescribeBudget reports but a budget sent back to UpdateBudget or CreateBudget must not
# carry. Everything else is carried over as it is: dropping a field this module does not know
# would silently reset that setting of the budget.
READ_ONLY_BUDGET_FIELDS = ("CalculatedSpend", "LastUpdatedTime", "HealthStatus")
# The fields that name a notification in DeleteNotification and the subscriber calls.
NOTIFICATION_FIELDS = ("NotificationType", "ComparisonOperator", "Threshold", "ThresholdType")

# CreateBudget's constraint on names, as its API model states it.
BUDGET_NAME_RE = re.compile(r"^[^:\\]{1,100}$")
ACCOUNT_ID_RE = re.compile(r"^\d{12}$")
# NumericValue in the API: plain digits with an optional fraction, no sign or exponent.
_PARTITIONS = "(?:aws|aws-cn|aws-us-gov)"
SNS_TOPIC_ARN_RE = re.compile(rf"^arn:{_PARTITIONS}:sns:[a-z0-9-]+:\d{{12}}:[A-Za-z0-9_-]{{1,256}}(?:\.fifo)?$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Tells "the caller did not pass the current state" apart from "the budget does not exist" (None).
_UNSET = object()


class BudgetsError(AnsibleAWSError):
    """Any failure of budgets; ``exception`` holds the botocore error when there is one."""


class _BudgetsErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = BudgetsError

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("NotFoundException")


# -- validation and normalisation ---------------------------------------------------------------------
def validate_budget_name(name, option="name"):
    if isinstance(name, str) and BUDGET_NAME_RE.match(name) and "/action/" not in name:
        return
    raise BudgetsError(
        message=f"{option} must be a budget name (1 to 100 characters, without ':', '\\' or '/action/'), got {name!r}"
    )


def validate_account_id(account_id, option="account_id"):
    if isinstance(account_id, str) and ACCOUNT_ID_RE.match(account_id):
        return
    raise BudgetsError(message=f"{option} must be a 12-digit AWS account ID (quote it in YAML), got {account_id!r}")


def normalise_amount(value, option="limit_amount"):
    """The amount as Budgets takes it: a string of digits with an optional fraction, > 0."""
    # bool is an int to Python, but `limit_amount: true` is a mistake, not 1 USD.
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise BudgetsError(message=f"{option} must be a number greater than 0, got {value!r}")
    try:
        # Through str so that a YAML float such as 100.1 is not widened to its binary expansion.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise BudgetsError(message=f"{option} must be a number greater than 0, got {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise BudgetsError(message=f"{option} must be a number greater than 0, got {value!r}")
    # Fixed-point: the API refuses exponents, which Decimal would keep for "1E+3".
    return format(amount, "f")


def _validate_choice(value, choices, option):
    if value not in choices:
        raise BudgetsError(message=f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value


def normalise_cost_filters(cost_filters, option="cost_filters"):
    """{dimension: sorted values without repeats}; None stays None (leave the filters alone)."""
    if cost_filters is None:
        return None
    if not isinstance(cost_filters, dict):
        raise BudgetsError(message=f"{option} must be a mapping of dimension names to lists of values, got {cost_filters!r}")
    normalised = {}
    for key, values in cost_filters.items():
        if not isinstance(key, str) or not key:
            raise BudgetsError(message=f"{option} keys must be non-empty dimension names, got {key!r}")
        if not isinstance(values, (list, tuple)) or not values:
            raise BudgetsError(message=f"{option}.{key} must be a non-empty list of strings, got {values!r}")
        for value in values:
            if not isinstance(value, str) or not value:
                raise BudgetsError(message=f"{option}.{key} must be a non-empty list of strings, got {values!r}")
        # Budgets filters on the set of values: order and repeats are not differences.
        normalised[key] = sorted(set(values))
    return normalised


def _subscriber_key(subscriber):
    return (subscriber.get("SubscriptionType"), subscriber.get("Address"))


def _sorted_subscribers(subscribers):
    return sorted(subscribers, key=_subscriber_key)


def normalise_subscribers(subscribers, option):
    if not isinstance(subscribers, list) or not subscribers:
        raise BudgetsError(message=f"{option} must list at least one subscriber, got {subscribers!r}")
    seen = {}
    for index, subscriber in enumerate(subscribers):
        field = f"{option}[{index}]"
        if not isinstance(subscriber, dict):
            raise BudgetsError(message=f"{field} must be a mapping with subscription_type and address, got {subscriber!r}")
        kind = _validate_choice(subscriber.get("subscription_type"), SUBSCRIPTION_TYPES, f"{field}.subscription_type")
        address = subscriber.get("address")
        if not isinstance(address, str) or not address:
            raise BudgetsError(message=f"{field}.address must be set, got {address!r}")
        if kind == "SNS" and not SNS_TOPIC_ARN_RE.match(address):
            raise BudgetsError(
                message=f"{field}.address must be an SNS topic ARN (arn:<partition>:sns:<region>:<12-digit account>:<topic>) "
                f"for subscription_type SNS, got {address!r}"
            )
        if kind == "EMAIL" and not EMAIL_RE.match(address):
            raise BudgetsError(message=f"{field}.address must be an email address for subscription_type EMAIL, got {address!r}")
        # A repeated subscriber is the same subscriber: Budgets keeps a set.
        seen[(kind, address)] = {"SubscriptionType": kind, "Address": address}
    kinds = [kind for kind, _ in seen]
    if kinds.count("SNS") > MAX_SNS_SUBSCRIBERS:
        raise BudgetsError(message=f"{option} may have at most {MAX_SNS_SUBSCRIBERS} SNS subscriber, got {kinds.count('SNS')}")
    if kinds.count("EMAIL") > MAX_EMAIL_SUBSCRIBERS:
        raise BudgetsError(
            message=f"{option} may have at most {MAX_EMAIL_SUBSCRIBERS} EMAIL subscribers, got {kinds.count('EMAIL')}"
        )
    return _sorted_subscribers(seen.values())


def _normalise_threshold(value, option):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BudgetsError(message=f"{option} must be a number > 0, got {value!r}")
    try:
        threshold = float(value)
    except ValueError:
        raise BudgetsError(message=f"{option} must be a number > 0, got {value!r}") from None
    if not threshold > 0 or threshold == float("inf"):
        raise BudgetsError(message=f"{option} must be > 0, got {value!r}")
    return threshold


def notification_key(notification):
    """What identifies a notification of a budget: Budgets has no notification ID."""
    return (
        notification.get("NotificationType"),
        notification.get("ComparisonOperator"),
        notification.get("ThresholdType") or DEFAULT_THRESHOLD_TYPE,
        float(notification.get("Threshold", 0)),
    )


def _sorted_notifications(notifications):
    return sorted(notifications, key=notification_key)


def normalise_notifications(notifications, option="notifications"):
    """The requested notifications in the state's form (camelCase, subscribers sorted), sorted.
    None stays None (leave the notifications alone). Options may be left out, as in the module:
    notification_type ACTUAL, comparison_operator GREATER_THAN, threshold_type PERCENTAGE."""
    if notifications is None:
        return None
    if not isinstance(notifications, list):
        raise BudgetsError(message=f"{option} must be a list, got {notifications!r}")
    if len(notifications) > MAX_NOTIFICATIONS:
        raise BudgetsError(message=f"{option} may have at most {MAX_NOTIFICATIONS} entries, got {len(notifications)}")
    normalised = {}
    for index, notification in enumerate(notifications):
        field = f"{option}[{index}]"
        if not isinstance(notification, dict):
            raise BudgetsError(message=f"{field} must be a mapping, got {notification!r}")
        wanted = {
            "NotificationType": _validate_choice(
                notification.get("notification_type") or "ACTUAL", NOTIFICATION_TYPES, f"{field}.notification_type"
            ),
            "ComparisonOperator": _validate_choice(
                notification.get("comparison_operator") or "GREATER_THAN", COMPARISON_OPERATORS, f"{field}.comparison_operator"
            ),
            "Threshold": _normalise_threshold(notification.get("threshold"), f"{field}.threshold"),
            "ThresholdType": _validate_choice(
                notification.get("threshold_type") or DEFAULT_THRESHOLD_TYPE, THRESHOLD_TYPES, f"{field}.threshold_type"
            ),
            "Subscribers": normalise_subscribers(notification.get("subscribers"), f"{field}.subscribers"),
        }
        key = notification_key(wanted)
        if key in normalised:
            first = normalised[key][0]
            raise BudgetsError(
                message=f"{field} repeats {option}[{first}] (same notification_type, comparison_operator, threshold and "
                "threshold_type); give each notification once, with all its subscribers"
            )
        normalised[key] = (index, wanted)
    return _sorted_notifications(wanted for _, wanted in normalised.values())


def validate_budget_params(
    name,
    limit_amount=None,
    limit_unit="USD",
    time_unit="MONTHLY",
    cost_filters=None,
    notifications=None,
    account_id=None,
):
    """Check every option of state=present before any API call; return (budget fields, notifications).
    account_id None is allowed: the caller looks it up."""
    validate_budget_name(name)
    if account_id is not None:
        validate_account_id(account_id)
    if limit_amount is None:
        raise BudgetsError(message="limit_amount is required when state=present")
    amount = normalise_amount(limit_amount)
    if not isinstance(limit_unit, str) or not limit_unit.strip():
        raise BudgetsError(message=f"limit_unit must be a currency code such as USD, got {limit_unit!r}")
    _validate_choice(time_unit, TIME_UNITS, "time_unit")
    fields = {
        "BudgetName": name,
        "BudgetType": BUDGET_TYPE,
        "BudgetLimit": {"Amount": amount, "Unit": limit_unit.strip()},
        "TimeUnit": time_unit,
    }
    filters = normalise_cost_filters(cost_filters)
    if filters is not None:
        fields["CostFilters"] = filters
    return fields, normalise_notifications(notifications)


# -- API calls ------------------------------------------------------------------------------------------
@_BudgetsErrorHandler.common_error_handler("get the AWS account ID (sts:GetCallerIdentity); set account_id")
def get_account_id(sts_client):
    """The account of the credentials, the default owner of the budget."""
    return sts_client.get_caller_identity(aws_retry=True)["Account"]


@_BudgetsErrorHandler.list_error_handler("describe budget")
def _describe_budget(client, account_id, name):
    return client.describe_budget(AccountId=account_id, BudgetName=name, aws_retry=True)["Budget"]


@AWSRetry.jittered_backoff()
def _paginate(client, operation, result_key, **params):
    # get_paginator is never retried by the client wrapper: retry the whole walk instead.
    return client.get_paginator(operation).paginate(**params).build_full_result().get(result_key, [])


@_BudgetsErrorHandler.common_error_handler("describe budget notifications")
def _describe_notifications(client, account_id, name):
    return _paginate(client, "describe_notifications_for_budget", "Notifications", AccountId=account_id, BudgetName=name)


@_BudgetsErrorHandler.common_error_handler("describe budget notification subscribers")
def _describe_subscribers(client, account_id, name, notification):
    return _paginate(
        client,
        "describe_subscribers_for_notification",
        "Subscribers",
        AccountId=account_id,
        BudgetName=name,
        Notification=_wire_notification(notification),
    )


def _wire_notification(notification):
    # The identifying fields only: NotificationState and Subscribers are not part of the name.
    return {field: notification[field] for field in NOTIFICATION_FIELDS if field in notification}


def _wire_budget(state):
    return {key: value for key, value in state.items() if key not in READ_ONLY_BUDGET_FIELDS and key != "Notifications"}


def _with_subscribers(notifications):
    return [
        {"Notification": _wire_notification(notification), "Subscribers": notification["Subscribers"]}
        for notification in notifications
    ]


@_BudgetsErrorHandler.common_error_handler("create budget")
def _create_budget(client, account_id, budget, notifications):
    client.create_budget(
        AccountId=account_id, Budget=budget, NotificationsWithSubscribers=_with_subscribers(notifications), aws_retry=True
    )


@_BudgetsErrorHandler.common_error_handler("update budget")
def _update_budget(client, account_id, budget):
    client.update_budget(AccountId=account_id, NewBudget=budget, aws_retry=True)


@_BudgetsErrorHandler.deletion_error_handler("delete budget")
def _delete_budget(client, account_id, name):
    client.delete_budget(AccountId=account_id, BudgetName=name, aws_retry=True)
    return True


@_BudgetsErrorHandler.common_error_handler("create budget notification")
def _create_notification(client, account_id, name, notification):
    client.create_notification(
        AccountId=account_id,
        BudgetName=name,
        Notification=_wire_notification(notification),
        Subscribers=notification["Subscribers"],
        aws_retry=True,
    )


@_BudgetsErrorHandler.deletion_error_handler("delete budget notification")
def _delete_notification(client, account_id, name, notification):
    client.delete_notification(
        AccountId=account_id, BudgetName=name, Notification=_wire_notification(notification), aws_retry=True
    )
    return True


@_BudgetsErrorHandler.common_error_handler("create budget notification subscriber")
def _create_subscriber(client, account_id, name, notification, subscriber):
    client.create_subscriber(
        AccountId=account_id,
        BudgetName=name,
        Notification=_wire_notification(notification),
        Subscriber=subscriber,
        aws_retry=True,
    )


@_BudgetsErrorHandler.deletion_error_handler("delete budget notification subscriber")
def _delete_subscriber(client, account_id, name, notification, subscriber):
    client.delete_subscriber(
        AccountId=account_id,
        BudgetName=name,
        Notification=_wire_notification(notification),
        Subscriber=subscriber,
        aws_retry=True,
    )
    return True


def _read_notifications(client, account_id, name):
    return _sorted_notifications(
        dict(notification, Subscribers=_sorted_subscribers(_describe_subscribers(client, account_id, name, notification)))
        for notification in _describe_notifications(client, account_id, name)
    )


def get_budget(client, account_id, name):
    """The budget with its notifications and their subscribers, or None when there is no such budget."""
    validate_budget_name(name)
    validate_account_id(account_id)
    budget = _describe_budget(client, account_id, name)
    if budget is None:
        return None
    return dict(budget, Notifications=_read_notifications(client, account_id, name))


# -- comparison -------------------------------------------------------------------------------------------
def _same_amount(current, wanted):
    try:
        return Decimal(current) == Decimal(wanted)
    except (InvalidOperation, TypeError):
        return current == wanted


def budget_changes(current, wanted):
    """The budget fields of ``wanted`` whose value differs from the budget's, in API form."""
    changes = {}
    current_limit = current.get("BudgetLimit") or {}
    wanted_limit = wanted["BudgetLimit"]
    # Budgets keeps "100" as "100.0": compare the numbers, not the strings.
    if not _same_amount(current_limit.get("Amount"), wanted_limit["Amount"]) or current_limit.get("Unit") != wanted_limit["Unit"]:
        changes["BudgetLimit"] = wanted_limit
    if current.get("TimeUnit") != wanted["TimeUnit"]:
        changes["TimeUnit"] = wanted["TimeUnit"]
    if "CostFilters" in wanted:
        # Read leniently: whatever Budgets answers is the truth, not input to refuse.
        current_filters = {key: sorted(set(values or [])) for key, values in (current.get("CostFilters") or {}).items()}
        if current_filters != wanted["CostFilters"]:
            changes["CostFilters"] = wanted["CostFilters"]
    return changes


def _refuse_unmanageable(current, name, wanted):
    kind = current.get("BudgetType")
    if kind != BUDGET_TYPE:
        raise BudgetsError(message=f"Budget {name!r} is a {kind} budget; this module manages {BUDGET_TYPE} budgets only")
    # Both make AWS set the limit itself, so a fixed limit_amount would never stay put.
    if current.get("PlannedBudgetLimits"):
        raise BudgetsError(
            message=f"Budget {name!r} has planned limits (PlannedBudgetLimits); limit_amount cannot manage it. "
            "Remove the planned limits first, or manage this budget another way."
        )
    if current.get("AutoAdjustData"):
        raise BudgetsError(
            message=f"Budget {name!r} has an auto-adjusting limit (AutoAdjustData); limit_amount cannot manage it. "
            "Make its limit fixed first, or manage this budget another way."
        )
    # UpdateBudget takes FilterExpression or CostFilters, never both.
    if "CostFilters" in wanted and current.get("FilterExpression"):
        raise BudgetsError(
            message=f"Budget {name!r} is filtered with a FilterExpression; cost_filters cannot be combined with it. "
            "Leave cost_filters unset to keep the FilterExpression."
        )


def resubscribe_steps(have, want):
    """The subscriber calls that take a notification from the subscribers ``have`` to ``want``, as
    [("create" or "delete", subscriber)] in an order Budgets accepts, or None when there is none.

    Budgets deletes a notification along with its last subscriber and refuses a subscriber past
    one SNS topic or 10 email addresses. So a removal waits while it would leave no subscriber, an
    addition while it would go past a limit, and removals that make room for an addition go first.
    Only replacing a lone SNS subscriber by another topic has no such order.
    """
    current = {_subscriber_key(s) for s in have}
    wanted = {_subscriber_key(s): s for s in want}
    add = [s for key, s in wanted.items() if key not in current]
    needed = {s["SubscriptionType"] for s in add}
    remove = sorted(
        (s for s in have if _subscriber_key(s) not in wanted), key=lambda s: s["SubscriptionType"] not in needed
    )
    steps = []
    while add or remove:
        if remove and len(current) > 1:
            subscriber = remove.pop(0)
            current.discard(_subscriber_key(subscriber))
            steps.append(("delete", subscriber))
            continue
        fitting = [
            s for s in add
            if sum(kind == s["SubscriptionType"] for kind, _ in current) < SUBSCRIBER_LIMITS[s["SubscriptionType"]]
        ]
        if not fitting:
            return None
        add.remove(fitting[0])
        current.add(_subscriber_key(fitting[0]))
        steps.append(("create", fitting[0]))
    return steps


class NotificationPlan:
    """What it takes to go from the budget's notifications to the wanted ones.

    ``final`` is the notifications the budget ends up with. ``resubscribe`` holds, per notification
    whose subscribers change, the ordered steps of ``resubscribe_steps``; a notification they cannot
    take to its subscribers is replaced instead (in ``delete`` and ``create``).
    """

    def __init__(self, current, wanted, purge):
        current_by_key = {notification_key(n): n for n in current}
        wanted_by_key = {notification_key(n): n for n in (wanted or [])}
        self.create = [] if wanted is None else [n for key, n in wanted_by_key.items() if key not in current_by_key]
        self.delete = (
            [n for key, n in current_by_key.items() if key not in wanted_by_key] if wanted is not None and purge else []
        )
        self.resubscribe = []
        final = list(self.create)
        for key, existing in current_by_key.items():
            if existing in self.delete:
                continue
            target = wanted_by_key.get(key)
            if target is None:
                final.append(existing)
                continue
            steps = resubscribe_steps(existing["Subscribers"], target["Subscribers"])
            if steps is None:
                self.delete.append(existing)
                self.create.append(target)
                final.append(target)
                continue
            if steps:
                self.resubscribe.append((existing, steps))
            final.append(dict(existing, Subscribers=target["Subscribers"]))
        self.final = _sorted_notifications(final)

    def __bool__(self):
        return bool(self.create or self.delete or self.resubscribe)


def _apply_notification_plan(client, account_id, name, plan):
    # Deletions first, so a budget near Budgets' notification limit can take the new ones.
    for notification in plan.delete:
        _delete_notification(client, account_id, name, notification)
    for notification in plan.create:
        _create_notification(client, account_id, name, notification)
    # Subscribers are changed in place rather than by recreating the notification, which would
    # reset its alert state and could alert again.
    for notification, steps in plan.resubscribe:
        for action, subscriber in steps:
            if action == "create":
                _create_subscriber(client, account_id, name, notification, subscriber)
            else:
                _delete_subscriber(client, account_id, name, notification, subscriber)


# -- state changes ----------------------------------------------------------------------------------------
def ensure_budget(
    client,
    account_id,
    name,
    limit_amount,
    limit_unit="USD",
    time_unit="MONTHLY",
    cost_filters=None,
    notifications=None,
    purge_notifications=True,
    check_mode=False,
    current=_UNSET,
):
    """Make the COST budget ``name`` match the arguments.

    ``cost_filters`` None leaves the filters alone and {} removes them. ``notifications`` None
    leaves the notifications alone; otherwise the listed ones are created or given the listed
    subscribers, and, with ``purge_notifications``, the others are deleted.
    """
    wanted, wanted_notifications = validate_budget_params(
        name, limit_amount, limit_unit, time_unit, cost_filters, notifications, account_id
    )
    if current is _UNSET:
        current = get_budget(client, account_id, name)

    if current is None:
        planned = dict(wanted, Notifications=list(wanted_notifications or []))
        if not planned.get("CostFilters"):
            planned.pop("CostFilters", None)
        if check_mode:
            return True, planned
        _create_budget(client, account_id, _wire_budget(planned), planned["Notifications"])
        # Re-read for what only Budgets fills in (time period, cost types); the notifications are
        # the ones just sent.
        return True, dict(_describe_budget(client, account_id, name) or {}, Notifications=planned["Notifications"])

    _refuse_unmanageable(current, name, wanted)
    changes = budget_changes(current, wanted)
    plan = NotificationPlan(current.get("Notifications") or [], wanted_notifications, purge_notifications)
    if not (changes or plan):
        return False, current

    planned = dict(current, **changes, Notifications=plan.final)
    if changes.get("CostFilters") == {}:
        planned.pop("CostFilters", None)
    if check_mode:
        return True, planned

    if changes:
        new_budget = _wire_budget(planned)
        if changes.get("CostFilters") == {}:
            # Said outright rather than left out, so the removal does not depend on how UpdateBudget
            # treats a missing member.
            new_budget["CostFilters"] = {}
        _update_budget(client, account_id, new_budget)
    _apply_notification_plan(client, account_id, name, plan)
    budget = _describe_budget(client, account_id, name) if changes else current
    return True, dict(budget or {}, Notifications=plan.final)


def ensure_budget_absent(client, account_id, name, check_mode=False, current=_UNSET):
    """Delete the budget (its notifications and subscribers go with it)."""
    validate_budget_name(name)
    validate_account_id(account_id)
    if current is _UNSET:
        current = get_budget(client, account_id, name)
    if current is None:
        return False, None
    if check_mode:
        return True, None
    # False means it vanished between the read and the delete: someone else did the work.
    deleted = _delete_budget(client, account_id, name)
    return bool(deleted), None


# -- the module's view ------------------------------------------------------------------------------------
def to_result(state):
    """snake_case keys, except the dimension names of the cost filters, which are AWS's own."""
    if not state:
        return {}
    return camel_dict_to_snake_dict(state, ignore_list=["CostFilters"])


def module_result(changed, account_id, before, after):
    return {
        "changed": changed,
        "account_id": to_text(account_id),
        "budget": to_result(after),
        "diff": {"before": to_result(before), "after": to_result(after)},
    }
