"""lab/aws_persistence.py: the lab's AWS server keeps its account across a restart, as a real account does, and a
new lab does not start on an earlier lab's account.

The server runs as lab-up runs it (`python -m lab.aws_server --authorize --state-file ...`), in a process of its
own, so a restart really loses everything the process held; it is killed with SIGKILL, so what survives was
saved as the changes were made, not on the way out."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from lab import aws_persistence

from tests.conftest import TRUST, free_port, make_client
from tests.paths import REPO

SQS_ONLY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]}
ROOT_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}


class Server:
    def __init__(self, state_file, log_path):
        self.state_file, self.log_path = state_file, log_path
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lab.aws_server", "--port", str(self.port), "--authorize", "--state-file", str(self.state_file)],
                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):  # noqa: S310 - loopback
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the AWS server did not answer within 60 s:\n{self.log()}")

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, service, **credentials):
        return make_client(self.endpoint, service, **credentials)


@pytest.fixture
def server(tmp_path):
    started = Server(tmp_path / "aws-state.pickle", tmp_path / "aws.log")
    yield started.start()
    if started.process.poll() is None:
        started.kill()


def make_account(server):
    """Something of every kind the lab's playbooks make, the lab's own EKS additions included."""
    ec2, iam, eks, sqs, ssm = (server.client(name) for name in ("ec2", "iam", "eks", "sqs", "ssm"))
    vpc_id = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.7.1.0/24", AvailabilityZone="ap-southeast-1a")["Subnet"]["SubnetId"]
    ec2.create_tags(Resources=[subnet_id], Tags=[{"Key": "karpenter.sh/discovery", "Value": "persisted"}])
    cluster_role = iam.create_role(RoleName="persisted-cluster", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    worker_role = iam.create_role(RoleName="persisted-worker", AssumeRolePolicyDocument=json.dumps(ROOT_TRUST))["Role"]["Arn"]
    iam.put_role_policy(RoleName="persisted-worker", PolicyName="sqs-only", PolicyDocument=json.dumps(SQS_ONLY))
    cluster = eks.create_cluster(name="persisted", version="1.33", roleArn=cluster_role,
                                 resourcesVpcConfig={"subnetIds": [subnet_id]},
                                 accessConfig={"authenticationMode": "API"})["cluster"]
    entry = eks.create_access_entry(clusterName="persisted", principalArn=worker_role, type="EC2_LINUX")["accessEntry"]
    association = eks.create_pod_identity_association(clusterName="persisted", namespace="karpenter", serviceAccount="karpenter",
                                                      roleArn=worker_role)["association"]
    queue_url = sqs.create_queue(QueueName="persisted-queue")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="kept")
    # SSM, as Karpenter reads its AMI parameters: its backend holds what pickle cannot save as it is (lambdas).
    ssm.put_parameter(Name="/persisted/ami", Value="ami-0123456789abcdef0", Type="String",
                      Tags=[{"Key": "owner", "Value": "lab"}])
    session = server.client("sts").assume_role(RoleArn=worker_role, RoleSessionName="controller")
    return {"vpc_id": vpc_id, "subnet_id": subnet_id, "worker_role": worker_role, "queue_url": queue_url,
            "security_group": cluster["resourcesVpcConfig"]["clusterSecurityGroupId"], "entry": entry["accessEntryArn"],
            "association": association["associationId"], "session": session}


def session_client(server, service, session):
    credentials = session["Credentials"]
    return server.client(service, aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                         aws_session_token=credentials["SessionToken"])


def test_a_killed_and_restarted_server_still_has_the_account(server):
    made = make_account(server)
    server.kill()  # SIGKILL: nothing is saved on the way out
    server.start()
    ec2, eks, sqs = server.client("ec2"), server.client("eks"), server.client("sqs")
    assert [v["VpcId"] for v in ec2.describe_vpcs(VpcIds=[made["vpc_id"]])["Vpcs"]] == [made["vpc_id"]]
    subnet = ec2.describe_subnets(SubnetIds=[made["subnet_id"]])["Subnets"][0]
    assert {"Key": "karpenter.sh/discovery", "Value": "persisted"} in subnet["Tags"]
    cluster = eks.describe_cluster(name="persisted")["cluster"]
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    # EKS's cluster security group is EC2's, still in the cluster's VPC: the two services' state stayed one.
    assert ec2.describe_security_groups(GroupIds=[made["security_group"]])["SecurityGroups"][0]["VpcId"] == made["vpc_id"]
    entry = eks.describe_access_entry(clusterName="persisted", principalArn=made["worker_role"])["accessEntry"]
    assert entry["accessEntryArn"] == made["entry"] and entry["type"] == "EC2_LINUX"
    association = eks.describe_pod_identity_association(clusterName="persisted", associationId=made["association"])["association"]
    assert association["roleArn"] == made["worker_role"]
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=made["queue_url"]).get("Messages", [])] == ["kept"]
    ssm = server.client("ssm")
    assert ssm.get_parameter(Name="/persisted/ami")["Parameter"]["Value"] == "ami-0123456789abcdef0"
    assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/persisted/ami")["TagList"] == [{"Key": "owner", "Value": "lab"}]
    # The state goes on being saved after a load: a second restart keeps what the first one's server added.
    eks.create_access_entry(clusterName="persisted", principalArn="arn:aws:iam::123456789012:role/later")
    server.kill()
    server.start()
    assert "arn:aws:iam::123456789012:role/later" in server.client("eks").list_access_entries(clusterName="persisted")["accessEntries"]


def test_sessions_issued_before_the_restart_are_still_the_roles_and_still_authorized_as_it(server):
    made = make_account(server)
    server.kill()
    server.start()
    # The keys Karpenter holds are still a session of its role, not unknown keys (which the lab takes for the admin's) ...
    sts = session_client(server, "sts", made["session"])
    assert sts.get_caller_identity()["Arn"] == "arn:aws:sts::123456789012:assumed-role/persisted-worker/controller"
    # ... so the role's policy still applies: what it allows works, what it does not is denied by the IAM evaluator.
    session_client(server, "sqs", made["session"]).get_queue_attributes(QueueUrl=made["queue_url"], AttributeNames=["All"])
    with pytest.raises(ClientError) as denied:
        session_client(server, "ec2", made["session"]).describe_vpcs()
    assert denied.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert "DENIED ec2:DescribeVpcs" in server.log()


def test_a_server_stopped_as_lab_down_stops_it_saves_the_account_and_exits_cleanly(server):
    server.client("iam").create_role(RoleName="saved-on-sigterm", AssumeRolePolicyDocument=json.dumps(TRUST))
    server.process.send_signal(signal.SIGTERM)  # what lab/ctl/processes.py's stop_process sends first
    assert server.process.wait(timeout=10) == 0, server.log()
    server.start()
    assert server.client("iam").get_role(RoleName="saved-on-sigterm")["Role"]["RoleName"] == "saved-on-sigterm"


def test_a_state_file_this_server_cannot_load_stops_it_with_the_reason(tmp_path):
    state_file = tmp_path / "aws-state.pickle"
    state_file.write_bytes(b"not a snapshot")
    result = subprocess.run([sys.executable, "-m", "lab.aws_server", "--port", str(free_port()), "--state-file", str(state_file)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "cannot read the saved AWS state" in result.stderr and "remove it to start an empty account" in result.stderr


@pytest.mark.parametrize(("environ", "body", "saved"), [
    ({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded"}, b"Action=DescribeInstances&Version=2016-11-15", False),
    ({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8"}, b"Action=RunInstances&MaxCount=1", True),
    ({"REQUEST_METHOD": "GET", "QUERY_STRING": "Action=ListRoles"}, b"", False),
    ({"REQUEST_METHOD": "POST", "QUERY_STRING": "Action=CreateRole"}, b"", True),
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, b"{}", False),
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "AmazonSQS.DeleteMessage"}, b"{}", True),
    ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "AmazonSSM.GetParameter"}, b"{}", False),
    ({"REQUEST_METHOD": "GET", "PATH_INFO": "/clusters/eksworkshop"}, b"", False),
    ({"REQUEST_METHOD": "POST", "PATH_INFO": "/clusters/eksworkshop/access-entries"}, b"{}", True),
    ({"REQUEST_METHOD": "DELETE", "PATH_INFO": "/clusters/eksworkshop/pod-identity-associations/a-1"}, b"", True),
])
def test_changes_are_saved_and_reads_are_not(environ, body, saved):
    assert aws_persistence.changes_state(environ, body) is saved


def test_lab_up_starts_a_new_lab_on_a_new_account_and_only_a_restart_keeps_it(tmp_path, monkeypatch):
    from lab.ctl import services

    state_file = tmp_path / "aws-state.pickle"
    monkeypatch.setattr(services, "AWS_STATE_FILE", state_file)
    started = []
    monkeypatch.setattr(services, "start_process", lambda name, argv, env=None: started.append(argv))
    state_file.write_bytes(b"an earlier lab's account")
    services.start_aws_server(keep_state=True)  # lab/faults.py's restart
    assert state_file.exists()
    services.start_aws_server()  # lab-up
    assert not state_file.exists()
    for argv in started:
        assert argv[argv.index("--state-file") + 1] == str(state_file)


def test_lab_down_removes_the_labs_account(tmp_path):
    state = tmp_path / "lab"
    state.mkdir()
    (state / "aws-state.pickle").write_bytes(b"this lab's account")
    # free_port keeps away from the default lab's ports; a lab-down with nothing to stop checks they are all free.
    ports = {f"LAB_{name.upper()}_PORT": str(free_port()) for name in
             ("apiserver", "etcd", "controller_manager", "scheduler", "kwok", "aws", "karpenter_metrics", "karpenter_health",
              "pod_identity_agent")}
    result = subprocess.run([sys.executable, "-m", "lab.labctl", "down"], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **ports, "LAB_STATE_DIR": str(state), "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert not (state / "aws-state.pickle").exists()


def test_keys_moto_keeps_as_cryptography_objects_are_saved_and_still_work_after_a_load():
    """A KMS key (and the default key EC2 makes for an encrypted volume, as Karpenter's launches ask) holds a
    cryptography private key, which pickle cannot take: once one existed, every later save failed and the server
    answered 500 to every change (found by `make test` on a clean clone)."""
    import boto3
    from moto import mock_aws

    from lab import aws_persistence

    with mock_aws():
        kms = boto3.client("kms", region_name="ap-southeast-1")
        key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        boto3.client("ec2", region_name="ap-southeast-1").create_volume(AvailabilityZone="ap-southeast-1a", Size=8, Encrypted=True)
        signature = kms.sign(KeyId=key, Message=b"launch", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
        aws_persistence.loads(aws_persistence.dumps())
        # The key after the load is the key before it: it verifies what it signed.
        assert kms.verify(KeyId=key, Message=b"launch", Signature=signature, SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"]
