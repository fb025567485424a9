"""module_utils/budgets.py and the aws_budget module against the in-process AWS server.

As in test_eks_access.py, the client is wrapped exactly as AnsibleAWSModule.client(retry_decorator=...)
wraps it, and every operation it sends is recorded from botocore's event hooks: that is how "no
call", "no mutating call" and "which calls" are checked. A plain client reads the server
independently of the code under test.

The server is the lab's: moto with the Budgets operations of lab/aws_budgets.py (UpdateBudget, the
subscriber operations), so the module takes the same path as on AWS. The server itself is tested
in test_lab_aws_budgets.py.
"""
import ast
import uuid

import pytest
import yaml
from botocore.exceptions import ClientError

from ansible_collections.eks_autoscaling.core.plugins.module_utils import budgets
from ansible_collections.eks_autoscaling.core.plugins.module_utils.budgets import BudgetsError

from tests.conftest import COLLECTIONS, REGION

# pytest finds fixtures by name in the test module: importing them shares the ansible-playbook runner.
from .test_eks_access_playbook import connection, run_module, run_play  # noqa: F401

MODULE = "aws_budget"
MODULE_PATH = COLLECTIONS / "ansible_collections" / "eks_autoscaling" / "core" / "plugins" / "modules" / f"{MODULE}.py"
# The account moto gives the test credentials, which STS reports.
ACCOUNT = "123456789012"
EC2 = "Amazon Elastic Compute Cloud - Compute"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:budget-alerts"


def email(address):
    return {"subscription_type": "EMAIL", "address": address}


def sns(address=TOPIC):
    return {"subscription_type": "SNS", "address": address}


ACTUAL_80 = {"threshold": 80, "subscribers": [email("ops@example.com")]}
FORECASTED_100 = {
    "notification_type": "FORECASTED",
    "threshold": 100,
    "subscribers": [sns(), email("ops@example.com"), email("finance@example.com")],
}


# -- fixtures and helpers ---------------------------------------------------------------------------------
recorder = pytest.fixture(lambda aws_recorder: aws_recorder("budgets"))
raw = pytest.fixture(lambda boto_client: boto_client("budgets"))


@pytest.fixture
def name():
    # A budget of its own for each test: the server is shared by the whole session.
    return f"unit-{uuid.uuid4().hex[:10]}"


def server_budget(raw, name):
    try:
        return raw.describe_budget(AccountId=ACCOUNT, BudgetName=name)["Budget"]
    except raw.exceptions.NotFoundException:
        return None


def server_notifications(raw, name):
    """{(type, operator, threshold type, threshold): sorted (subscription type, address)}, read with the plain client."""
    result = {}
    for n in raw.describe_notifications_for_budget(AccountId=ACCOUNT, BudgetName=name)["Notifications"]:
        notification = {key: n[key] for key in ("NotificationType", "ComparisonOperator", "Threshold", "ThresholdType") if key in n}
        subscribers = raw.describe_subscribers_for_notification(AccountId=ACCOUNT, BudgetName=name, Notification=notification)
        key = (n["NotificationType"], n["ComparisonOperator"], n.get("ThresholdType", "PERCENTAGE"), float(n["Threshold"]))
        result[key] = sorted((s["SubscriptionType"], s["Address"]) for s in subscribers["Subscribers"])
    return result


def expected(*notifications):
    """server_notifications' form of notifications given as module options."""
    result = {}
    for n in notifications:
        key = (
            n.get("notification_type", "ACTUAL"),
            n.get("comparison_operator", "GREATER_THAN"),
            n.get("threshold_type", "PERCENTAGE"),
            float(n["threshold"]),
        )
        result[key] = sorted({(s["subscription_type"], s["address"]) for s in n["subscribers"]})
    return result


def subscribers_of(state):
    return [n["Subscribers"] for n in state["Notifications"]]


def ensure(client, name, check_mode=False, **args):
    return budgets.ensure_budget(client, ACCOUNT, name, **{"limit_amount": 100, **args}, check_mode=check_mode)


# -- validation, before any call --------------------------------------------------------------------------
def one(**changes):
    """Arguments with a single notification: ACTUAL_80 with ``changes``."""
    return {"notifications": [{**ACTUAL_80, **changes}]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": ""}, r"^name must be a budget name \(1 to 100 characters"),
        ({"name": "team:platform"}, "^name must be a budget name"),
        ({"name": "x" * 101}, "^name must be a budget name"),
        ({"name": "a/action/b"}, "^name must be a budget name"),
        ({"account_id": "12345"}, "^account_id must be a 12-digit AWS account ID"),
        ({"limit_amount": None}, "^limit_amount is required when state=present"),
        ({"limit_amount": 0}, "^limit_amount must be a number greater than 0, got 0"),
        ({"limit_amount": "-5"}, "^limit_amount must be a number greater than 0"),
        ({"limit_amount": "100 USD"}, "^limit_amount must be a number greater than 0"),
        ({"limit_amount": True}, "^limit_amount must be a number greater than 0"),
        ({"limit_amount": "NaN"}, "^limit_amount must be a number greater than 0"),
        ({"limit_unit": " "}, "^limit_unit must be a currency code"),
        ({"time_unit": "DAILY"}, "^time_unit must be one of MONTHLY, QUARTERLY, ANNUALLY, got 'DAILY'"),
        ({"cost_filters": {"Service": EC2}}, r"^cost_filters\.Service must be a non-empty list of strings"),
        ({"cost_filters": {"Service": []}}, r"^cost_filters\.Service must be a non-empty list of strings"),
        ({"cost_filters": {"Region": ["ap-southeast-1", 7]}}, r"^cost_filters\.Region must be a non-empty list of strings"),
        ({"cost_filters": ["Service"]}, "^cost_filters must be a mapping"),
        (one(threshold=0), r"^notifications\[0\]\.threshold must be > 0, got 0"),
        ({"notifications": [ACTUAL_80, {**ACTUAL_80, "threshold": -1}]}, r"^notifications\[1\]\.threshold must be > 0"),
        (one(threshold="eighty"), r"^notifications\[0\]\.threshold must be a number > 0"),
        ({"notifications": [{"subscribers": ACTUAL_80["subscribers"]}]}, r"^notifications\[0\]\.threshold must be a number"),
        (one(notification_type="BOTH"), r"^notifications\[0\]\.notification_type must be one of ACTUAL, FORECASTED"),
        (one(comparison_operator=">"), r"^notifications\[0\]\.comparison_operator must be one of"),
        (one(threshold_type="PERCENT"), r"^notifications\[0\]\.threshold_type must be one of PERCENTAGE, ABSOLUTE_VALUE"),
        (one(subscribers=[]), r"^notifications\[0\]\.subscribers must list at least one subscriber"),
        ({"notifications": [{"threshold": 80}]}, r"^notifications\[0\]\.subscribers must list at least one subscriber"),
        (one(subscribers=[sns("budget-alerts")]), r"^notifications\[0\]\.subscribers\[0\]\.address must be an SNS topic ARN"),
        (one(subscribers=[email("ops")]), r"^notifications\[0\]\.subscribers\[0\]\.address must be an email address"),
        (
            one(subscribers=[{"subscription_type": "SMS", "address": "+6512345678"}]),
            r"^notifications\[0\]\.subscribers\[0\]\.subscription_type must be one of SNS, EMAIL",
        ),
        (one(subscribers=[sns(), sns(TOPIC + "-2")]), r"^notifications\[0\]\.subscribers may have at most 1 SNS subscriber, got 2"),
        (
            one(subscribers=[email(f"u{i}@example.com") for i in range(11)]),
            r"^notifications\[0\]\.subscribers may have at most 10 EMAIL subscribers, got 11",
        ),
        (
            {"notifications": [ACTUAL_80, FORECASTED_100, {**ACTUAL_80, "threshold": 80.0, "threshold_type": "PERCENTAGE"}]},
            r"^notifications\[2\] repeats notifications\[0\]",
        ),
        ({"notifications": [{**ACTUAL_80, "threshold": t} for t in range(1, 12)]}, "^notifications may have at most 10 entries, got 11"),
    ],
)
def test_bad_input_is_refused_naming_the_field_before_any_call(recorder, args, message):
    args = {"name": "unit-valid", "limit_amount": 100, **args}
    name, account_id = args.pop("name"), args.pop("account_id", ACCOUNT)
    with pytest.raises(BudgetsError, match=message):
        budgets.ensure_budget(recorder.client, account_id, name, check_mode=True, **args)
    with pytest.raises(BudgetsError, match=message):
        budgets.validate_budget_params(name, account_id=account_id, **args)
    assert recorder.calls == []


def test_absent_checks_name_and_account_before_any_call(recorder):
    with pytest.raises(BudgetsError, match="^name must be a budget name"):
        budgets.ensure_budget_absent(recorder.client, ACCOUNT, "a:b")
    with pytest.raises(BudgetsError, match="^account_id must be a 12-digit AWS account ID"):
        budgets.ensure_budget_absent(recorder.client, "0123", "fine")
    assert recorder.calls == []


@pytest.mark.parametrize(("given", "sent"), [(100, "100"), ("100.00", "100.00"), (99.9, "99.9"), ("1E+3", "1000"), (" 12 ", "12")])
def test_amounts_are_sent_as_plain_decimal_strings(given, sent):
    assert budgets.normalise_amount(given) == sent


def test_notifications_are_normalised_with_the_api_defaults_and_sorted():
    given = [
        {**FORECASTED_100, "subscribers": [*FORECASTED_100["subscribers"], email("ops@example.com")]},
        {"threshold": "80", "subscribers": [email("ops@example.com")], "notification_type": None},
    ]
    assert budgets.normalise_notifications(given) == [
        {
            "NotificationType": "ACTUAL",
            "ComparisonOperator": "GREATER_THAN",
            "Threshold": 80.0,
            "ThresholdType": "PERCENTAGE",
            "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "ops@example.com"}],
        },
        {
            "NotificationType": "FORECASTED",
            "ComparisonOperator": "GREATER_THAN",
            "Threshold": 100.0,
            "ThresholdType": "PERCENTAGE",
            # Sorted, the repeated address once.
            "Subscribers": [
                {"SubscriptionType": "EMAIL", "Address": "finance@example.com"},
                {"SubscriptionType": "EMAIL", "Address": "ops@example.com"},
                {"SubscriptionType": "SNS", "Address": TOPIC},
            ],
        },
    ]
    assert budgets.normalise_cost_filters({"Region": ["b", "a", "b"]}) == {"Region": ["a", "b"]}


# -- against the server -----------------------------------------------------------------------------------
def test_check_apply_idempotent_update_absent(recorder, client, raw, name):
    args = {"limit_amount": 100, "cost_filters": {"Service": [EC2]}, "notifications": [FORECASTED_100, ACTUAL_80]}

    changed, planned = ensure(client, name, check_mode=True, **args)
    assert changed is True
    assert planned["BudgetLimit"] == {"Amount": "100", "Unit": "USD"} and planned["TimeUnit"] == "MONTHLY"
    assert planned["BudgetType"] == "COST" and planned["CostFilters"] == {"Service": [EC2]}
    assert [n["NotificationType"] for n in planned["Notifications"]] == ["ACTUAL", "FORECASTED"]
    assert recorder.mutating_calls() == []
    assert server_budget(raw, name) is None

    changed, state = ensure(client, name, **args)
    assert changed is True
    assert recorder.mutating_calls() == ["CreateBudget"]
    server = server_budget(raw, name)
    assert server["BudgetLimit"] == {"Amount": "100", "Unit": "USD"} and server["CostFilters"] == {"Service": [EC2]}
    assert server_notifications(raw, name) == expected(ACTUAL_80, FORECASTED_100)
    assert state["BudgetLimit"] == server["BudgetLimit"] and state["TimePeriod"] == server["TimePeriod"]
    assert subscribers_of(state) == subscribers_of(planned)

    # Same budget, said differently: the amount as the string AWS would store, filters and
    # subscribers in another order.
    same = {**args, "limit_amount": "100.0", "notifications": [ACTUAL_80, {**FORECASTED_100, "subscribers": FORECASTED_100["subscribers"][::-1]}]}
    for check_mode in (True, False):
        recorder.calls.clear()
        changed, again = ensure(client, name, check_mode=check_mode, **same)
        assert changed is False
        assert recorder.mutating_calls() == []
        assert again == budgets.get_budget(client, ACCOUNT, name)
    assert subscribers_of(again) == subscribers_of(planned)

    recorder.calls.clear()
    changed, planned_update = ensure(client, name, check_mode=True, **{**args, "limit_amount": 150.5})
    assert changed is True and planned_update["BudgetLimit"] == {"Amount": "150.5", "Unit": "USD"}
    assert recorder.mutating_calls() == []
    assert server_budget(raw, name)["BudgetLimit"]["Amount"] == "100"

    changed, updated = ensure(client, name, **{**args, "limit_amount": 150.5})
    assert changed is True
    assert recorder.mutating_calls() == ["UpdateBudget"]
    server = server_budget(raw, name)
    assert server["BudgetLimit"] == {"Amount": "150.5", "Unit": "USD"} and updated["BudgetLimit"] == server["BudgetLimit"]
    assert server["CostFilters"] == {"Service": [EC2]} and server["TimeUnit"] == "MONTHLY"
    assert server_notifications(raw, name) == expected(ACTUAL_80, FORECASTED_100)
    changed, _ = ensure(client, name, **{**args, "limit_amount": "150.50"})
    assert changed is False

    recorder.calls.clear()
    assert budgets.ensure_budget_absent(client, ACCOUNT, name, check_mode=True) == (True, None)
    assert recorder.mutating_calls() == []
    assert server_budget(raw, name) is not None
    assert budgets.ensure_budget_absent(client, ACCOUNT, name) == (True, None)
    assert server_budget(raw, name) is None
    recorder.calls.clear()
    assert budgets.ensure_budget_absent(client, ACCOUNT, name) == (False, None)
    assert recorder.mutating_calls() == []


def test_notifications_are_added_purged_or_kept(recorder, client, raw, name):
    ensure(client, name, notifications=[ACTUAL_80])
    assert server_notifications(raw, name) == expected(ACTUAL_80)

    recorder.calls.clear()
    changed, planned = ensure(client, name, notifications=[FORECASTED_100], check_mode=True)
    assert changed is True and [n["NotificationType"] for n in planned["Notifications"]] == ["FORECASTED"]
    assert recorder.mutating_calls() == []
    assert server_notifications(raw, name) == expected(ACTUAL_80)

    # Not listed, so deleted; the budget itself is not touched.
    changed, state = ensure(client, name, notifications=[FORECASTED_100])
    assert changed is True
    assert recorder.mutating_calls() == ["DeleteNotification", "CreateNotification"]
    assert server_notifications(raw, name) == expected(FORECASTED_100)
    assert [n["NotificationType"] for n in state["Notifications"]] == ["FORECASTED"]

    # purge_notifications=false only adds; notifications=None leaves them all alone.
    changed, state = ensure(client, name, notifications=[ACTUAL_80], purge_notifications=False)
    assert changed is True
    assert server_notifications(raw, name) == expected(ACTUAL_80, FORECASTED_100)
    assert len(state["Notifications"]) == 2
    changed, _ = ensure(client, name, notifications=[ACTUAL_80], purge_notifications=False)
    assert changed is False
    changed, _ = ensure(client, name)
    assert changed is False

    # A new threshold is another notification.
    changed, _ = ensure(client, name, notifications=[{**ACTUAL_80, "threshold": 90}, FORECASTED_100])
    assert changed is True
    assert server_notifications(raw, name) == expected({**ACTUAL_80, "threshold": 90}, FORECASTED_100)

    recorder.calls.clear()
    changed, state = ensure(client, name, notifications=[])
    assert changed is True and state["Notifications"] == []
    assert recorder.mutating_calls() == ["DeleteNotification", "DeleteNotification"]
    assert server_notifications(raw, name) == {}


def test_cost_filters_and_time_unit_are_updated(client, raw, name):
    ensure(client, name, cost_filters={"Service": [EC2], "Region": ["ap-southeast-1"]})

    changed, _ = ensure(client, name, cost_filters={"Region": ["ap-southeast-1", "ap-southeast-1"], "Service": [EC2]})
    assert changed is False
    # None leaves the filters as they are.
    changed, _ = ensure(client, name)
    assert changed is False

    changed, state = ensure(client, name, cost_filters={"Region": ["us-east-1", "ap-southeast-1"]}, time_unit="QUARTERLY")
    assert changed is True
    server = server_budget(raw, name)
    assert server["CostFilters"] == {"Region": ["ap-southeast-1", "us-east-1"]} and server["TimeUnit"] == "QUARTERLY"
    assert state["TimeUnit"] == "QUARTERLY"

    changed, state = ensure(client, name, cost_filters={}, time_unit="QUARTERLY")
    assert changed is True
    assert not server_budget(raw, name).get("CostFilters") and not state.get("CostFilters")
    changed, _ = ensure(client, name, cost_filters={}, time_unit="QUARTERLY")
    assert changed is False


def test_subscribers_are_changed_in_place(recorder, client, raw, name):
    ensure(client, name, notifications=[FORECASTED_100])
    moved = {**FORECASTED_100, "subscribers": [email("ops@example.com"), email("cto@example.com")]}
    recorder.calls.clear()

    changed, planned = ensure(client, name, notifications=[moved], check_mode=True)
    assert changed is True
    assert recorder.mutating_calls() == []
    assert server_notifications(raw, name) == expected(FORECASTED_100)

    changed, state = ensure(client, name, notifications=[moved])
    assert changed is True and state == planned
    # The notification stays (and with it its alert state): only subscribers are added and removed.
    assert sorted(recorder.mutating_calls()) == ["CreateSubscriber", "DeleteSubscriber", "DeleteSubscriber"]
    assert server_notifications(raw, name) == expected(moved)
    changed, again = ensure(client, name, notifications=[moved])
    assert changed is False and subscribers_of(again) == subscribers_of(state)


def test_a_budget_update_keeps_the_notifications_it_does_not_list(recorder, client, raw, name):
    # A notification made elsewhere, which the task does not list.
    raw.create_budget(
        AccountId=ACCOUNT,
        Budget={"BudgetName": name, "BudgetLimit": {"Amount": "100", "Unit": "USD"}, "TimeUnit": "MONTHLY", "BudgetType": "COST"},
        NotificationsWithSubscribers=[
            {
                "Notification": {
                    "NotificationType": "ACTUAL",
                    "ComparisonOperator": "GREATER_THAN",
                    "Threshold": 50.0,
                    "ThresholdType": "PERCENTAGE",
                },
                "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "elsewhere@example.com"}],
            }
        ],
    )
    before = server_notifications(raw, name)
    recorder.calls.clear()
    changed, state = ensure(client, name, limit_amount=200)
    assert changed is True and recorder.mutating_calls() == ["UpdateBudget"]
    assert server_budget(raw, name)["BudgetLimit"]["Amount"] == "200"
    assert server_notifications(raw, name) == before
    assert subscribers_of(state) == [[{"SubscriptionType": "EMAIL", "Address": "elsewhere@example.com"}]]

    recorder.calls.clear()
    changed, state = ensure(client, name, limit_amount=300, notifications=[ACTUAL_80], purge_notifications=False)
    assert changed is True and recorder.mutating_calls() == ["UpdateBudget", "CreateNotification"]
    assert server_notifications(raw, name) == {**before, **expected(ACTUAL_80)}
    assert state == budgets.get_budget(client, ACCOUNT, name)


def test_replacing_the_only_sns_topic_replaces_the_notification(recorder, client, raw, name):
    alert = {"threshold": 80, "subscribers": [sns()]}
    ensure(client, name, notifications=[alert])
    moved = {**alert, "subscribers": [sns(TOPIC + "-2")]}
    recorder.calls.clear()
    changed, state = ensure(client, name, notifications=[moved])
    # One topic per notification, and a notification goes with its last subscriber: no order of
    # CreateSubscriber and DeleteSubscriber gets there.
    assert changed is True and recorder.mutating_calls() == ["DeleteNotification", "CreateNotification"]
    assert server_notifications(raw, name) == expected(moved)
    assert subscribers_of(state) == [[{"SubscriptionType": "SNS", "Address": TOPIC + "-2"}]]
    changed, _ = ensure(client, name, notifications=[moved])
    assert changed is False


def test_a_full_notification_swaps_its_subscribers_in_place(recorder, client, raw, name):
    full = {"threshold": 80, "subscribers": [sns(), *(email(f"old{i}@example.com") for i in range(10))]}
    ensure(client, name, notifications=[full])
    swapped = {"threshold": 80, "subscribers": [sns(TOPIC + "-2"), *(email(f"new{i}@example.com") for i in range(10))]}
    recorder.calls.clear()
    changed, _ = ensure(client, name, notifications=[swapped])
    assert changed is True
    assert sorted(set(recorder.mutating_calls())) == ["CreateSubscriber", "DeleteSubscriber"]
    assert server_notifications(raw, name) == expected(swapped)


def _walk(have, steps):
    """Apply the steps as Budgets would, failing where Budgets would refuse or lose the notification."""
    current = {(s["SubscriptionType"], s["Address"]) for s in have}
    for action, subscriber in steps:
        key = (subscriber["SubscriptionType"], subscriber["Address"])
        if action == "create":
            assert key not in current
            current.add(key)
            assert sum(kind == key[0] for kind, _ in current) <= budgets.SUBSCRIBER_LIMITS[key[0]], steps
        else:
            assert key in current and len(current) > 1, steps
            current.remove(key)
    return current


def subscribers(*addresses):
    return [
        {"SubscriptionType": "SNS" if address.startswith("arn:") else "EMAIL", "Address": address} for address in addresses
    ]


@pytest.mark.parametrize(
    ("have", "want"),
    [
        (subscribers("a@x.io"), subscribers("b@x.io")),
        (subscribers("a@x.io", "b@x.io"), subscribers("b@x.io", "c@x.io")),
        (subscribers(TOPIC, "a@x.io"), subscribers(TOPIC + "-2", "a@x.io")),
        (subscribers(TOPIC, "a@x.io"), subscribers(TOPIC + "-2")),
        (subscribers(TOPIC), subscribers(TOPIC + "-2", "a@x.io")),
        (subscribers(*(f"o{i}@x.io" for i in range(10))), subscribers(*(f"n{i}@x.io" for i in range(10)))),
        (subscribers(TOPIC, *(f"o{i}@x.io" for i in range(10))), subscribers(TOPIC + "-2", *(f"n{i}@x.io" for i in range(10)))),
        (subscribers("a@x.io"), subscribers("a@x.io")),
    ],
)
def test_resubscribe_steps_never_empty_a_notification_or_pass_a_limit(have, want):
    steps = budgets.resubscribe_steps(have, want)
    assert _walk(have, steps) == {(s["SubscriptionType"], s["Address"]) for s in want}


def test_resubscribe_steps_cannot_swap_a_lone_topic():
    assert budgets.resubscribe_steps(subscribers(TOPIC), subscribers(TOPIC + "-2")) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"BudgetType": "USAGE"}, "is a USAGE budget; this module manages COST budgets only"),
        (
            {"PlannedBudgetLimits": {"1793491200": {"Amount": "100", "Unit": "USD"}, "1796169600": {"Amount": "120", "Unit": "USD"}}},
            r"has planned limits \(PlannedBudgetLimits\)",
        ),
        (
            {"AutoAdjustData": {"AutoAdjustType": "HISTORICAL", "HistoricalOptions": {"BudgetAdjustmentPeriod": 3}}},
            r"has an auto-adjusting limit \(AutoAdjustData\)",
        ),
        (
            {"FilterExpression": {"Dimensions": {"Key": "SERVICE", "Values": [EC2]}}},
            "is filtered with a FilterExpression; cost_filters cannot be combined",
        ),
    ],
)
def test_budgets_this_module_cannot_manage_are_refused(recorder, client, raw, name, extra, message):
    budget = {"BudgetName": name, "BudgetLimit": {"Amount": "100", "Unit": "USD"}, "TimeUnit": "MONTHLY", "BudgetType": "COST", **extra}
    raw.create_budget(AccountId=ACCOUNT, Budget=budget)
    recorder.calls.clear()
    with pytest.raises(BudgetsError, match=f"^Budget '{name}' {message}"):
        ensure(client, name, limit_amount=200, cost_filters={"Service": [EC2]})
    assert recorder.mutating_calls() == []
    # Whatever its kind, it can be deleted.
    assert budgets.ensure_budget_absent(client, ACCOUNT, name) == (True, None)


def test_api_errors_carry_the_botocore_error(recorder, client, raw, name):
    ensure(client, name)
    # The budget goes away between the read and the write.
    current = budgets.get_budget(client, ACCOUNT, name)
    raw.delete_budget(AccountId=ACCOUNT, BudgetName=name)
    recorder.calls.clear()
    with pytest.raises(BudgetsError, match="^Failed to create budget notification") as caught:
        ensure(client, name, notifications=[ACTUAL_80], current=current)
    assert isinstance(caught.value.exception, ClientError)
    assert caught.value.exception.response["Error"]["Code"] == "NotFoundException"

    # An UpdateBudget error is reported as such: the budget is never deleted and made again.
    with pytest.raises(BudgetsError, match="^Failed to update budget") as caught:
        ensure(client, name, limit_amount=200, current=current)
    assert caught.value.exception.response["Error"]["Code"] == "NotFoundException"
    assert "DeleteBudget" not in recorder.calls and "CreateBudget" not in recorder.calls


def test_account_id_comes_from_sts(aws_recorder):
    sts = aws_recorder("sts")
    assert budgets.get_account_id(sts.client) == ACCOUNT
    assert sts.calls == ["GetCallerIdentity"]


def test_missing_budget_reads_as_none(client):
    assert budgets.get_budget(client, ACCOUNT, "unit-no-such-budget") is None


# -- results ---------------------------------------------------------------------------------------------
def test_results_are_snake_cased_but_cost_filter_dimensions_are_not():
    state = {
        "BudgetName": "b",
        "BudgetLimit": {"Amount": "1", "Unit": "USD"},
        "CostFilters": {"LinkedAccount": ["123456789012"], "TagKeyValue": ["user:Team$platform"]},
        "Notifications": [
            {"NotificationType": "ACTUAL", "Threshold": 80.0, "Subscribers": [{"SubscriptionType": "EMAIL", "Address": "a@example.com"}]}
        ],
    }
    result = budgets.module_result(True, ACCOUNT, None, state)
    assert result == {
        "changed": True,
        "account_id": ACCOUNT,
        "budget": {
            "budget_name": "b",
            "budget_limit": {"amount": "1", "unit": "USD"},
            "cost_filters": {"LinkedAccount": ["123456789012"], "TagKeyValue": ["user:Team$platform"]},
            "notifications": [
                {"notification_type": "ACTUAL", "threshold": 80.0, "subscribers": [{"subscription_type": "EMAIL", "address": "a@example.com"}]}
            ],
        },
        "diff": {"before": {}, "after": result["budget"]},
    }
    assert budgets.module_result(True, ACCOUNT, state, None)["budget"] == {}


def test_module_documentation_matches_the_module():
    tree = ast.parse(MODULE_PATH.read_text())
    blocks = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
    }
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation["module"] == MODULE
    assert documentation["author"] == ["Karpenter HPA EKS contributors (!UNKNOWN)"]
    assert "amazon.aws.boto3" in documentation["extends_documentation_fragment"]
    assert set(documentation["options"]) == {
        "name", "state", "account_id", "limit_amount", "limit_unit", "time_unit", "cost_filters", "notifications", "purge_notifications",
    }
    notification_options = documentation["options"]["notifications"]["suboptions"]
    assert set(notification_options) == {"notification_type", "comparison_operator", "threshold", "threshold_type", "subscribers"}
    assert set(notification_options["subscribers"]["suboptions"]) == {"subscription_type", "address"}
    assert isinstance(yaml.safe_load(blocks["EXAMPLES"]), list)
    assert set(yaml.safe_load(blocks["RETURN"])) == {"account_id", "budget", "diff"}


# -- end to end through ansible-playbook, against the lab's AWS server ----------------------------------------
def test_aws_budget_module(run_module, raw, name):
    """--check, apply, --check again, apply again, then an update and a removal, each previewed by --check."""
    args = {
        "name": name,
        "limit_amount": 100,
        "cost_filters": {"Service": [EC2]},
        "notifications": [ACTUAL_80, FORECASTED_100],
    }

    result = run_module(MODULE, args, check=True, diff=True)
    assert result["changed"] is True, result
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["budget_limit"] == {"amount": "100", "unit": "USD"}
    assert result["diff"]["after"]["cost_filters"] == {"Service": [EC2]}
    assert [n["threshold"] for n in result["diff"]["after"]["notifications"]] == [80.0, 100.0]
    assert result["account_id"] == ACCOUNT
    assert server_budget(raw, name) is None

    result = run_module(MODULE, args)
    assert result["changed"] is True, result
    assert not result.get("warnings") and not result.get("deprecations"), result
    created = server_budget(raw, name)
    assert created["BudgetLimit"] == {"Amount": "100", "Unit": "USD"}
    assert server_notifications(raw, name) == expected(ACTUAL_80, FORECASTED_100)
    assert result["budget"]["budget_name"] == name and result["budget"]["time_unit"] == "MONTHLY"

    for check in (True, False):
        result = run_module(MODULE, args, check=check)
        assert result["changed"] is False, result
        assert result["diff"]["before"] == result["diff"]["after"]
        assert server_budget(raw, name) == created

    raised = {**args, "limit_amount": "250.75"}
    result = run_module(MODULE, raised, check=True, diff=True)
    assert result["changed"] is True, result
    assert result["diff"]["before"]["budget_limit"]["amount"] == "100"
    assert result["diff"]["after"]["budget_limit"]["amount"] == "250.75"
    assert server_budget(raw, name) == created
    result = run_module(MODULE, raised)
    assert result["changed"] is True, result
    assert server_budget(raw, name)["BudgetLimit"] == {"Amount": "250.75", "Unit": "USD"}
    assert server_notifications(raw, name) == expected(ACTUAL_80, FORECASTED_100)
    result = run_module(MODULE, raised)
    assert result["changed"] is False, result

    absent = {"name": name, "state": "absent", "account_id": ACCOUNT}
    result = run_module(MODULE, absent, check=True)
    assert result["changed"] is True, result
    assert server_budget(raw, name) is not None
    result = run_module(MODULE, absent)
    assert result["changed"] is True and result["budget"] == {}, result
    assert server_budget(raw, name) is None
    result = run_module(MODULE, absent)
    assert result["changed"] is False, result


def test_aws_budget_module_refuses_bad_input(run_module, raw, name):
    bad_threshold = {"name": name, "limit_amount": 100, "notifications": [{**ACTUAL_80, "threshold": 0}]}
    result = run_module(MODULE, bad_threshold)
    assert result["failed"] is True
    assert result["msg"].startswith("notifications[0].threshold must be > 0"), result["msg"]

    result = run_module(MODULE, {"name": name})
    assert result["failed"] is True and "limit_amount" in result["msg"]

    result = run_module(MODULE, {"name": name, "limit_amount": 10, "account_id": "42"})
    assert result["failed"] is True and result["msg"].startswith("account_id must be a 12-digit AWS account ID")
    assert server_budget(raw, name) is None

    raw.create_budget(
        AccountId=ACCOUNT,
        Budget={"BudgetName": name, "BudgetLimit": {"Amount": "5", "Unit": "GB"}, "TimeUnit": "MONTHLY", "BudgetType": "USAGE"},
    )
    result = run_module(MODULE, {"name": name, "limit_amount": 10})
    assert result["failed"] is True
    assert result["msg"] == f"Budget '{name}' is a USAGE budget; this module manages COST budgets only"
