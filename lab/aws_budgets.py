"""The AWS Budgets APIs moto lacks, added to moto's Budgets service for the lab's AWS server.

moto 5.2.5 keeps budgets with their notifications and subscribers, but of the notification and
subscriber APIs it implements only CreateNotification, DeleteNotification and
DescribeNotificationsForBudget; UpdateBudget, UpdateNotification and the subscriber operations
answer a bare HTTP 500, and so does DescribeNotificationsForBudget for a budget that does not
exist. This module completes them on moto's own budget objects, with the semantics the AWS Budgets
API reference documents:

* UpdateBudget replaces the budget named by ``NewBudget.BudgetName`` (NotFoundException when there
  is none). Its calculated spend drops to zero, its time period stays unless the new budget gives
  one. InvalidParameterException for a cost or usage budget without a limit, for BudgetLimit with
  PlannedBudgetLimits and for CostFilters with FilterExpression.
* UpdateNotification changes a notification and keeps its subscribers; DuplicateRecordException
  when the new one is another notification of the budget.
* DescribeNotificationsForBudget and DescribeSubscribersForNotification: NotFoundException for a
  missing budget or notification, paginated with MaxResults (1 to 100) and NextToken.
* CreateSubscriber: DuplicateRecordException for a subscriber the notification has,
  CreationLimitExceededException past one SNS and 10 EMAIL subscribers per notification.
* DeleteSubscriber: NotFoundException for a subscriber the notification lacks; deleting the last
  subscriber deletes the notification.
* CreateNotification refuses a notification the budget has (DuplicateRecordException) and
  DeleteNotification a missing one (NotFoundException), where moto adds a second copy or ignores it.

A notification has no ID: the API names it by NotificationType, ComparisonOperator, Threshold and
ThresholdType (PERCENTAGE when unset). NotificationState in a request does not take part.
Subscribers and notifications are checked as the reference states (enumerations, an SNS topic ARN
for SNS, no line breaks in an address) and refused with InvalidParameterException.

install() registers these operations; lab/aws_server.py calls it from install_extensions().
"""
import json
import re
import threading

from moto.budgets.models import Notification
from moto.budgets.responses import BudgetsResponse
from moto.core.exceptions import JsonRESTError
from moto.core.utils import unix_time

NOTIFICATION_TYPES = ("ACTUAL", "FORECASTED")
COMPARISON_OPERATORS = ("GREATER_THAN", "LESS_THAN", "EQUAL_TO")
THRESHOLD_TYPES = ("PERCENTAGE", "ABSOLUTE_VALUE")
DEFAULT_THRESHOLD_TYPE = "PERCENTAGE"
SUBSCRIBER_LIMITS = {"SNS": 1, "EMAIL": 10}
MAX_RESULTS = 100
SNS_TOPIC_ARN_RE = re.compile(r"^arn:aws(-cn|-us-gov)?:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
# Budgets computes these; a budget sent back to UpdateBudget may carry them, but they are not kept.
SERVER_BUDGET_FIELDS = ("CalculatedSpend", "LastUpdatedTime", "HealthStatus")
# Only limit-less budget types (RI and Savings Plans utilisation or coverage) may go without.
LIMITED_BUDGET_TYPES = ("COST", "USAGE")

_lock = threading.Lock()


class BudgetsApiError(JsonRESTError):
    """An error in the shape the Budgets JSON protocol uses, which boto3 maps to its exception class."""

    code = 400

    def __init__(self, error_type, message):
        super().__init__(error_type, message)


def _not_found(message):
    return BudgetsApiError("NotFoundException", message)


def _invalid(message):
    return BudgetsApiError("InvalidParameterException", message)


def _duplicate(message):
    return BudgetsApiError("DuplicateRecordException", message)


def _get_budget(response, name, action):
    account_id = response._get_param("AccountId")
    # moto's store is a defaultdict: .get() so that a lookup does not create the account's entry.
    budget = response.backend.budgets.get(account_id, {}).get(name)
    if budget is None:
        raise _not_found(f"Unable to {action}: {name} - the budget doesn't exist.")
    return budget


def _notification_key(details, field):
    if not isinstance(details, dict):
        raise _invalid(f"{field} is required")
    kind, operator = details.get("NotificationType"), details.get("ComparisonOperator")
    threshold_type = details.get("ThresholdType") or DEFAULT_THRESHOLD_TYPE
    threshold = details.get("Threshold")
    if kind not in NOTIFICATION_TYPES:
        raise _invalid(f"{field}.NotificationType must be one of {', '.join(NOTIFICATION_TYPES)}")
    if operator not in COMPARISON_OPERATORS:
        raise _invalid(f"{field}.ComparisonOperator must be one of {', '.join(COMPARISON_OPERATORS)}")
    if threshold_type not in THRESHOLD_TYPES:
        raise _invalid(f"{field}.ThresholdType must be one of {', '.join(THRESHOLD_TYPES)}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
        raise _invalid(f"{field}.Threshold must be a number of at least 0")
    return kind, operator, threshold_type, float(threshold)


def _stored_details(details):
    # NotificationState is Budgets' to set, whatever a request says.
    return {key: value for key, value in details.items() if key != "NotificationState"}


def _label(key):
    kind, operator, threshold_type, threshold = key
    return f"{kind} {operator} {threshold:g} ({threshold_type})"


def _find_notification(budget, details, field="Notification"):
    key = _notification_key(details, field)
    for notification in budget.notifications:
        if _notification_key(notification.details, field) == key:
            return notification
    raise _not_found(f"Unable to find notification {_label(key)} of budget {budget.budget['BudgetName']}")


def _subscriber(subscriber, field="Subscriber"):
    if not isinstance(subscriber, dict):
        raise _invalid(f"{field} is required")
    kind, address = subscriber.get("SubscriptionType"), subscriber.get("Address")
    if kind not in SUBSCRIBER_LIMITS:
        raise _invalid(f"{field}.SubscriptionType must be one of {', '.join(SUBSCRIBER_LIMITS)}")
    if not isinstance(address, str) or not address or re.search(r"[\r\n]", address):
        raise _invalid(f"{field}.Address must be a non-empty string without line breaks")
    if kind == "SNS" and not SNS_TOPIC_ARN_RE.match(address):
        raise _invalid(f"{field}.Address must be an SNS topic ARN for SubscriptionType SNS, got {address}")
    return {"SubscriptionType": kind, "Address": address}


def _check_limit(subscribers, kind):
    count = sum(1 for s in subscribers if s["SubscriptionType"] == kind)
    if count > SUBSCRIBER_LIMITS[kind]:
        raise BudgetsApiError(
            "CreationLimitExceededException",
            f"A notification can have at most {SUBSCRIBER_LIMITS[kind]} {kind} subscriber(s)",
        )


def _page(response, items):
    max_results = response._get_param("MaxResults")
    token = response._get_param("NextToken")
    if max_results is None:
        max_results = MAX_RESULTS
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS:
        raise _invalid(f"MaxResults must be between 1 and {MAX_RESULTS}")
    start = 0
    if token:
        if not token.isdigit() or int(token) > len(items):
            raise BudgetsApiError("InvalidNextTokenException", "The pagination token is invalid.")
        start = int(token)
    end = start + max_results
    return items[start:end], (str(end) if end < len(items) else None)


# -- budgets --------------------------------------------------------------------------------------------
def update_budget(self):
    new = self._get_param("NewBudget")
    if not isinstance(new, dict) or not new.get("BudgetName"):
        raise _invalid("NewBudget.BudgetName is required")
    if new.get("BudgetLimit") and new.get("PlannedBudgetLimits"):
        raise _invalid("Only one of BudgetLimit or PlannedBudgetLimits can be present in a budget")
    if new.get("BudgetType") in LIMITED_BUDGET_TYPES and not (
        new.get("BudgetLimit") or new.get("PlannedBudgetLimits") or new.get("AutoAdjustData")
    ):
        raise _invalid(
            "Unable to update budget - please provide one of the followings: Budget Limit/ Planned Budget Limit/ Auto Adjust Data"
        )
    if new.get("CostFilters") and new.get("FilterExpression"):
        raise _invalid("A budget can be filtered with CostFilters or with FilterExpression, not both")
    with _lock:
        budget = _get_budget(self, new["BudgetName"], "update budget")
        replacement = {key: value for key, value in new.items() if key not in SERVER_BUDGET_FIELDS}
        replacement["TimePeriod"] = {**budget.budget.get("TimePeriod", {}), **(new.get("TimePeriod") or {})}
        replacement["LastUpdatedTime"] = unix_time()
        # Without CalculatedSpend, moto reports a spend of zero: what Budgets shows until it has new data.
        budget.budget = replacement
    return json.dumps({})


# -- notifications --------------------------------------------------------------------------------------
def describe_notifications_for_budget(self):
    with _lock:
        budget = _get_budget(self, self._get_param("BudgetName"), "describe notifications")
        notifications = [dict(n.details) for n in budget.notifications]
    page, token = _page(self, notifications)
    return json.dumps({"Notifications": page, "NextToken": token})


def create_notification(self):
    details = self._get_param("Notification")
    key = _notification_key(details, "Notification")
    given = self._get_param("Subscribers")
    if not isinstance(given, list) or not given:
        raise _invalid("Subscribers must list at least one subscriber")
    subscribers = []
    for index, subscriber in enumerate(given):
        subscriber = _subscriber(subscriber, f"Subscribers[{index}]")
        if subscriber in subscribers:
            raise _invalid(f"Subscribers lists {subscriber['Address']} twice")
        subscribers.append(subscriber)
    for kind in SUBSCRIBER_LIMITS:
        _check_limit(subscribers, kind)
    with _lock:
        budget = _get_budget(self, self._get_param("BudgetName"), "create notification")
        if any(_notification_key(n.details, "Notification") == key for n in budget.notifications):
            raise _duplicate(f"Error creating notification: {_label(key)} - the notification already exists.")
        budget.notifications.append(Notification(_stored_details(details), subscribers))
    return json.dumps({})


def update_notification(self):
    new_details = self._get_param("NewNotification")
    new_key = _notification_key(new_details, "NewNotification")
    with _lock:
        budget = _get_budget(self, self._get_param("BudgetName"), "update notification")
        notification = _find_notification(budget, self._get_param("OldNotification"), "OldNotification")
        old_key = _notification_key(notification.details, "OldNotification")
        if new_key != old_key and any(_notification_key(n.details, "Notification") == new_key for n in budget.notifications):
            raise _duplicate(f"Error updating notification: {_label(new_key)} - the notification already exists.")
        notification.details = _stored_details(new_details)
    return json.dumps({})


def delete_notification(self):
    with _lock:
        budget = _get_budget(self, self._get_param("BudgetName"), "delete notification")
        notification = _find_notification(budget, self._get_param("Notification"))
        budget.notifications.remove(notification)
    return json.dumps({})


# -- subscribers ----------------------------------------------------------------------------------------
def describe_subscribers_for_notification(self):
    with _lock:
        budget = _get_budget(self, self._get_param("BudgetName"), "describe subscribers")
        subscribers = [dict(s) for s in _find_notification(budget, self._get_param("Notification")).subscribers]
    page, token = _page(self, subscribers)
    return json.dumps({"Subscribers": page, "NextToken": token})


def create_subscriber(self):
    subscriber = _subscriber(self._get_param("Subscriber"))
    with _lock:
        budget = _get_budget(self, self._get_param("BudgetName"), "create subscriber")
        notification = _find_notification(budget, self._get_param("Notification"))
        if subscriber in notification.subscribers:
            raise _duplicate(f"Error creating subscriber: {subscriber['Address']} - the subscriber already exists.")
        subscribers = [*notification.subscribers, subscriber]
        _check_limit(subscribers, subscriber["SubscriptionType"])
        notification.subscribers = subscribers
    return json.dumps({})


def delete_subscriber(self):
    subscriber = _subscriber(self._get_param("Subscriber"))
    with _lock:
        budget = _get_budget(self, self._get_param("BudgetName"), "delete subscriber")
        notification = _find_notification(budget, self._get_param("Notification"))
        if subscriber not in notification.subscribers:
            raise _not_found(f"Unable to find subscriber {subscriber['Address']} of the notification")
        notification.subscribers = [s for s in notification.subscribers if s != subscriber]
        if not notification.subscribers:
            budget.notifications.remove(notification)
    return json.dumps({})


EXTRA_ACTIONS = {
    "update_budget": update_budget,
    "describe_notifications_for_budget": describe_notifications_for_budget,
    "create_notification": create_notification,
    "update_notification": update_notification,
    "delete_notification": delete_notification,
    "describe_subscribers_for_notification": describe_subscribers_for_notification,
    "create_subscriber": create_subscriber,
    "delete_subscriber": delete_subscriber,
}


def install():
    """Register the operations with moto's Budgets service. None of them calls the method it
    replaces, so installing again changes nothing."""
    for name, function in EXTRA_ACTIONS.items():
        setattr(BudgetsResponse, name, function)
