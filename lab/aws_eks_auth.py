"""EKS Auth's AssumeRoleForPodIdentity, for EKS Pod Identity in the lab.

moto has no EKS Auth service at all: a request signed for `eks-auth` finds no backend in moto's
dispatcher. This module serves its one operation, `POST /clusters/{clusterName}/assume-role-for-pod-identity`
with `{"token": ...}` (REST-JSON, the botocore `eks-auth` model), with the semantics of the EKS Auth API
reference and of the EKS Pod Identity user guide:

* the cluster must exist (ResourceNotFoundException);
* the token must be a service account token of that cluster: its RS256 signature verifies with the
  cluster issuer's keys (the verification of lab/aws_sts.py, with the keys lab-up registers), its `iss`
  is the cluster's OIDC issuer, its `sub` is `system:serviceaccount:<namespace>:<name>`
  (InvalidTokenException otherwise); its `aud` contains `pods.eks.amazonaws.com` (InvalidTokenException)
  and it is not past its `exp` (ExpiredTokenException);
* a pod identity association of the cluster binds that namespace and service account
  (ResourceNotFoundException otherwise);
* the association's role trusts the service principal `pods.eks.amazonaws.com` for sts:AssumeRole and
  sts:TagSession with the session tags EKS adds (eks-cluster-arn, eks-cluster-name, kubernetes-namespace,
  kubernetes-service-account, and kubernetes-pod-name and kubernetes-pod-uid when the token is bound to a
  pod), evaluated by the lab's IAM evaluator (lab/iam_eval.py) as request tags (AccessDeniedException
  otherwise, with a DENIED line in the server's log).

Only then are credentials issued, by moto's STS backend, so lab/aws_authz.py knows their access key as
the role's session and authorizes every later call against the role's policies.

Not modelled: the association's targetRoleArn (role chaining), externalId and disableSessionTags,
throttling, and the caller's own eks-auth:AssumeRoleForPodIdentity permission (on EKS the node role's;
the lab's Pod Identity agent signs with the lab's admin keys).

install() hooks it into moto's server; lab/aws_server.py calls it from install_extensions().
"""
import datetime
import json
import re
import time
import uuid

from moto.core import DEFAULT_ACCOUNT_ID
from moto.eks.models import eks_backends
from moto.iam.models import get_account_id_from, iam_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition

from lab import aws_sts
from lab.aws_authz import CREDENTIAL_RE

SIGNING_NAME = "eks-auth"
AUDIENCE = "pods.eks.amazonaws.com"
SERVICE_PRINCIPAL = "pods.eks.amazonaws.com"
TRUST_ACTIONS = ("sts:AssumeRole", "sts:TagSession")
PATH = re.compile(r"^/clusters/([^/]+)/assume-role-for-pod-identity$")
SUBJECT = re.compile(r"^system:serviceaccount:([^:]+):([^:]+)$")
SESSION_SECONDS = 3600
# botocore's eks-auth model: the HTTP status of each error shape.
STATUS = {"ResourceNotFoundException": 404, "InternalServerException": 500, "ServiceUnavailableException": 503,
          "ThrottlingException": 429}


class EksAuthError(Exception):
    """An error as EKS Auth answers it: the error shape's name and a message."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code, self.message = code, message


def _not_found(message):
    return EksAuthError("ResourceNotFoundException", message)


def _claims(cluster, token):
    issuer = cluster.identity["oidc"]["issuer"]
    try:
        claims = aws_sts.decode_verified(token, aws_sts.issuer_jwks())
    except aws_sts.InvalidIdentityToken:
        raise EksAuthError("InvalidTokenException", "The service account token could not be validated: it is not an "
                                                    "RS256 JWT signed with a key of its issuer") from None
    if claims.get("iss") != issuer:
        raise EksAuthError("InvalidTokenException", f"The token was not issued by cluster {cluster.name}'s issuer {issuer}")
    if claims.get("exp", 0) <= time.time():
        raise EksAuthError("ExpiredTokenException", "The service account token has expired")
    audiences = claims.get("aud")
    if AUDIENCE not in (audiences if isinstance(audiences, list) else [audiences]):
        raise EksAuthError("InvalidTokenException", f"The token's audience must contain {AUDIENCE}")
    if not SUBJECT.match(claims.get("sub") or ""):
        raise EksAuthError("InvalidTokenException", "The token's subject is not a Kubernetes service account")
    return claims


def session_tags(cluster, namespace, service_account, claims):
    """The session tags EKS Pod Identity adds; the pod's only for a token bound to a pod."""
    tags = {"eks-cluster-arn": cluster.arn, "eks-cluster-name": cluster.name,
            "kubernetes-namespace": namespace, "kubernetes-service-account": service_account}
    pod = (claims.get("kubernetes.io") or {}).get("pod") or {}
    if pod.get("name"):
        tags["kubernetes-pod-name"] = pod["name"]
    if pod.get("uid"):
        tags["kubernetes-pod-uid"] = pod["uid"]
    return tags


def _trust(account, role_arn, tags):
    from lab.iam_eval import evaluate_service_trust_policy

    iam = iam_backends[account][role_arn.split(":")[1]]
    role = next((r for r in iam.roles.values() if r.arn == role_arn), None)
    if role is None:
        raise EksAuthError("AccessDeniedException", f"The role {role_arn} of the pod identity association does not exist")
    policy = role.assume_role_policy_document
    policy = json.loads(policy) if isinstance(policy, str) else policy
    context = {f"aws:RequestTag/{key}": value for key, value in tags.items()}
    context["aws:TagKeys"] = sorted(tags)
    for action in TRUST_ACTIONS:
        decision = evaluate_service_trust_policy(policy, role_arn=role_arn, service=SERVICE_PRINCIPAL, action=action,
                                                 context=context)
        if not decision.allowed:
            print(f"lab aws: DENIED {action} on {role_arn} for {SERVICE_PRINCIPAL} (pod identity of "
                  f"{tags['kubernetes-namespace']}/{tags['kubernetes-service-account']}): {decision.explain()}", flush=True)
            raise EksAuthError("AccessDeniedException", f"{SERVICE_PRINCIPAL} is not authorized to perform: {action} on "
                                                        f"resource: {role_arn}: the role's trust policy does not allow it")


def assume_role_for_pod_identity(account, region, cluster_name, token):
    """The AssumeRoleForPodIdentity answer for ``token``; raises EksAuthError as EKS Auth answers."""
    cluster = eks_backends[account][region].clusters.get(cluster_name)
    if cluster is None:
        raise _not_found(f"No cluster found for name: {cluster_name}.")
    if not token:
        raise EksAuthError("InvalidRequestException", "The request must contain a token")
    claims = _claims(cluster, token)
    namespace, service_account = SUBJECT.match(claims["sub"]).groups()
    association = next((a for a in list(getattr(cluster, "lab_pod_identity", {}).values())
                        if a["namespace"] == namespace and a["serviceAccount"] == service_account), None)
    if association is None:
        raise _not_found(f"No Pod Identity Association found for namespace {namespace} and service account "
                         f"{service_account} in cluster {cluster_name}")
    tags = session_tags(cluster, namespace, service_account, claims)
    _trust(account, association["roleArn"], tags)
    pod_name = tags.get("kubernetes-pod-name", service_account)
    # The session name EKS documents, eks-<cluster>-<pod>-<uuid>, within STS's 64 characters.
    session_name = f"eks-{cluster_name}-{pod_name}"[:27] + f"-{uuid.uuid4()}"
    role = sts_backends[account][get_partition(region)].assume_role(
        region_name=region, role_session_name=session_name, role_arn=association["roleArn"], policy=None,
        duration=SESSION_SECONDS, external_id=None)
    role.session_tags = tags
    print(f"lab aws: AssumeRoleForPodIdentity for {namespace}/{service_account} of cluster {cluster_name} "
          f"(association {association['associationId']}): session {role.arn}", flush=True)
    expiration = role.expiration.replace(tzinfo=datetime.timezone.utc) if role.expiration.tzinfo is None else role.expiration
    return {
        "subject": {"namespace": namespace, "serviceAccount": service_account},
        "audience": AUDIENCE,
        "podIdentityAssociation": {"associationArn": association["associationArn"], "associationId": association["associationId"]},
        "assumedRoleUser": {"arn": role.arn, "assumeRoleId": role.user_id},
        "credentials": {"sessionToken": role.session_token, "secretAccessKey": role.secret_access_key,
                        "accessKeyId": role.access_key_id, "expiration": int(expiration.timestamp())},
    }


def handle(environ, start_response):
    """The WSGI application of the EKS Auth service."""
    path = environ.get("PATH_INFO", "")
    match = PATH.match(path)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    scope = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    try:
        if match is None or environ.get("REQUEST_METHOD") != "POST":
            raise EksAuthError("InvalidRequestException", f"EKS Auth has no operation {environ.get('REQUEST_METHOD')} {path}")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise EksAuthError("InvalidRequestException", "The request body is not JSON") from None
        # The account of the caller's keys, as moto derives it for every other service.
        account = get_account_id_from(scope.group(1)) if scope else DEFAULT_ACCOUNT_ID
        status, payload = 200, assume_role_for_pod_identity(
            account, scope.group(2) if scope else "us-east-1", match.group(1), body.get("token"))
    except EksAuthError as error:
        status, payload = STATUS.get(error.code, 400), {"__type": error.code, "message": error.message}
    data = json.dumps(payload).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
               ("x-amzn-RequestId", str(uuid.uuid4()))]
    if status != 200:
        headers.append(("x-amzn-ErrorType", payload["__type"]))
    start_response(f"{status} {'OK' if status == 200 else 'Error'}", headers)
    return [data]


def _is_eks_auth(environ):
    scope = CREDENTIAL_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return scope is not None and scope.group(3) == SIGNING_NAME


_moto_get_application = DomainDispatcherApplication.get_application


def _get_application(self, environ):
    if _is_eks_auth(environ):
        return handle
    return _moto_get_application(self, environ)


def install():
    """Serve EKS Auth from moto's server; running it again changes nothing."""
    DomainDispatcherApplication.get_application = _get_application
