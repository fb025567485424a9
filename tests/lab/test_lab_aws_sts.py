"""lab/aws_sts.py checks a web identity token as STS does before moto issues credentials."""
import json
import time

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto import mock_aws

from lab import aws_sts

from tests.conftest import issuer_jwks, service_account_token

ISSUER = "https://oidc.eks.ap-southeast-1.amazonaws.com/id/LAB0123456789"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(key, kid="k1"):
    return issuer_jwks(key, ISSUER, kid)


def token(key, kid="k1", **claims):
    return service_account_token(key, ISSUER, kid, **claims)


@pytest.fixture
def account():
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_open_id_connect_provider(Url=ISSUER, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])
        iam.create_role(RoleName="KarpenterControllerRole-eksworkshop", AssumeRolePolicyDocument="{}")
        yield


ROLE = f"arn:aws:iam::{ACCOUNT}:role/KarpenterControllerRole-eksworkshop"


def check(tok, key, trust=lambda *args: True, **kwargs):
    return aws_sts.check_web_identity(ACCOUNT, ROLE, tok, jwks=jwks(key), trust_allows=trust, **kwargs)


def test_a_signed_token_of_the_provider_passes_its_claims_to_the_trust_policy(account, key):
    seen = []
    claims = check(token(key), key, trust=lambda *args: seen.append(args) or True)
    assert claims["sub"] == "system:serviceaccount:karpenter:karpenter"
    _policy, principal, action, context, role_arn = seen[0]
    assert principal == f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.ap-southeast-1.amazonaws.com/id/LAB0123456789"
    assert action == "sts:AssumeRoleWithWebIdentity" and role_arn == ROLE
    assert context == {"oidc.eks.ap-southeast-1.amazonaws.com/id/LAB0123456789:sub": "system:serviceaccount:karpenter:karpenter",
                       "oidc.eks.ap-southeast-1.amazonaws.com/id/LAB0123456789:aud": "sts.amazonaws.com"}


def test_a_token_signed_by_another_key_is_invalid(account, key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(aws_sts.InvalidIdentityToken, match="could not be validated"):
        check(token(other), key)
    with pytest.raises(aws_sts.InvalidIdentityToken):
        check("not-a-jwt", key)


def test_an_expired_token_is_refused(account, key):
    with pytest.raises(aws_sts.ExpiredTokenException):
        check(token(key, exp=int(time.time()) - 1), key)


def test_another_audience_is_refused(account, key):
    with pytest.raises(aws_sts.InvalidIdentityToken, match="Incorrect token audience"):
        check(token(key, aud=["https://kubernetes.default.svc"]), key)


def test_a_trust_policy_that_says_no_is_access_denied(account, key):
    with pytest.raises(aws_sts.AccessDenied, match="Not authorized to perform sts:AssumeRoleWithWebIdentity"):
        check(token(key), key, trust=lambda *args: False)


def test_an_issuer_without_an_iam_oidc_provider_is_refused(key):
    with mock_aws():
        boto3.client("iam", region_name="us-east-1").create_role(RoleName="KarpenterControllerRole-eksworkshop", AssumeRolePolicyDocument="{}")
        with pytest.raises(aws_sts.InvalidIdentityToken, match="No OpenIDConnect provider found in your account for " + ISSUER):
            check(token(key), key)


def test_the_controller_roles_trust_policy_is_evaluated_by_the_real_evaluator(key):
    provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER.removeprefix('https://')}"
    issuer = ISSUER.removeprefix("https://")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": provider},
             "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringEquals": {f"{issuer}:aud": "sts.amazonaws.com", f"{issuer}:sub": "system:serviceaccount:karpenter:karpenter"}}}]}
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_open_id_connect_provider(Url=ISSUER, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"])
        iam.create_role(RoleName="KarpenterControllerRole-eksworkshop", AssumeRolePolicyDocument=json.dumps(trust))
        assert aws_sts.check_web_identity(ACCOUNT, ROLE, token(key), jwks=jwks(key))["sub"].endswith(":karpenter")
        with pytest.raises(aws_sts.AccessDenied):
            aws_sts.check_web_identity(ACCOUNT, ROLE, token(key, sub="system:serviceaccount:default:intruder"), jwks=jwks(key))
