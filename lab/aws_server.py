"""The lab's AWS server: moto's server, plus the EKS and AWS Budgets APIs moto lacks.

moto emulates EKS clusters and nodegroups but not EKS access entries, pod identity associations,
a cluster's `accessConfig` or the cluster security group EKS creates. The roles of this project
use all four, so this module adds them to moto's EKS service, with the semantics the EKS API
reference documents:

* access entries: Create/Describe/List/Update/DeleteAccessEntry. One entry per principal ARN
  (ResourceInUseException on a duplicate); the cluster's authentication mode must be API or
  API_AND_CONFIG_MAP (InvalidRequestException otherwise); EC2_LINUX/EC2_WINDOWS/FARGATE_LINUX
  entries take no kubernetesGroups and get the node username EKS assigns.
* pod identity associations: Create/Describe/List/Update/DeletePodIdentityAssociation. One
  association per (namespace, service account) (ResourceInUseException on a duplicate), ids of
  the form `a-` + 17 characters, the role ARN validated.
* TagResource/UntagResource/ListTagsForResource on access entry and pod identity association
  ARNs (moto tags clusters only); any other ARN still goes to moto.
* CreateCluster: stores `accessConfig` (default authentication mode CONFIG_MAP, as the EKS API
  has it) and creates the cluster security group `eks-cluster-sg-<name>-<n>` in the cluster's
  VPC, reported as `resourcesVpcConfig.clusterSecurityGroupId` and `vpcId`, as EKS does.
  UpdateClusterConfig accepts `accessConfig.authenticationMode` (only towards more API modes,
  as EKS allows).

The Budgets additions (UpdateBudget, UpdateNotification, the subscriber operations and
NotFoundException for a missing budget) are in lab/aws_budgets.py. What the real Karpenter AWS
controller needs beyond moto is in lab/aws_ec2.py (the tutorial's instance types and spot prices,
instant EC2 Fleets, capacity reservations), lab/aws_eks_amis.py (the EKS-optimized AL2023 AMIs
and their public SSM parameters), lab/aws_pricing.py (the Price List API's GetProducts) and lab/aws_iam.py
(ListInstanceProfiles' PathPrefix). EKS Pod Identity's
credentials come from EKS Auth's AssumeRoleForPodIdentity (lab/aws_eks_auth.py), IRSA's from STS
(lab/aws_sts.py). install_extensions() installs them all.

Run as `python -m lab.aws_server --port N [--state-file PATH]`; with a state file the account survives a restart
of the server, as a real one does (lab/aws_persistence.py). Nothing here is a test double: the requests go
through moto's real routing, parsing and serialisation of the botocore EKS and Budgets models.
"""
import argparse
import datetime
import re
import secrets
import string
import sys
import threading
from urllib.parse import unquote

from moto.core.responses import ActionResult, EmptyResult
from moto.eks import urls as eks_urls
from moto.eks.exceptions import (
    InvalidParameterException,
    InvalidRequestException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from moto.eks.models import EKSBackend, eks_backends
from moto.eks.responses import EKSResponse

from lab import aws_budgets, aws_ec2, aws_eks_amis, aws_eks_auth, aws_iam, aws_pricing, aws_sts

AUTH_MODES = ("CONFIG_MAP", "API_AND_CONFIG_MAP", "API")
# EKS only lets a cluster move towards API: CONFIG_MAP -> API_AND_CONFIG_MAP -> API.
AUTH_MODE_RANK = {mode: rank for rank, mode in enumerate(AUTH_MODES)}
ACCESS_ENTRY_TYPES = ("STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX")
NODE_USERNAME = "system:node:{{EC2PrivateDNSName}}"
FARGATE_USERNAME = "system:node:{{SessionName}}"
ROLE_ARN_RE = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]+$")
PRINCIPAL_ARN_RE = re.compile(r"^arn:aws(-cn|-us-gov)?:(iam|sts)::\d{12}:(role|user|assumed-role)/[\w+=,.@/-]+$")

_lock = threading.Lock()


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _cluster(backend, name):
    cluster = backend.clusters.get(name)
    if cluster is None:
        raise ResourceNotFoundException(
            clusterName=name, nodegroupName=None, fargateProfileName=None, addonName=None,
            message=f"No cluster found for name: {name}.",
        )
    return cluster


def _extension_state(cluster):
    # Kept on the moto Cluster object so that it lives and dies with the cluster.
    if not hasattr(cluster, "lab_access_entries"):
        cluster.lab_access_entries = {}
        cluster.lab_pod_identity = {}
    return cluster


def _in_use(cluster_name, message):
    return ResourceInUseException(clusterName=cluster_name, nodegroupName=None, addonName=None, message=message)


# -- CreateCluster / UpdateClusterConfig additions ------------------------------------------------
_original_create_cluster = EKSBackend.create_cluster


def _create_cluster(self, *args, **kwargs):
    access_config = kwargs.pop("access_config", None) or {}
    mode = access_config.get("authenticationMode", "CONFIG_MAP")
    if mode not in AUTH_MODES:
        raise InvalidParameterException(message=f"authenticationMode must be one of {', '.join(AUTH_MODES)}")
    cluster = _original_create_cluster(self, *args, **kwargs)
    cluster.access_config = {
        "authenticationMode": mode,
        "bootstrapClusterCreatorAdminPermissions": access_config.get("bootstrapClusterCreatorAdminPermissions", True),
    }
    _add_cluster_security_group(self, cluster)
    return cluster


def _add_cluster_security_group(backend, cluster):
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[backend.account_id][backend.region_name]
    subnet_ids = cluster.resources_vpc_config.get("subnetIds") or []
    vpc_id = None
    if subnet_ids:
        vpc_id = ec2.get_subnet(subnet_ids[0]).vpc_id
    group = ec2.create_security_group(
        name=f"eks-cluster-sg-{cluster.name}-{secrets.randbelow(10**10):010d}",
        description="EKS created security group applied to ENI that is attached to EKS Control Plane "
        "master nodes, as well as any managed workloads.",
        vpc_id=vpc_id,
        tags={"aws:eks:cluster-name": cluster.name, f"kubernetes.io/cluster/{cluster.name}": "owned"},
    )
    cluster.resources_vpc_config = dict(cluster.resources_vpc_config or {})
    cluster.resources_vpc_config["clusterSecurityGroupId"] = group.id
    if vpc_id:
        cluster.resources_vpc_config["vpcId"] = vpc_id


def _eks_create_cluster(self):
    cluster = _create_cluster(
        self.eks_backend,
        name=self._get_param("name"),
        version=self._get_param("version"),
        role_arn=self._get_param("roleArn"),
        resources_vpc_config=self._get_param("resourcesVpcConfig"),
        kubernetes_network_config=self._get_param("kubernetesNetworkConfig"),
        logging=self._get_param("logging"),
        client_request_token=self._get_param("clientRequestToken"),
        tags=self._get_param("tags"),
        encryption_config=self._get_param("encryptionConfig"),
        remote_network_config=self._get_param("remoteNetworkConfig"),
        access_config=self._get_param("accessConfig"),
    )
    return ActionResult({"cluster": cluster})


_original_update_cluster_config = EKSResponse.__dict__.get("update_cluster_config")


def _eks_update_cluster_config(self):
    access_config = self._get_param("accessConfig")
    if access_config and access_config.get("authenticationMode"):
        name = self._get_param("name")
        cluster = _cluster(self.eks_backend, name)
        new_mode = access_config["authenticationMode"]
        current = getattr(cluster, "access_config", {}).get("authenticationMode", "CONFIG_MAP")
        if new_mode not in AUTH_MODES:
            raise InvalidParameterException(message=f"authenticationMode must be one of {', '.join(AUTH_MODES)}")
        if AUTH_MODE_RANK[new_mode] < AUTH_MODE_RANK[current]:
            raise InvalidParameterException(
                message=f"Unsupported authentication mode update from {current} to {new_mode}"
            )
        cluster.access_config = dict(getattr(cluster, "access_config", {}), authenticationMode=new_mode)
        update = {
            "id": secrets.token_hex(16),
            "status": "Successful",
            "type": "AccessConfigUpdate",
            "params": [{"type": "AuthenticationMode", "value": new_mode}],
            "createdAt": _now(),
            "errors": [],
        }
        return ActionResult({"update": update})
    if _original_update_cluster_config is None:
        raise InvalidRequestException(message="UpdateClusterConfig supports only accessConfig in the lab")
    return _original_update_cluster_config(self)


# -- access entries ---------------------------------------------------------------------------------
def _access_entry_arn(cluster, principal_arn):
    partition, account = cluster.arn.split(":")[1], cluster.arn.split(":")[4]
    region = cluster.arn.split(":")[3]
    kind, _, name = principal_arn.split(":", 5)[5].partition("/")
    return (
        f"arn:{partition}:eks:{region}:{account}:access-entry/{cluster.name}/{kind}/"
        f"{principal_arn.split(':')[4]}/{name}/{secrets.token_hex(4)}"
    )


def _require_api_mode(cluster):
    mode = getattr(cluster, "access_config", {}).get("authenticationMode", "CONFIG_MAP")
    if mode == "CONFIG_MAP":
        raise InvalidRequestException(
            message="The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] "
            "to perform this operation."
        )


def create_access_entry(self):
    name = self._get_param("name")
    principal_arn = self._get_param("principalArn")
    entry_type = self._get_param("type") or "STANDARD"
    groups = self._get_param("kubernetesGroups") or []
    username = self._get_param("username")
    tags = self._get_param("tags") or {}
    with _lock:
        cluster = _extension_state(_cluster(self.eks_backend, name))
        _require_api_mode(cluster)
        if not principal_arn or not PRINCIPAL_ARN_RE.match(principal_arn):
            raise InvalidParameterException(message=f"The principalArn parameter format is not valid: {principal_arn}")
        if entry_type not in ACCESS_ENTRY_TYPES:
            raise InvalidParameterException(
                message=f"The type {entry_type} is not valid, must be one of {', '.join(ACCESS_ENTRY_TYPES)}"
            )
        if entry_type != "STANDARD":
            if groups:
                raise InvalidParameterException(message=f"kubernetesGroups cannot be specified for type {entry_type}")
            if username:
                raise InvalidParameterException(message=f"username cannot be specified for type {entry_type}")
        if principal_arn in cluster.lab_access_entries:
            raise _in_use(name, "The specified access entry resource is already in use on this cluster.")
        if entry_type == "FARGATE_LINUX":
            username = FARGATE_USERNAME
        elif entry_type.startswith("EC2_"):
            username = NODE_USERNAME
        elif not username:
            username = principal_arn
        now = _now()
        entry = {
            "clusterName": name,
            "principalArn": principal_arn,
            "kubernetesGroups": list(groups),
            "accessEntryArn": _access_entry_arn(cluster, principal_arn),
            "createdAt": now,
            "modifiedAt": now,
            "tags": dict(tags),
            "username": username,
            "type": entry_type,
        }
        cluster.lab_access_entries[principal_arn] = entry
    return ActionResult({"accessEntry": entry})


def _get_entry(self):
    name = self._get_param("name")
    principal_arn = unquote(self._get_param("principalArn"))
    cluster = _extension_state(_cluster(self.eks_backend, name))
    entry = cluster.lab_access_entries.get(principal_arn)
    if entry is None:
        raise ResourceNotFoundException(
            clusterName=name, nodegroupName=None, fargateProfileName=None, addonName=None,
            message=f"The specified principalArn could not be found: {principal_arn}",
        )
    return cluster, entry


def describe_access_entry(self):
    _, entry = _get_entry(self)
    return ActionResult({"accessEntry": entry})


def update_access_entry(self):
    with _lock:
        _, entry = _get_entry(self)
        groups = self._get_param("kubernetesGroups")
        username = self._get_param("username")
        if entry["type"] != "STANDARD" and (groups or username):
            raise InvalidParameterException(
                message=f"kubernetesGroups and username cannot be updated for type {entry['type']}"
            )
        if groups is not None:
            entry["kubernetesGroups"] = list(groups)
        if username:
            entry["username"] = username
        entry["modifiedAt"] = _now()
    return ActionResult({"accessEntry": entry})


def delete_access_entry(self):
    with _lock:
        cluster, entry = _get_entry(self)
        del cluster.lab_access_entries[entry["principalArn"]]
    return ActionResult({})


def list_access_entries(self):
    name = self._get_param("name")
    cluster = _extension_state(_cluster(self.eks_backend, name))
    arns = sorted(cluster.lab_access_entries)
    page, token = _paginate(arns, self._get_param("maxResults"), self._get_param("nextToken"))
    return ActionResult({"accessEntries": page, "nextToken": token})


def _paginate(items, max_results, next_token):
    start = int(next_token) if next_token else 0
    size = int(max_results) if max_results else 100
    page = items[start:start + size]
    token = str(start + size) if start + size < len(items) else None
    return page, token


# -- pod identity associations ------------------------------------------------------------------------
def _association_id():
    alphabet = string.ascii_lowercase + string.digits
    return "a-" + "".join(secrets.choice(alphabet) for _ in range(17))


def _association_summary(association):
    keys = ("clusterName", "namespace", "serviceAccount", "associationArn", "associationId", "ownerArn")
    return {key: association[key] for key in keys if key in association}


def create_pod_identity_association(self):
    name = self._get_param("name")
    namespace = self._get_param("namespace")
    service_account = self._get_param("serviceAccount")
    role_arn = self._get_param("roleArn")
    tags = self._get_param("tags") or {}
    with _lock:
        cluster = _extension_state(_cluster(self.eks_backend, name))
        if not role_arn or not ROLE_ARN_RE.match(role_arn):
            raise InvalidParameterException(message=f"The roleArn parameter format is not valid: {role_arn}")
        for existing in cluster.lab_pod_identity.values():
            if existing["namespace"] == namespace and existing["serviceAccount"] == service_account:
                raise _in_use(
                    name,
                    f"Association already exists: {existing['associationId']} for namespace {namespace} "
                    f"and service account {service_account}",
                )
        association_id = _association_id()
        partition, region, account = cluster.arn.split(":")[1], cluster.arn.split(":")[3], cluster.arn.split(":")[4]
        now = _now()
        association = {
            "clusterName": name,
            "namespace": namespace,
            "serviceAccount": service_account,
            "roleArn": role_arn,
            "associationArn": f"arn:{partition}:eks:{region}:{account}:podidentityassociation/{name}/{association_id}",
            "associationId": association_id,
            "tags": dict(tags),
            "createdAt": now,
            "modifiedAt": now,
        }
        cluster.lab_pod_identity[association_id] = association
    return ActionResult({"association": association})


def _get_association(self):
    name = self._get_param("name")
    association_id = self._get_param("associationId")
    cluster = _extension_state(_cluster(self.eks_backend, name))
    association = cluster.lab_pod_identity.get(association_id)
    if association is None:
        raise ResourceNotFoundException(
            clusterName=name, nodegroupName=None, fargateProfileName=None, addonName=None,
            message=f"No Pod Identity Association found with id: {association_id}",
        )
    return cluster, association


def describe_pod_identity_association(self):
    _, association = _get_association(self)
    return ActionResult({"association": association})


def update_pod_identity_association(self):
    with _lock:
        _, association = _get_association(self)
        role_arn = self._get_param("roleArn")
        if role_arn:
            if not ROLE_ARN_RE.match(role_arn):
                raise InvalidParameterException(message=f"The roleArn parameter format is not valid: {role_arn}")
            association["roleArn"] = role_arn
        association["modifiedAt"] = _now()
    return ActionResult({"association": association})


def delete_pod_identity_association(self):
    with _lock:
        cluster, association = _get_association(self)
        del cluster.lab_pod_identity[association["associationId"]]
    return ActionResult({"association": association})


def list_pod_identity_associations(self):
    name = self._get_param("name")
    namespace = self._get_param("namespace")
    service_account = self._get_param("serviceAccount")
    cluster = _extension_state(_cluster(self.eks_backend, name))
    matching = [
        _association_summary(a)
        for a in sorted(cluster.lab_pod_identity.values(), key=lambda a: a["createdAt"])
        if (not namespace or a["namespace"] == namespace) and (not service_account or a["serviceAccount"] == service_account)
    ]
    page, token = _paginate(matching, self._get_param("maxResults"), self._get_param("nextToken"))
    return ActionResult({"associations": page, "nextToken": token})


# -- tags on the resources above ----------------------------------------------------------------------
# Captured at import, before install_extensions() replaces them, so a second install cannot make
# the fallbacks call themselves.
_original_tag_resource = EKSResponse.tag_resource
_original_untag_resource = EKSResponse.untag_resource
_original_list_tags_for_resource = EKSResponse.list_tags_for_resource


def _extension_resource(backend, arn):
    for cluster in backend.clusters.values():
        cluster = _extension_state(cluster)
        for entry in cluster.lab_access_entries.values():
            if entry["accessEntryArn"] == arn:
                return entry
        for association in cluster.lab_pod_identity.values():
            if association["associationArn"] == arn:
                return association
    return None


def tag_resource(self):
    with _lock:
        resource = _extension_resource(self.eks_backend, self._extract_arn_from_path())
        if resource is None:
            return _original_tag_resource(self)
        resource["tags"].update(self._get_param("tags") or {})
    return EmptyResult()


def untag_resource(self):
    with _lock:
        resource = _extension_resource(self.eks_backend, self._extract_arn_from_path())
        if resource is None:
            return _original_untag_resource(self)
        # tagKeys is a repeated query-string parameter: read every value, not the first.
        for key in self.querystring.get("tagKeys", []):
            resource["tags"].pop(key, None)
    return EmptyResult()


def list_tags_for_resource(self):
    resource = _extension_resource(self.eks_backend, self._extract_arn_from_path())
    if resource is None:
        return _original_list_tags_for_resource(self)
    return ActionResult({"tags": dict(resource["tags"])})


EXTRA_URL_PATHS = {
    "{0}/clusters/(?P<name>[^/]+)/access-entries$",
    "{0}/clusters/(?P<name>[^/]+)/access-entries/(?P<principalArn>.+)$",
    "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations$",
    "{0}/clusters/(?P<name>[^/]+)/pod-identity-associations/(?P<associationId>[^/]+)$",
}
EXTRA_ACTIONS = {
    "create_cluster": _eks_create_cluster,
    "update_cluster_config": _eks_update_cluster_config,
    "create_access_entry": create_access_entry,
    "describe_access_entry": describe_access_entry,
    "update_access_entry": update_access_entry,
    "delete_access_entry": delete_access_entry,
    "list_access_entries": list_access_entries,
    "create_pod_identity_association": create_pod_identity_association,
    "describe_pod_identity_association": describe_pod_identity_association,
    "update_pod_identity_association": update_pod_identity_association,
    "delete_pod_identity_association": delete_pod_identity_association,
    "list_pod_identity_associations": list_pod_identity_associations,
    "tag_resource": tag_resource,
    "untag_resource": untag_resource,
    "list_tags_for_resource": list_tags_for_resource,
}


def install_extensions():
    """Register the extra EKS, Budgets, EC2 and SSM behaviour with moto. Must run before the server routes a
    request; running it again changes nothing."""
    for name, function in EXTRA_ACTIONS.items():
        setattr(EKSResponse, name, function)
    for path in EXTRA_URL_PATHS:
        eks_urls.url_paths[path] = eks_urls.response.dispatch
    aws_budgets.install()
    aws_ec2.install()
    aws_eks_amis.install()
    aws_iam.install()
    aws_pricing.install()
    aws_sts.install()
    aws_eks_auth.install()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--authorize", action="store_true",
                        help="authorize every request of an assumed role with the lab's IAM evaluator (lab/aws_authz.py)")
    parser.add_argument("--state-file",
                        help="keep the account's state in this file across restarts: loaded at start when it exists, "
                             "saved after every change and on SIGTERM (lab/aws_persistence.py)")
    args = parser.parse_args()
    install_extensions()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    if args.authorize:
        from lab.aws_authz import Authorizer

        app = Authorizer(app)
    persistence = None
    if args.state_file:
        import signal

        from lab import aws_persistence

        try:
            if aws_persistence.load(args.state_file):
                aws_persistence.log(f"the account's state loaded from {args.state_file}")
        except aws_persistence.SnapshotError as error:
            # Answering as an empty account would look like every resource had been deleted.
            raise SystemExit(f"lab aws: {error} ({args.state_file}); remove it to start an empty account") from error
        # Outermost, so that a change, its authorization included, is whole in a snapshot or absent from it.
        app = persistence = aws_persistence.Persistence(app, args.state_file)
        # lab-down's SIGTERM: save, then go (SystemExit ends serve_forever in this, the main, thread).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler).serve_forever()
    finally:
        if persistence is not None:
            persistence.save_through()


if __name__ == "__main__":
    main()
