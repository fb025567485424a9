"""lab/aws_eks_auth.py: EKS Auth's AssumeRoleForPodIdentity on the in-process AWS server, through boto3's
eks-auth client, and the credentials it issues authorized against the role's policy by lab/aws_authz.py."""
import time

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import POD_IDENTITY_TRUST, make_client, service_account_token


@pytest.fixture
def lab(pod_identity):
    return pod_identity


def assume(lab, token):
    return lab["eks_auth"].assume_role_for_pod_identity(clusterName=lab["cluster"], token=token)


def error_of(lab, token, cluster=None):
    with pytest.raises(ClientError) as raised:
        lab["eks_auth"].assume_role_for_pod_identity(clusterName=cluster or lab["cluster"], token=token)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def test_the_associated_service_accounts_token_gets_the_roles_credentials(lab, aws_endpoint):
    role_arn, association = lab["bind"]()
    pod = {"kubernetes.io": {"namespace": "karpenter", "pod": {"name": "karpenter-5d9c7-x2x4z", "uid": "0f3e"}}}
    answer = assume(lab, lab["token"](**pod))
    assert answer["subject"] == {"namespace": "karpenter", "serviceAccount": "karpenter"}
    assert answer["audience"] == "pods.eks.amazonaws.com"
    assert answer["podIdentityAssociation"] == {"associationArn": association["associationArn"], "associationId": association["associationId"]}
    role_name = role_arn.rsplit("/", 1)[1]
    assert answer["assumedRoleUser"]["arn"].startswith(f"arn:aws:sts::123456789012:assumed-role/{role_name}/eks-{lab['cluster']}-")
    credentials = answer["credentials"]
    assert credentials["expiration"].timestamp() > time.time() + 600
    # The keys are a session of the role for every other service.
    sts = make_client(aws_endpoint, "sts", aws_access_key_id=credentials["accessKeyId"],
                      aws_secret_access_key=credentials["secretAccessKey"], aws_session_token=credentials["sessionToken"])
    assert sts.get_caller_identity()["Arn"] == answer["assumedRoleUser"]["arn"]


def test_a_token_for_another_audience_is_invalid(lab):
    lab["bind"]()
    assert error_of(lab, lab["token"](aud=["sts.amazonaws.com"]))[0] == "InvalidTokenException"


def test_a_token_signed_by_another_key_or_no_jwt_is_invalid(lab):
    lab["bind"]()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = service_account_token(other, lab["issuer"], aud=["pods.eks.amazonaws.com"])
    assert error_of(lab, forged)[0] == "InvalidTokenException"
    assert error_of(lab, "not.a.jwt")[0] == "InvalidTokenException"


def test_an_expired_token_is_refused(lab):
    lab["bind"]()
    assert error_of(lab, lab["token"](exp=int(time.time()) - 1))[0] == "ExpiredTokenException"


def test_a_service_account_without_an_association_or_an_unknown_cluster_is_not_found(lab):
    lab["bind"]()
    code, message = error_of(lab, lab["token"](sub="system:serviceaccount:default:intruder"))
    assert code == "ResourceNotFoundException" and "default" in message and "intruder" in message
    assert error_of(lab, lab["token"](), cluster="no-such-cluster")[0] == "ResourceNotFoundException"


def test_a_trust_policy_without_tag_session_is_access_denied_and_logged(lab, capsys):
    assume_only = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role_arn, _ = lab["bind"](trust=assume_only)
    code, message = error_of(lab, lab["token"]())
    assert code == "AccessDeniedException" and "sts:TagSession" in message
    assert f"DENIED sts:TagSession on {role_arn} for pods.eks.amazonaws.com" in capsys.readouterr().out


def test_the_session_tags_reach_the_trust_policy(lab):
    def scoped_to(namespace):
        statement = {**POD_IDENTITY_TRUST["Statement"][0],
                     "Condition": {"StringEquals": {"aws:RequestTag/kubernetes-namespace": namespace,
                                                    "aws:RequestTag/eks-cluster-name": lab["cluster"]}}}
        return {"Version": "2012-10-17", "Statement": [statement]}

    _, association = lab["bind"](trust=scoped_to("other-namespace"))
    assert error_of(lab, lab["token"]())[0] == "AccessDeniedException"
    lab["eks"].delete_pod_identity_association(clusterName=lab["cluster"], associationId=association["associationId"])
    lab["bind"](trust=scoped_to("karpenter"))
    assert assume(lab, lab["token"]())["subject"]["serviceAccount"] == "karpenter"


def test_calls_with_the_credentials_are_authorized_against_the_roles_policy(lab, authorized_aws_endpoint, capsys):
    role_arn, _ = lab["bind"]()
    credentials = assume(lab, lab["token"]())["credentials"]
    ec2 = make_client(authorized_aws_endpoint, "ec2", aws_access_key_id=credentials["accessKeyId"],
                      aws_secret_access_key=credentials["secretAccessKey"], aws_session_token=credentials["sessionToken"])
    assert "Subnets" in ec2.describe_subnets()
    with pytest.raises(ClientError) as denied:
        ec2.describe_instances()
    assert denied.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert f"DENIED ec2:DescribeInstances on * for role {role_arn}" in capsys.readouterr().out
