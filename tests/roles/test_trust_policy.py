"""The IRSA trust policy roles/iam/tasks/controller_role.yml writes, evaluated as STS would for
AssumeRoleWithWebIdentity (lab.iam_eval.evaluate_trust_policy, iam-simulate underneath).

The document is the task's own ``iam_irsa_trust``, rendered by Ansible's templating from the role's
defaults with the cluster's OIDC provider, as the role renders it.
"""
import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar
from ansible.utils.collection_loader import AnsibleCollectionConfig

from lab.iam_eval import IamEvalError, IamEvaluator, evaluate_trust_policy, oidc_issuer

from .test_controller_policy import ROLE, partition_of, role_defaults, trusted

ACCOUNT = "111122223333"
ISSUER = "oidc.eks.ap-southeast-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
SUB = "system:serviceaccount:karpenter:karpenter"


def task_vars():
    loader = DataLoader()
    tasks = loader.load_from_file(str(ROLE / "tasks" / "controller_role.yml"))
    task = next(t for t in tasks if "iam_irsa_trust" in t.get("vars", {}))
    return loader, trusted({**role_defaults(loader), **task["vars"]})


def render(name, **facts):
    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader()
    loader, variables = task_vars()
    variables.update(inventory_hostname="eksworkshop", eks_cluster_identity={"account": ACCOUNT}, iam_cluster={"oidc_provider": ISSUER}, **facts)
    variables["eks_cluster_partition"] = partition_of(variables["eks_cluster_region"])
    return Templar(loader=loader, variables=variables).template(variables[name])


@pytest.fixture(scope="module")
def evaluator():
    with IamEvaluator() as shared:
        yield shared


@pytest.fixture(scope="module")
def trust():
    return render("iam_irsa_trust")


def test_karpenter_service_account_with_sts_audience_may_assume(evaluator, trust):
    role = f"arn:aws:iam::{ACCOUNT}:role/KarpenterControllerRole-eksworkshop"
    decision = evaluate_trust_policy(trust, role_arn=role, provider_arn=PROVIDER, sub=SUB, aud="sts.amazonaws.com", evaluator=evaluator)
    assert decision.allowed, decision.explain()
    assert decision.matched == [{"policy_type": "resource", "policy": "resource_policy", "index": 1}]


@pytest.mark.parametrize("provider, sub, aud, why", [
    (PROVIDER, "system:serviceaccount:karpenter:default", "sts.amazonaws.com", f"{ISSUER}:sub"),
    (PROVIDER, "system:serviceaccount:kube-system:karpenter", "sts.amazonaws.com", f"{ISSUER}:sub"),
    (PROVIDER, SUB, "https://kubernetes.default.svc", f"{ISSUER}:aud"),
    (f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.ap-southeast-1.amazonaws.com/id/OTHER0000000000000000000000000000",
     SUB, "sts.amazonaws.com", "principal"),
    (f"arn:aws:iam::444455556666:oidc-provider/{ISSUER}", SUB, "sts.amazonaws.com", "principal"),
], ids=["another service account", "another namespace", "another audience", "another issuer", "the issuer in another account"])
def test_other_tokens_may_not_assume(evaluator, trust, provider, sub, aud, why):
    role = f"arn:aws:iam::{ACCOUNT}:role/KarpenterControllerRole-eksworkshop"
    decision = evaluate_trust_policy(trust, role_arn=role, provider_arn=provider, sub=sub, aud=aud, evaluator=evaluator)
    assert not decision.allowed
    assert any(why in reason for miss in decision.near_misses for reason in miss["why"]), decision.explain()


def test_the_role_settings_flow_into_the_trust(evaluator):
    trust = render("iam_irsa_trust", eks_cluster_karpenter_namespace="kube-system", eks_cluster_karpenter_service_account="karpenter-ctl")
    role = f"arn:aws:iam::{ACCOUNT}:role/KarpenterControllerRole-eksworkshop"
    allow = evaluate_trust_policy(trust, role_arn=role, provider_arn=PROVIDER, sub="system:serviceaccount:kube-system:karpenter-ctl",
                                  aud="sts.amazonaws.com", evaluator=evaluator)
    assert allow.allowed, allow.explain()
    assert not evaluate_trust_policy(trust, role_arn=role, provider_arn=PROVIDER, sub=SUB, aud="sts.amazonaws.com", evaluator=evaluator).allowed


def test_pod_identity_trust_admits_the_eks_pod_identity_service_only(evaluator):
    trust = render("iam_pod_identity_trust")
    role = f"arn:aws:iam::{ACCOUNT}:role/KarpenterControllerRole-eksworkshop"
    for action in ("sts:AssumeRole", "sts:TagSession"):
        ok = evaluator.evaluate(principal="pods.eks.amazonaws.com", action=action, resource=role, resource_policy=trust,
                                resource_account=ACCOUNT, context_keys="as_given")
        assert ok.allowed, ok.explain()
    assert not evaluator.evaluate(principal="ec2.amazonaws.com", action="sts:AssumeRole", resource=role, resource_policy=trust,
                                  resource_account=ACCOUNT, context_keys="as_given").allowed
    assert not evaluator.evaluate(principal="pods.eks.amazonaws.com", action="sts:AssumeRoleWithWebIdentity", resource=role,
                                  resource_policy=trust, resource_account=ACCOUNT, context_keys="as_given").allowed


def test_oidc_issuer_of_a_provider_arn():
    assert oidc_issuer(PROVIDER) == ISSUER
    for bad in ("arn:aws:iam::111122223333:role/x", "oidc.eks.amazonaws.com/id/x", "arn:aws:iam::111122223333:oidc-provider/"):
        with pytest.raises(IamEvalError, match="not an OIDC provider ARN"):
            oidc_issuer(bad)
