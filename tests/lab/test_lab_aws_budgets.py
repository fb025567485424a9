"""lab/aws_budgets.py: the Budgets operations the lab adds to moto, through boto3 and real HTTP.

The server is conftest's in-process lab server. Every test makes a budget of its own, since the
server is shared by the whole session.
"""
import uuid

import pytest

from lab.aws_server import install_extensions

from tests.conftest import REGION, make_client

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:lab-budget-alerts"
ACTUAL_80 = {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "Threshold": 80.0, "ThresholdType": "PERCENTAGE"}
FORECASTED_100 = {**ACTUAL_80, "NotificationType": "FORECASTED", "Threshold": 100.0}


def email(address):
    return {"SubscriptionType": "EMAIL", "Address": address}


def sns(address=TOPIC):
    return {"SubscriptionType": "SNS", "Address": address}


@pytest.fixture
def budgets(aws_endpoint):
    return make_client(aws_endpoint, "budgets")


@pytest.fixture
def name(budgets):
    """A COST budget with ACTUAL_80 (ops@) and FORECASTED_100 (ops@ and the SNS topic)."""
    budget_name = f"lab-{uuid.uuid4().hex[:10]}"
    budgets.create_budget(
        AccountId=ACCOUNT,
        Budget={
            "BudgetName": budget_name,
            "BudgetLimit": {"Amount": "100", "Unit": "USD"},
            "CostFilters": {"Service": ["Amazon Elastic Compute Cloud - Compute"]},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
        },
        NotificationsWithSubscribers=[
            {"Notification": ACTUAL_80, "Subscribers": [email("ops@example.com")]},
            {"Notification": FORECASTED_100, "Subscribers": [email("ops@example.com"), sns()]},
        ],
    )
    return budget_name


def describe(budgets, name):
    return budgets.describe_budget(AccountId=ACCOUNT, BudgetName=name)["Budget"]


def notifications(budgets, name):
    return budgets.describe_notifications_for_budget(AccountId=ACCOUNT, BudgetName=name)["Notifications"]


def subscribers(budgets, name, notification):
    found = budgets.describe_subscribers_for_notification(AccountId=ACCOUNT, BudgetName=name, Notification=notification)
    return sorted((s["SubscriptionType"], s["Address"]) for s in found["Subscribers"])


def error_of(caught):
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_install_is_idempotent(budgets, name):
    install_extensions()
    install_extensions()
    assert subscribers(budgets, name, ACTUAL_80) == [("EMAIL", "ops@example.com")]


# -- UpdateBudget -----------------------------------------------------------------------------------------
def test_update_budget_replaces_the_budget_and_keeps_its_notifications(budgets, name):
    before = describe(budgets, name)
    budgets.update_budget(
        AccountId=ACCOUNT,
        NewBudget={"BudgetName": name, "BudgetLimit": {"Amount": "250.5", "Unit": "USD"}, "TimeUnit": "QUARTERLY", "BudgetType": "COST"},
    )
    after = describe(budgets, name)
    assert after["BudgetLimit"] == {"Amount": "250.5", "Unit": "USD"} and after["TimeUnit"] == "QUARTERLY"
    # A replacement: the filters not sent are gone; the period not sent stays.
    assert not after.get("CostFilters")
    assert after["TimePeriod"] == before["TimePeriod"]
    assert after["LastUpdatedTime"] >= before["LastUpdatedTime"]
    assert after["CalculatedSpend"]["ActualSpend"]["Amount"] == "0"
    assert [n["NotificationType"] for n in notifications(budgets, name)] == ["ACTUAL", "FORECASTED"]
    assert subscribers(budgets, name, FORECASTED_100) == [("EMAIL", "ops@example.com"), ("SNS", TOPIC)]


def test_update_budget_sent_back_as_described_changes_nothing_but_the_limit(budgets, name):
    budget = describe(budgets, name)
    sent = {key: value for key, value in budget.items() if key not in ("CalculatedSpend", "LastUpdatedTime")}
    budgets.update_budget(AccountId=ACCOUNT, NewBudget={**sent, "BudgetLimit": {"Amount": "120", "Unit": "USD"}})
    after = describe(budgets, name)
    for key in ("CostFilters", "CostTypes", "TimePeriod", "TimeUnit", "BudgetType"):
        assert after[key] == budget[key], key
    assert after["BudgetLimit"]["Amount"] == "120"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"BudgetLimit": None}, "please provide one of the followings"),
        (
            {"PlannedBudgetLimits": {"1793491200": {"Amount": "100", "Unit": "USD"}}},
            "Only one of BudgetLimit or PlannedBudgetLimits",
        ),
        (
            {"FilterExpression": {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Elastic Compute Cloud - Compute"]}}},
            "CostFilters or with FilterExpression, not both",
        ),
    ],
)
def test_update_budget_refuses_invalid_budgets(budgets, name, change, message):
    new = {
        "BudgetName": name,
        "BudgetLimit": {"Amount": "1", "Unit": "USD"},
        "CostFilters": {"Service": ["Amazon Elastic Compute Cloud - Compute"]},
        "TimeUnit": "MONTHLY",
        "BudgetType": "COST",
        **change,
    }
    new = {key: value for key, value in new.items() if value is not None}
    with pytest.raises(budgets.exceptions.InvalidParameterException, match=message) as caught:
        budgets.update_budget(AccountId=ACCOUNT, NewBudget=new)
    assert error_of(caught) == ("InvalidParameterException", 400)
    assert describe(budgets, name)["BudgetLimit"]["Amount"] == "100"


def test_update_budget_of_a_missing_budget_is_not_found(budgets):
    with pytest.raises(budgets.exceptions.NotFoundException) as caught:
        budgets.update_budget(
            AccountId=ACCOUNT,
            NewBudget={"BudgetName": "lab-no-such-budget", "BudgetLimit": {"Amount": "1", "Unit": "USD"}, "TimeUnit": "MONTHLY", "BudgetType": "COST"},
        )
    assert error_of(caught) == ("NotFoundException", 400)


# -- missing budgets and notifications ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("describe_budget", {}),
        ("describe_notifications_for_budget", {}),
        ("describe_subscribers_for_notification", {"Notification": ACTUAL_80}),
        ("create_notification", {"Notification": ACTUAL_80, "Subscribers": [email("ops@example.com")]}),
        ("update_notification", {"OldNotification": ACTUAL_80, "NewNotification": FORECASTED_100}),
        ("delete_notification", {"Notification": ACTUAL_80}),
        ("create_subscriber", {"Notification": ACTUAL_80, "Subscriber": email("ops@example.com")}),
        ("delete_subscriber", {"Notification": ACTUAL_80, "Subscriber": email("ops@example.com")}),
    ],
)
def test_a_missing_budget_is_not_found(budgets, operation, params):
    with pytest.raises(budgets.exceptions.NotFoundException) as caught:
        getattr(budgets, operation)(AccountId=ACCOUNT, BudgetName="lab-no-such-budget", **params)
    assert error_of(caught) == ("NotFoundException", 400)
    assert "lab-no-such-budget" in caught.value.response["Error"]["Message"]


MISSING = {**ACTUAL_80, "Threshold": 90.0}


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("describe_subscribers_for_notification", {"Notification": MISSING}),
        ("update_notification", {"OldNotification": MISSING, "NewNotification": {**ACTUAL_80, "Threshold": 95.0}}),
        ("delete_notification", {"Notification": MISSING}),
        ("create_subscriber", {"Notification": MISSING, "Subscriber": email("cto@example.com")}),
        ("delete_subscriber", {"Notification": MISSING, "Subscriber": email("ops@example.com")}),
    ],
)
def test_a_missing_notification_is_not_found(budgets, name, operation, params):
    with pytest.raises(budgets.exceptions.NotFoundException) as caught:
        getattr(budgets, operation)(AccountId=ACCOUNT, BudgetName=name, **params)
    assert error_of(caught) == ("NotFoundException", 400)
    assert len(notifications(budgets, name)) == 2


# -- notifications ------------------------------------------------------------------------------------------
def test_a_notification_is_named_by_its_fields_not_their_spelling(budgets, name):
    # ThresholdType left out is PERCENTAGE; an integral threshold is the same number; the state is Budgets'.
    spelled = {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "Threshold": 80, "NotificationState": "ALARM"}
    assert subscribers(budgets, name, spelled) == [("EMAIL", "ops@example.com")]
    with pytest.raises(budgets.exceptions.DuplicateRecordException) as caught:
        budgets.create_notification(AccountId=ACCOUNT, BudgetName=name, Notification=spelled, Subscribers=[email("x@example.com")])
    assert error_of(caught) == ("DuplicateRecordException", 400)


def test_create_and_delete_notification(budgets, name):
    absolute = {**ACTUAL_80, "Threshold": 500.0, "ThresholdType": "ABSOLUTE_VALUE", "NotificationState": "ALARM"}
    budgets.create_notification(AccountId=ACCOUNT, BudgetName=name, Notification=absolute, Subscribers=[sns()])
    created = [n for n in notifications(budgets, name) if n["ThresholdType"] == "ABSOLUTE_VALUE"]
    assert created == [{key: value for key, value in absolute.items() if key != "NotificationState"}]
    assert subscribers(budgets, name, absolute) == [("SNS", TOPIC)]

    budgets.delete_notification(AccountId=ACCOUNT, BudgetName=name, Notification=absolute)
    assert len(notifications(budgets, name)) == 2
    with pytest.raises(budgets.exceptions.NotFoundException):
        budgets.delete_notification(AccountId=ACCOUNT, BudgetName=name, Notification=absolute)


@pytest.mark.parametrize(
    ("subscribers_", "error"),
    [
        ([sns(), sns(TOPIC + "-2")], "CreationLimitExceededException"),
        ([email(f"u{i}@example.com") for i in range(11)], "CreationLimitExceededException"),
        ([email("a@example.com"), email("a@example.com")], "InvalidParameterException"),
        ([sns("lab-budget-alerts")], "InvalidParameterException"),
        ([email("a@example.com\nb@example.com")], "InvalidParameterException"),
    ],
)
def test_create_notification_checks_its_subscribers(budgets, name, subscribers_, error):
    with pytest.raises(getattr(budgets.exceptions, error)):
        budgets.create_notification(
            AccountId=ACCOUNT, BudgetName=name, Notification={**ACTUAL_80, "Threshold": 60.0}, Subscribers=subscribers_
        )
    assert len(notifications(budgets, name)) == 2


def test_update_notification_keeps_its_subscribers(budgets, name):
    moved = {**ACTUAL_80, "Threshold": 90.0, "ComparisonOperator": "EQUAL_TO"}
    budgets.update_notification(AccountId=ACCOUNT, BudgetName=name, OldNotification=ACTUAL_80, NewNotification=moved)
    assert {(n["ComparisonOperator"], n["Threshold"]) for n in notifications(budgets, name)} == {("EQUAL_TO", 90.0), ("GREATER_THAN", 100.0)}
    assert subscribers(budgets, name, moved) == [("EMAIL", "ops@example.com")]
    with pytest.raises(budgets.exceptions.NotFoundException):
        subscribers(budgets, name, ACTUAL_80)
    # To itself: allowed, changes nothing.
    budgets.update_notification(AccountId=ACCOUNT, BudgetName=name, OldNotification=moved, NewNotification=moved)
    assert subscribers(budgets, name, moved) == [("EMAIL", "ops@example.com")]


def test_update_notification_onto_another_notification_is_a_duplicate(budgets, name):
    with pytest.raises(budgets.exceptions.DuplicateRecordException) as caught:
        budgets.update_notification(AccountId=ACCOUNT, BudgetName=name, OldNotification=ACTUAL_80, NewNotification=FORECASTED_100)
    assert error_of(caught) == ("DuplicateRecordException", 400)
    assert subscribers(budgets, name, ACTUAL_80) == [("EMAIL", "ops@example.com")]


def test_update_notification_refuses_an_invalid_notification(budgets, name):
    with pytest.raises(budgets.exceptions.InvalidParameterException, match="ThresholdType must be one of"):
        budgets.update_notification(
            AccountId=ACCOUNT, BudgetName=name, OldNotification=ACTUAL_80, NewNotification={**ACTUAL_80, "ThresholdType": "PERCENT"}
        )


# -- subscribers ---------------------------------------------------------------------------------------------
def test_subscribers_are_added_and_removed(budgets, name):
    budgets.create_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=email("cto@example.com"))
    budgets.create_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=sns())
    assert subscribers(budgets, name, ACTUAL_80) == [("EMAIL", "cto@example.com"), ("EMAIL", "ops@example.com"), ("SNS", TOPIC)]
    # The other notification is its own.
    assert subscribers(budgets, name, FORECASTED_100) == [("EMAIL", "ops@example.com"), ("SNS", TOPIC)]

    budgets.delete_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=email("ops@example.com"))
    assert subscribers(budgets, name, ACTUAL_80) == [("EMAIL", "cto@example.com"), ("SNS", TOPIC)]
    with pytest.raises(budgets.exceptions.NotFoundException) as caught:
        budgets.delete_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=email("ops@example.com"))
    assert error_of(caught) == ("NotFoundException", 400)


def test_deleting_the_last_subscriber_deletes_the_notification(budgets, name):
    budgets.delete_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=email("ops@example.com"))
    assert [n["NotificationType"] for n in notifications(budgets, name)] == ["FORECASTED"]


def test_create_subscriber_refuses_duplicates(budgets, name):
    with pytest.raises(budgets.exceptions.DuplicateRecordException) as caught:
        budgets.create_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=email("ops@example.com"))
    assert error_of(caught) == ("DuplicateRecordException", 400)
    assert subscribers(budgets, name, ACTUAL_80) == [("EMAIL", "ops@example.com")]


def test_create_subscriber_keeps_to_one_topic_and_ten_addresses(budgets, name):
    with pytest.raises(budgets.exceptions.CreationLimitExceededException):
        budgets.create_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=FORECASTED_100, Subscriber=sns(TOPIC + "-2"))
    for i in range(9):
        budgets.create_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=email(f"u{i}@example.com"))
    with pytest.raises(budgets.exceptions.CreationLimitExceededException):
        budgets.create_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=email("u9@example.com"))
    assert len(subscribers(budgets, name, ACTUAL_80)) == 10


@pytest.mark.parametrize(
    ("subscriber", "message"),
    [
        ({"SubscriptionType": "SMS", "Address": "+6512345678"}, "SubscriptionType must be one of SNS, EMAIL"),
        (sns("arn:aws:sqs:ap-southeast-1:123456789012:queue"), "must be an SNS topic ARN"),
    ],
)
def test_create_subscriber_refuses_invalid_subscribers(budgets, name, subscriber, message):
    with pytest.raises(budgets.exceptions.InvalidParameterException, match=message):
        budgets.create_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=subscriber)


# -- pagination ----------------------------------------------------------------------------------------------
def test_subscribers_and_notifications_are_paginated(budgets, name):
    for i in range(5):
        budgets.create_subscriber(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, Subscriber=email(f"u{i}@example.com"))
    first = budgets.describe_subscribers_for_notification(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, MaxResults=4)
    assert len(first["Subscribers"]) == 4 and first["NextToken"]
    rest = budgets.describe_subscribers_for_notification(
        AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, MaxResults=4, NextToken=first["NextToken"]
    )
    assert len(rest["Subscribers"]) == 2 and not rest.get("NextToken")
    paginated = (
        budgets.get_paginator("describe_subscribers_for_notification")
        .paginate(AccountId=ACCOUNT, BudgetName=name, Notification=ACTUAL_80, PaginationConfig={"PageSize": 2})
        .build_full_result()
    )
    assert len(paginated["Subscribers"]) == 6

    page = budgets.describe_notifications_for_budget(AccountId=ACCOUNT, BudgetName=name, MaxResults=1)
    assert len(page["Notifications"]) == 1 and page["NextToken"]
    with pytest.raises(budgets.exceptions.InvalidNextTokenException):
        budgets.describe_notifications_for_budget(AccountId=ACCOUNT, BudgetName=name, NextToken="not-a-token")

