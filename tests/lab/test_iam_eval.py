"""lab/iam_eval.py: the client of the real IAM policy evaluator (lab/iam/evaluate.mjs, iam-simulate).

Every test talks to a real Node process. The known cases (lab/iam/known_cases.json) carry the outcome
AWS documents for each; the evaluator has to reach it.
"""
import json
import os
import shutil
import signal
import threading
import time

import pytest

from lab.iam_eval import IAM_DIR, IamEvalError, IamEvaluator, IamEvaluatorUnavailable

KNOWN = json.loads((IAM_DIR / "known_cases.json").read_text())
ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/KarpenterControllerRole-c1"
SUBNET = f"arn:aws:ec2:ap-southeast-1:{ACCOUNT}:subnet/subnet-1"


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


RUN_ON_SUBNETS = policy({"Sid": "Subnets", "Effect": "Allow", "Action": "ec2:RunInstances",
                         "Resource": "arn:aws:ec2:ap-southeast-1:*:subnet/*"})


@pytest.fixture(scope="module")
def evaluator():
    with IamEvaluator() as shared:
        yield shared


@pytest.mark.parametrize("case", KNOWN["cases"], ids=[c["name"] for c in KNOWN["cases"]])
def test_known_case(evaluator, case):
    decision = evaluator.evaluate(principal=KNOWN["principal"], action=case["action"], resource=case["resource"],
                                  context=case["context"], identity_policies=case["identity_policies"],
                                  permission_boundaries=case.get("permission_boundaries"))
    assert decision.allowed == (case["expect"] == "allow"), f"{case['why']}: {decision.explain()}"
    assert decision.ignored_context_keys == []


def test_empty_account_segment_is_explained(evaluator):
    bad = policy({"Sid": "Old", "Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "arn:aws:ec2:ap-southeast-1::subnet/*"})
    decision = evaluator.evaluate(principal=ROLE, action="ec2:RunInstances", resource=SUBNET, identity_policies=[bad])
    assert decision.decision == "ImplicitlyDenied"
    assert decision.near_misses == [{"policy_type": "identity", "policy": "identity0", "sid": "Old",
                                     "why": ["resource does not match (Account does not match)"]}]


def test_allowed_names_the_statement(evaluator):
    decision = evaluator.evaluate(principal=ROLE, action="ec2:RunInstances", resource=SUBNET,
                                  identity_policies=[{"name": "controller", "policy": RUN_ON_SUBNETS}])
    assert decision.allowed and decision.decision == "Allowed"
    assert decision.matched == [{"policy_type": "identity", "policy": "controller", "sid": "Subnets", "index": 1}]
    assert decision.resource_type == "subnet"


def test_explicit_deny_names_the_statement(evaluator):
    deny = policy({"Sid": "NoRun", "Effect": "Deny", "Action": "ec2:*", "Resource": "*"})
    decision = evaluator.evaluate(principal=ROLE, action="ec2:RunInstances", resource=SUBNET,
                                  identity_policies=[RUN_ON_SUBNETS, deny])
    assert decision.decision == "ExplicitlyDenied"
    assert [d["sid"] for d in decision.denied_by if d["denial_type"] == "Explicit"] == ["NoRun"]


def test_keys_that_do_not_apply_are_reported(evaluator):
    # iam:PassedToService belongs to iam:PassRole, not to ec2:RunInstances: AWS never sends it there.
    decision = evaluator.evaluate(principal=ROLE, action="ec2:RunInstances", resource=SUBNET,
                                  identity_policies=[RUN_ON_SUBNETS], context={"iam:PassedToService": "ec2.amazonaws.com"})
    assert decision.ignored_context_keys == ["iam:PassedToService"]


@pytest.mark.parametrize("kwargs, message", [
    ({"action": "ec2:NoSuchAction"}, "simulation refused"),
    ({"action": "RunInstances"}, "is not service:Action"),
    ({"principal": ""}, "principal must be a non-empty string"),
    ({"context": {"aws:TagKeys": [1]}}, "must be a string or a list of strings"),
    ({"identity_policies": [policy({"Effect": "Allw", "Action": "ec2:*", "Resource": "*"})]}, "simulation refused"),
])
def test_bad_request_is_an_error_and_the_server_goes_on(evaluator, kwargs, message):
    request = {"principal": ROLE, "action": "ec2:RunInstances", "resource": SUBNET, "identity_policies": [RUN_ON_SUBNETS], **kwargs}
    pid = evaluator.pid
    with pytest.raises(IamEvalError, match=message) as raised:
        evaluator.evaluate(**request)
    assert not isinstance(raised.value, IamEvaluatorUnavailable)
    assert evaluator.evaluate(principal=ROLE, action="ec2:RunInstances", resource=SUBNET, identity_policies=[RUN_ON_SUBNETS]).allowed
    assert pid is None or evaluator.pid == pid


def test_invalid_policy_details_come_back(evaluator):
    with pytest.raises(IamEvalError) as raised:
        evaluator.evaluate(principal=ROLE, action="ec2:RunInstances", resource=SUBNET,
                           identity_policies=[policy({"Effect": "Allw", "Action": "ec2:*", "Resource": "*"})])
    assert "Effect" in json.dumps(raised.value.details)


def test_context_keys_mode_is_checked(evaluator):
    with pytest.raises(IamEvalError, match="context_keys must be one of"):
        evaluator.evaluate(principal=ROLE, action="ec2:RunInstances", resource=SUBNET, context_keys="loose")


def test_starts_lazily_and_restarts_a_killed_process():
    with IamEvaluator() as client:
        assert client.pid is None
        assert client.ping()["iam-simulate"] == json.loads((IAM_DIR / "package.json").read_text())["dependencies"]["@cloud-copilot/iam-simulate"]
        first = client.pid
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while client.pid is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        decision = client.evaluate(principal=ROLE, action="ec2:RunInstances", resource=SUBNET, identity_policies=[RUN_ON_SUBNETS])
        assert decision.allowed
        assert client.pid not in (None, first)
    assert client.pid is None


def test_a_process_that_keeps_dying_is_unavailable(tmp_path):
    # An evaluator directory whose script exits at once: the client retries once, then says so.
    shutil.copytree(IAM_DIR / "node_modules", tmp_path / "node_modules", symlinks=True)
    (tmp_path / "evaluate.mjs").write_text("console.error('broken on purpose'); process.exit(3)\n")
    with IamEvaluator(directory=tmp_path) as client:
        with pytest.raises(IamEvaluatorUnavailable, match="exited twice without answering: broken on purpose"):
            client.ping()


def test_threads_share_one_process(evaluator):
    errors, results = [], []
    subnets = [f"arn:aws:ec2:ap-southeast-1:{ACCOUNT}:subnet/subnet-{i}" for i in range(40)]

    def work(resource, expected):
        try:
            identity = [RUN_ON_SUBNETS] if expected else []
            results.append(evaluator.evaluate(principal=ROLE, action="ec2:RunInstances", resource=resource,
                                              identity_policies=identity).allowed == expected)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r, i % 2 == 0)) for i, r in enumerate(subnets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [True] * len(subnets)


def test_missing_node_says_what_to_do():
    with pytest.raises(IamEvaluatorUnavailable, match=r"node \(Node.js >= 20\) not found at /nonexistent/node.*make venv"):
        IamEvaluator(node="/nonexistent/node").ping()


def test_missing_node_modules_says_what_to_do(tmp_path):
    shutil.copy(IAM_DIR / "evaluate.mjs", tmp_path / "evaluate.mjs")
    with pytest.raises(IamEvaluatorUnavailable, match=r"node_modules is missing: run `make venv`"):
        IamEvaluator(directory=tmp_path).ping()
