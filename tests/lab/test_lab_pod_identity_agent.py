"""lab/pod_identity_agent.py, the lab's EKS Pod Identity Agent, in front of the in-process AWS server: the
environment lab/karpenter_pod.py injects takes an AWS SDK's container credentials provider (botocore's here,
the same contract as the controller's Go SDK) through the agent and EKS Auth to the role's credentials, which
the authorizer then holds to the role's policy."""
import json
import urllib.error
import urllib.request

import pytest
from botocore.credentials import ContainerProvider
from botocore.exceptions import ClientError

from lab import karpenter_pod, pod_identity_agent

from tests.conftest import REGION, free_port, make_client


@pytest.fixture
def agent(aws_endpoint, pod_identity):
    server = pod_identity_agent.serve(free_port(), aws_endpoint, REGION, pod_identity["cluster"])
    yield server
    server.shutdown()
    server.server_close()


def get(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_injected_environment_gets_the_roles_credentials_through_the_agent(agent, pod_identity, authorized_aws_endpoint, tmp_path, capsys):
    role_arn, association = pod_identity["bind"]()
    env, audience, _ = karpenter_pod.webhook_env({"metadata": {}}, association, tmp_path, REGION, authorized_aws_endpoint, agent.url)
    # What the kubelet projects: the service account's token for the webhook's audience.
    (tmp_path / karpenter_pod.TOKEN_FILES[audience]).write_text(pod_identity["token"](aud=[audience]))
    credentials = ContainerProvider(environ=env).load().get_frozen_credentials()
    ec2 = make_client(authorized_aws_endpoint, "ec2", aws_access_key_id=credentials.access_key,
                      aws_secret_access_key=credentials.secret_key, aws_session_token=credentials.token)
    assert "Subnets" in ec2.describe_subnets()
    with pytest.raises(ClientError) as denied:
        ec2.describe_instances()
    assert denied.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert f"DENIED ec2:DescribeInstances on * for role {role_arn}" in capsys.readouterr().out


def test_the_agent_answers_in_the_container_credentials_format(agent, pod_identity):
    pod_identity["bind"]()
    status, body = get(agent.url, pod_identity["token"]())
    assert status == 200
    document = json.loads(body)
    assert set(document) == {"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"}
    assert document["AccountId"] == "123456789012" and document["Expiration"].endswith("Z")


def test_no_token_is_a_bad_request_and_eks_auth_errors_keep_their_status(agent, pod_identity):
    pod_identity["bind"]()
    assert get(agent.url)[0] == 400
    status, body = get(agent.url, pod_identity["token"](sub="system:serviceaccount:default:intruder"))
    assert status == 404 and "(ResourceNotFoundException)" in body
    status, body = get(agent.url, pod_identity["token"](aud=["sts.amazonaws.com"]))
    assert status == 400 and "(InvalidTokenException)" in body
    assert get(agent.url.replace("/v1/credentials", "/v2/credentials"), pod_identity["token"]())[0] == 404
