"""Shared by every test folder: the repository and the in-repo collection on sys.path, and the lab's AWS server
(moto + lab/aws_server.py's EKS and Budgets additions), in-process, for the no-lab tests of tests/plugins and tests/lab.

The server runs on a thread of the pytest process, on a port well away from the lab's 36000-36900,
so these tests never touch a running lab. Each test gets its own EKS cluster, so tests share the
server without seeing each other's access entries or associations.
"""
import base64
import json
import logging
import random
import socket
import sys
import threading
import time
import uuid

import boto3
import pytest

# pytest imports this file as tests.conftest, with the repository's root on sys.path (tests/ is a package).
from tests.paths import COLLECTIONS, REPO

# lab (the lab's own code) is imported by tests of every folder.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# The in-repo collection is importable as ansible_collections.eks_autoscaling.core, next to the
# amazon.aws of the venv: ansible_collections is a namespace package spread over both paths.
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

REGION = "ap-southeast-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Ports the lab (lab/ctl/config.py) may use; never probe or bind them.
LAB_PORTS = range(36000, 36901)
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
POD_IDENTITY_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
READ_SUBNETS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeSubnets", "Resource": "*"}]}


def free_port():
    # Probing explicit candidates, not port 0: the kernel's ephemeral range covers the lab's ports.
    for _ in range(50):
        port = random.randrange(40000, 60000)
        if port in LAB_PORTS:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port found between 40000 and 60000")


@pytest.fixture(scope="session")
def aws_endpoint():
    from lab.aws_server import install_extensions

    install_extensions()
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO; test output only needs failures.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def authorized_aws_endpoint():
    """The lab's AWS server as lab-up runs it (--authorize): an assumed role's calls are authorized by the real
    IAM evaluator (lab/aws_authz.py). Shares moto's in-process state with `aws_endpoint`."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from lab import aws_authz, aws_server
    from lab.iam_eval import IamEvaluator

    aws_server.install_extensions()
    evaluator = IamEvaluator()
    app = aws_authz.Authorizer(DomainDispatcherApplication(create_backend_app), evaluator=evaluator)
    httpd = make_server("127.0.0.1", free_port(), app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    evaluator.close()


def make_client(endpoint, service, **credentials):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **(credentials or CREDENTIALS))


# -- service account tokens, signed as the apiserver signs them (RS256, kid), for STS and EKS Auth ------------
def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issuer_jwks(key, issuer, kid="k1"):
    """{issuer: JWKS} with the public half of ``key``, as lab-up registers the apiserver's keys."""
    numbers = key.public_key().public_numbers()

    def as_bytes(n):
        return n.to_bytes((n.bit_length() + 7) // 8, "big")

    return {issuer: {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                               "n": b64url(as_bytes(numbers.n)), "e": b64url(as_bytes(numbers.e))}]}}


def service_account_token(key, issuer, kid="k1", **claims):
    """A JWT signed with ``key``: karpenter/karpenter's, for sts.amazonaws.com, valid 10 minutes, unless ``claims`` say otherwise."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    body = {"iss": issuer, "sub": "system:serviceaccount:karpenter:karpenter", "aud": ["sts.amazonaws.com"],
            "exp": int(time.time()) + 600, **claims}
    signing_input = f"{b64url(json.dumps({'alg': 'RS256', 'kid': kid}).encode())}.{b64url(json.dumps(body).encode())}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()))}"


@pytest.fixture(scope="session")
def aws_account(aws_endpoint):
    """A VPC, a subnet and IAM roles, made once, as lab/seed.py makes the tutorial's account."""
    ec2, iam = make_client(aws_endpoint, "ec2"), make_client(aws_endpoint, "iam")
    vpc_id = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.42.{index}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for index, zone in enumerate(("ap-southeast-1a", "ap-southeast-1b"))
    ]

    def role(name, path="/"):
        return iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]

    return {
        "subnet_ids": subnet_ids,
        "cluster_role": role("unit-cluster-role"),
        "node_role": role("unit-node-role"),
        "operator_role": role("unit-operator-role", path="/platform/"),
        "pod_role": role("unit-pod-role"),
        "other_pod_role": role("unit-other-pod-role"),
    }


@pytest.fixture
def make_cluster(aws_endpoint, aws_account):
    eks = make_client(aws_endpoint, "eks")

    def _make(authentication_mode="API_AND_CONFIG_MAP"):
        name = f"unit-{uuid.uuid4().hex[:10]}"
        eks.create_cluster(
            name=name,
            version="1.33",
            roleArn=aws_account["cluster_role"],
            resourcesVpcConfig={"subnetIds": aws_account["subnet_ids"]},
            accessConfig={"authenticationMode": authentication_mode},
        )
        return name

    return _make


@pytest.fixture
def cluster(make_cluster):
    return make_cluster()


class RecordingClient:
    """A client as our modules get it (retrying wrapper), plus the operations it sent and their
    parameters, so tests can assert that check mode or an idempotent run made no mutating call."""

    READ_ONLY = ("Get", "List", "Describe")

    def __init__(self, endpoint, service):
        from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper

        raw = make_client(endpoint, service)
        self.calls = []
        self.params = []
        raw.meta.events.register(f"provide-client-params.{service}", self._record)
        self.client = RetryingBotoClientWrapper(raw, AWSRetry.jittered_backoff())

    def _record(self, params, model, **_):
        self.calls.append(model.name)
        self.params.append((model.name, dict(params)))

    def mutating_calls(self):
        return [name for name in self.calls if not name.startswith(self.READ_ONLY)]


# Factories, because each test module talks to its own service: a module binds it in one line,
# `recorder = pytest.fixture(lambda aws_recorder: aws_recorder("sqs"))`, and `client` below follows.
@pytest.fixture
def aws_recorder(aws_endpoint):
    """aws_recorder(service) -> a RecordingClient for that service on the in-process server."""

    def _make(service):
        return RecordingClient(aws_endpoint, service)

    return _make


@pytest.fixture
def boto_client(aws_endpoint):
    """boto_client(service) -> a plain boto3 client, to look at the server independently of the code under test."""

    def _make(service):
        return make_client(aws_endpoint, service)

    return _make


@pytest.fixture
def client(recorder):
    """The client the code under test gets; `recorder` is the test module's, so the module picks the service."""
    return recorder.client


@pytest.fixture(scope="session")
def signing_key():
    """The apiserver's service account signing key, as far as these tests are concerned."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def pod_identity(aws_endpoint, signing_key, tmp_path, monkeypatch):
    """A cluster whose issuer's keys the AWS server knows (as lab-up registers them), `bind(trust, policy)` that
    makes a role and associates it with karpenter/karpenter, and `token(**claims)` for pods.eks.amazonaws.com."""
    ec2, eks, iam = (make_client(aws_endpoint, service) for service in ("ec2", "eks", "iam"))
    # Its own cluster, in the region's default VPC: a test module that enters moto's mock_aws resets the
    # in-process backends, so `aws_account`'s subnets are gone for the modules that come after it.
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    cluster = f"unit-{uuid.uuid4().hex[:10]}"
    eks.create_cluster(name=cluster, version="1.33", roleArn="arn:aws:iam::123456789012:role/unit-cluster-role",
                       resourcesVpcConfig={"subnetIds": [s["SubnetId"] for s in subnets[:2]]})
    issuer = eks.describe_cluster(name=cluster)["cluster"]["identity"]["oidc"]["issuer"]
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(issuer_jwks(signing_key, issuer)))
    monkeypatch.setenv("LAB_OIDC_JWKS_FILE", str(jwks_file))

    def bind(trust=POD_IDENTITY_TRUST, policy=READ_SUBNETS):
        name = f"unit-pod-identity-{uuid.uuid4().hex[:8]}"
        role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName="controller", PolicyDocument=json.dumps(policy))
        association = eks.create_pod_identity_association(
            clusterName=cluster, namespace="karpenter", serviceAccount="karpenter", roleArn=role_arn)["association"]
        return role_arn, association

    def token(**claims):
        return service_account_token(signing_key, issuer, **{"aud": ["pods.eks.amazonaws.com"], **claims})

    return {"cluster": cluster, "issuer": issuer, "bind": bind, "token": token, "eks": eks,
            "eks_auth": make_client(aws_endpoint, "eks-auth")}
