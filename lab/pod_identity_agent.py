"""The EKS Pod Identity Agent's credentials endpoint, for the controller lab/karpenter_pod.py runs.

Why it is here: on EKS, a pod whose service account has a pod identity association gets from EKS's pod
identity webhook AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials and
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, a projected token of the service account for the audience
pods.eks.amazonaws.com. The SDK's container credentials provider GETs that URI with the token as the
Authorization header, and the EKS Pod Identity Agent, a DaemonSet on every node
(github.com/aws/eks-pod-identity-agent), exchanges the token with EKS Auth AssumeRoleForPodIdentity for the
cluster it was configured with, signed with the node role's credentials. That agent is not on the Go module
proxy this lab builds from, so the lab cannot run it; this module plays its part.

What it does: it listens on 127.0.0.1 (the AWS SDK for Go v2 takes a plain-http credentials URI only for a
loopback host or the container hosts, and 169.254.170.23 is not this machine's), answers GET /v1/credentials
by calling AssumeRoleForPodIdentity at the lab's AWS server (lab/aws_eks_auth.py) with the Authorization
header as the token, signed with the lab's admin keys in place of the node role's, and answers in the
container credentials format: AccessKeyId, SecretAccessKey, Token, AccountId (from the assumed role's ARN)
and Expiration (RFC 3339). As the agent does, it refuses a request without a token (400) and passes on an
EKS Auth error with its HTTP status, as text.

What it does not do: cache credentials per token and renew them ahead of their expiry (the SDK caches them
until shortly before they expire, so each renewal reaches EKS Auth), check that the request was addressed to
the agent's link-local address, limit the rate of EKS Auth calls, listen on IPv6, or serve the agent's health
and metrics ports.
"""
import datetime
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PATH = "/v1/credentials"


def credentials_document(answer):
    """An AssumeRoleForPodIdentity answer (boto3's) in the container credentials format the SDKs read."""
    credentials = answer["credentials"]
    return {
        "AccessKeyId": credentials["accessKeyId"],
        "SecretAccessKey": credentials["secretAccessKey"],
        "Token": credentials["sessionToken"],
        "AccountId": answer["assumedRoleUser"]["arn"].split(":")[4],
        "Expiration": credentials["expiration"].astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "lab-eks-pod-identity-agent"

    def do_GET(self):  # noqa: N802 - the name http.server dispatches to
        if urlsplit(self.path).path != PATH:
            self._answer(404, "text/plain", b"404 page not found\n")
            return
        token = self.headers.get("Authorization", "")
        if not token:
            self._answer(400, "text/plain", b"Service account token cannot be empty\n")
            return
        try:
            answer = self.server.eks_auth.assume_role_for_pod_identity(clusterName=self.server.cluster_name, token=token)
        except ClientError as error:
            details = error.response.get("Error", {})
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500
            self._answer(status, "text/plain", f"({details.get('Code')}): {details.get('Message')}\n".encode())
            return
        except BotoCoreError as error:
            self._answer(500, "text/plain", f"unable to fetch credentials from EKS Auth: {error}\n".encode())
            return
        self._answer(200, "application/json", json.dumps(credentials_document(answer)).encode())

    def _answer(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        print(f"lab pod-identity-agent: {format % args}", flush=True)


def serve(port, aws_endpoint, region, cluster_name, host="127.0.0.1"):
    """Start the endpoint on a thread; returns the server (its `url` is the credentials URI, shutdown() stops it)."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.cluster_name = cluster_name
    server.eks_auth = boto3.client(
        "eks-auth", endpoint_url=aws_endpoint, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(connect_timeout=2, read_timeout=20, retries={"max_attempts": 3}))
    server.url = f"http://{host}:{server.server_address[1]}{PATH}"
    threading.Thread(target=server.serve_forever, name="pod-identity-agent", daemon=True).start()
    return server
