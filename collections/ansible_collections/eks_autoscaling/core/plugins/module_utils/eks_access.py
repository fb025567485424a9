# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""EKS access entries and pod identity associations: every API call the modules make.

The modules of this collection only parse their options and report; all reads, writes,
comparisons, retries and error translation live here so they can be tested against a real
EKS API (the lab's emulator) without going through AnsibleModule.

Every function takes a client made the amazon.aws way, wrapped for retries:

    client = module.client("eks", retry_decorator=AWSRetry.jittered_backoff())

so that calls made with ``aws_retry=True`` are retried on throttling. Failures are raised as
``EksAccessError`` (eks_cluster's ``EksClusterError``, an ``AnsibleAWSError``); a module hands it to ``module.fail_json_aws_error``.

``ensure_*`` functions return ``(changed, state)``: ``state`` is the API object after the run
(``None`` when absent). In check mode nothing is changed and ``state`` is the object as it would
be, so that the module's diff shows the planned change.
"""

import re

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

# One error type and one cluster lookup for all of the collection's EKS module_utils.
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_cluster import EksClusterError as EksAccessError
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_cluster import _cluster_not_found
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_cluster import _EksErrorHandler
from ansible_collections.eks_autoscaling.core.plugins.module_utils.eks_cluster import describe_cluster

ACCESS_ENTRY_TYPES = ("STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX")
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
# Authentication modes in which the access entry API answers at all.
ACCESS_ENTRY_AUTH_MODES = ("API", "API_AND_CONFIG_MAP")

_PARTITION = "(?:" + "|".join(re.escape(p) for p in PARTITIONS) + ")"
# An IAM path is any printable ASCII between slashes; a role or user name is the narrower set
# (ASCII only: IAM refuses the non-ASCII letters that a Unicode \w would let through).
_IAM_PATH = r"(?:[\x21-\x7e]*/)?"
_IAM_NAME = r"[\w+=,.@-]{1,64}"
ROLE_ARN_RE = re.compile(rf"^arn:{_PARTITION}:iam::\d{{12}}:role/{_IAM_PATH}{_IAM_NAME}$", re.ASCII)
# EKS rejects STS session ARNs (assumed-role/...) for access entries: they name a session, not a
# principal that outlives it. Only IAM roles and users are accepted.
PRINCIPAL_ARN_RE = re.compile(rf"^arn:{_PARTITION}:iam::\d{{12}}:(?:role|user)/{_IAM_PATH}{_IAM_NAME}$", re.ASCII)
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
NAMESPACE_RE = re.compile(rf"^{_DNS_LABEL}$")
SERVICE_ACCOUNT_RE = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*$")

# Tells "the caller did not pass the current state" apart from "the resource does not exist" (None).
_UNSET = object()


# -- validation -------------------------------------------------------------------------------------
def _arn_hint():
    return f"an IAM ARN in partition {', '.join(PARTITIONS)}"


def validate_role_arn(role_arn, option="role_arn"):
    if not role_arn or not ROLE_ARN_RE.match(role_arn):
        raise EksAccessError(
            message=f"{option} must be an IAM role ARN (arn:<partition>:iam::<12-digit account>:role/<name>, "
            f"{_arn_hint()}), got {role_arn!r}"
        )


def validate_principal_arn(principal_arn, option="principal_arn"):
    if not principal_arn or not PRINCIPAL_ARN_RE.match(principal_arn):
        raise EksAccessError(
            message=f"{option} must be an IAM role or user ARN (arn:<partition>:iam::<12-digit account>:role/<name> "
            f"or :user/<name>, {_arn_hint()}; STS session ARNs are not accepted by EKS), got {principal_arn!r}"
        )


def validate_access_entry_params(principal_arn, entry_type="STANDARD", kubernetes_groups=None, username=None):
    validate_principal_arn(principal_arn)
    if entry_type not in ACCESS_ENTRY_TYPES:
        raise EksAccessError(message=f"type must be one of {', '.join(ACCESS_ENTRY_TYPES)}, got {entry_type!r}")
    if entry_type != "STANDARD":
        # EKS fills in the node username and groups of these types itself and rejects any given.
        if kubernetes_groups:
            raise EksAccessError(message=f"kubernetes_groups cannot be set for an access entry of type {entry_type}")
        if username:
            raise EksAccessError(message=f"username cannot be set for an access entry of type {entry_type}")
        # The resource part, not a substring: an IAM path may itself contain ":role/".
        if not principal_arn.split(":", 5)[5].startswith("role/"):
            raise EksAccessError(
                message=f"principal_arn must be an IAM role ARN for an access entry of type {entry_type}, "
                f"got {principal_arn!r}"
            )


def validate_pod_identity_params(namespace, service_account, role_arn=None, state="present"):
    if not namespace or not NAMESPACE_RE.match(namespace):
        raise EksAccessError(message=f"namespace must be a Kubernetes namespace name (RFC 1123 label), got {namespace!r}")
    if not service_account or len(service_account) > 253 or not SERVICE_ACCOUNT_RE.match(service_account):
        raise EksAccessError(
            message=f"service_account must be a Kubernetes service account name (RFC 1123 subdomain), "
            f"got {service_account!r}"
        )
    if state == "present":
        validate_role_arn(role_arn)


# -- shared helpers -----------------------------------------------------------------------------------
def _normalise_tags(tags):
    # Tag values reach AWS as strings; comparing the stringified form keeps `count: 1` idempotent.
    if tags is None:
        return None
    return {to_text(key): to_text(value) for key, value in tags.items()}


def _tag_changes(current_tags, tags, purge_tags):
    if tags is None:
        return {}, []
    return compare_aws_tags(current_tags or {}, tags, purge_tags)


def _apply_tag_changes(current_tags, to_set, to_unset):
    merged = {key: value for key, value in (current_tags or {}).items() if key not in to_unset}
    merged.update(to_set)
    return merged


def _unique(items):
    # EKS treats groups as a set; keep the caller's order but drop repeats.
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


@_EksErrorHandler.common_error_handler("update tags")
def _update_tags(client, resource_arn, to_set, to_unset):
    if to_unset:
        client.untag_resource(resourceArn=resource_arn, tagKeys=list(to_unset), aws_retry=True)
    if to_set:
        client.tag_resource(resourceArn=resource_arn, tags=to_set, aws_retry=True)



def to_result(state):
    """The module's view of an API object: snake_case keys, tag keys left exactly as AWS has them."""
    if not state:
        return {}
    return camel_dict_to_snake_dict(state, ignore_list=["tags"])


def module_result(key, changed, before, after, want_diff):
    result = {"changed": changed, key: to_result(after)}
    if want_diff:
        result["diff"] = {"before": to_result(before), "after": to_result(after)}
    return result


# -- access entries -----------------------------------------------------------------------------------
@_EksErrorHandler.list_error_handler("describe access entry")
def _describe_access_entry(client, cluster_name, principal_arn):
    return client.describe_access_entry(clusterName=cluster_name, principalArn=principal_arn, aws_retry=True)[
        "accessEntry"
    ]


@_EksErrorHandler.common_error_handler("create access entry")
def _create_access_entry(client, cluster_name, principal_arn, entry_type, kubernetes_groups, username, tags):
    params = {"clusterName": cluster_name, "principalArn": principal_arn, "type": entry_type}
    if kubernetes_groups:
        params["kubernetesGroups"] = kubernetes_groups
    if username:
        params["username"] = username
    if tags:
        params["tags"] = tags
    return client.create_access_entry(aws_retry=True, **params)["accessEntry"]


@_EksErrorHandler.common_error_handler("update access entry")
def _update_access_entry(client, cluster_name, principal_arn, changes):
    return client.update_access_entry(clusterName=cluster_name, principalArn=principal_arn, aws_retry=True, **changes)[
        "accessEntry"
    ]


@_EksErrorHandler.deletion_error_handler("delete access entry")
def _delete_access_entry(client, cluster_name, principal_arn):
    client.delete_access_entry(clusterName=cluster_name, principalArn=principal_arn, aws_retry=True)
    return True


def get_access_entry(client, cluster_name, principal_arn):
    """The access entry of principal_arn, or None. Fails clearly when the cluster is missing or
    cannot have access entries, which DescribeAccessEntry alone reports as a plain not-found."""
    validate_principal_arn(principal_arn)
    cluster = describe_cluster(client, cluster_name)
    mode = (cluster.get("accessConfig") or {}).get("authenticationMode", "CONFIG_MAP")
    if mode not in ACCESS_ENTRY_AUTH_MODES:
        raise EksAccessError(
            message=f"EKS cluster {cluster_name!r} uses authentication mode {mode}; access entries need "
            f"{' or '.join(ACCESS_ENTRY_AUTH_MODES)} (update the cluster's accessConfig first)"
        )
    return _describe_access_entry(client, cluster_name, principal_arn)


def _planned_access_entry(cluster_name, principal_arn, entry_type, kubernetes_groups, username, tags):
    planned = {
        "clusterName": cluster_name,
        "principalArn": principal_arn,
        "type": entry_type,
        "kubernetesGroups": list(kubernetes_groups or []),
        "tags": dict(tags or {}),
    }
    if username:
        planned["username"] = username
    return planned


def ensure_access_entry(
    client,
    cluster_name,
    principal_arn,
    entry_type="STANDARD",
    kubernetes_groups=None,
    username=None,
    tags=None,
    purge_tags=True,
    force=False,
    check_mode=False,
    current=_UNSET,
):
    """Make the access entry of principal_arn match the arguments; None arguments are left alone.

    EKS cannot change an entry's type in place. A different type fails, naming the field, unless
    force is true: then the entry is deleted and created again, which also drops the access
    policies associated with it.
    """
    validate_access_entry_params(principal_arn, entry_type, kubernetes_groups, username)
    tags = _normalise_tags(tags)
    if kubernetes_groups is not None:
        kubernetes_groups = _unique(kubernetes_groups)
    if current is _UNSET:
        current = get_access_entry(client, cluster_name, principal_arn)

    if current is None:
        if check_mode:
            return True, _planned_access_entry(cluster_name, principal_arn, entry_type, kubernetes_groups, username, tags)
        return True, _create_access_entry(
            client, cluster_name, principal_arn, entry_type, kubernetes_groups, username, tags
        )

    if current.get("type") != entry_type:
        immutable = [f"type ({current.get('type')} -> {entry_type})"]
        if username and username != current.get("username"):
            immutable.append(f"username ({current.get('username')} -> {username})")
        if not force:
            raise EksAccessError(
                message=f"The access entry of {principal_arn} on cluster {cluster_name} cannot be updated in place: "
                f"EKS does not allow changing {' and '.join(immutable)}. Set force=true to delete and recreate it "
                "(this drops its associated access policies)."
            )
        # Keep what the caller did not ask to change; the old username belonged to the old type.
        # aws: tags are AWS's own and CreateAccessEntry refuses them, so they are not carried over.
        new_tags = _apply_tag_changes(current.get("tags"), *_tag_changes(current.get("tags"), tags, purge_tags))
        new_tags = {key: value for key, value in new_tags.items() if not key.startswith("aws:")}
        if kubernetes_groups is None and entry_type == "STANDARD":
            kubernetes_groups = list(current.get("kubernetesGroups") or [])
        if check_mode:
            return True, _planned_access_entry(
                cluster_name, principal_arn, entry_type, kubernetes_groups, username, new_tags
            )
        _delete_access_entry(client, cluster_name, principal_arn)
        return True, _create_access_entry(
            client, cluster_name, principal_arn, entry_type, kubernetes_groups, username, new_tags
        )

    changes = {}
    if kubernetes_groups is not None and set(kubernetes_groups) != set(current.get("kubernetesGroups") or []):
        changes["kubernetesGroups"] = kubernetes_groups
    if username is not None and username != current.get("username"):
        changes["username"] = username
    to_set, to_unset = _tag_changes(current.get("tags"), tags, purge_tags)
    if not (changes or to_set or to_unset):
        return False, current

    if check_mode:
        planned = dict(current, **changes)
        planned["tags"] = _apply_tag_changes(current.get("tags"), to_set, to_unset)
        return True, planned
    if changes:
        _update_access_entry(client, cluster_name, principal_arn, changes)
    if to_set or to_unset:
        _update_tags(client, current["accessEntryArn"], to_set, to_unset)
    # Re-read rather than patch the update's answer: it predates the tag calls.
    return True, _describe_access_entry(client, cluster_name, principal_arn)


def ensure_access_entry_absent(client, cluster_name, principal_arn, check_mode=False, current=_UNSET):
    validate_principal_arn(principal_arn)
    if current is _UNSET:
        current = get_access_entry(client, cluster_name, principal_arn)
    if current is None:
        return False, None
    if check_mode:
        return True, None
    # False means it vanished between the read and the delete: someone else did the work.
    deleted = _delete_access_entry(client, cluster_name, principal_arn)
    return bool(deleted), None


# -- pod identity associations ------------------------------------------------------------------------
@AWSRetry.jittered_backoff()
def _paginate_associations(client, **params):
    # get_paginator is never retried by the client wrapper: retry the whole walk instead.
    paginator = client.get_paginator("list_pod_identity_associations")
    return paginator.paginate(**params).build_full_result().get("associations", [])


@_EksErrorHandler.common_error_handler("list pod identity associations")
def list_pod_identity_associations(client, cluster_name, namespace=None, service_account=None, page_size=None):
    """Summaries (no role ARN, no tags) of the cluster's associations, across all pages."""
    params = {"clusterName": cluster_name}
    if namespace:
        params["namespace"] = namespace
    if service_account:
        params["serviceAccount"] = service_account
    if page_size:
        params["PaginationConfig"] = {"PageSize": page_size}
    try:
        return _paginate_associations(client, **params)
    except is_boto3_error_code("ResourceNotFoundException") as e:
        # The only thing this list call can fail to find is the cluster.
        raise _cluster_not_found(client, cluster_name, e) from e


@_EksErrorHandler.list_error_handler("describe pod identity association")
def _describe_association(client, cluster_name, association_id):
    return client.describe_pod_identity_association(
        clusterName=cluster_name, associationId=association_id, aws_retry=True
    )["association"]


@_EksErrorHandler.common_error_handler("create pod identity association")
def _create_association(client, cluster_name, namespace, service_account, role_arn, tags):
    params = {
        "clusterName": cluster_name,
        "namespace": namespace,
        "serviceAccount": service_account,
        "roleArn": role_arn,
    }
    if tags:
        params["tags"] = tags
    return client.create_pod_identity_association(aws_retry=True, **params)["association"]


@_EksErrorHandler.common_error_handler("update pod identity association")
def _update_association(client, cluster_name, association_id, role_arn):
    return client.update_pod_identity_association(
        clusterName=cluster_name, associationId=association_id, roleArn=role_arn, aws_retry=True
    )["association"]


@_EksErrorHandler.deletion_error_handler("delete pod identity association")
def _delete_association(client, cluster_name, association_id):
    client.delete_pod_identity_association(clusterName=cluster_name, associationId=association_id, aws_retry=True)
    return True


def get_pod_identity_association(client, cluster_name, namespace, service_account, page_size=None):
    """The full association of (namespace, service_account), or None."""
    validate_pod_identity_params(namespace, service_account, state="absent")
    summaries = list_pod_identity_associations(client, cluster_name, namespace, service_account, page_size)
    # The API filters server-side; matching again guards against a looser filter than documented.
    for summary in summaries:
        if summary.get("namespace") == namespace and summary.get("serviceAccount") == service_account:
            return _describe_association(client, cluster_name, summary["associationId"])
    return None


def ensure_pod_identity_association(
    client,
    cluster_name,
    namespace,
    service_account,
    role_arn,
    tags=None,
    purge_tags=True,
    check_mode=False,
    current=_UNSET,
):
    validate_pod_identity_params(namespace, service_account, role_arn)
    tags = _normalise_tags(tags)
    if current is _UNSET:
        current = get_pod_identity_association(client, cluster_name, namespace, service_account)

    if current is None:
        if check_mode:
            return True, {
                "clusterName": cluster_name,
                "namespace": namespace,
                "serviceAccount": service_account,
                "roleArn": role_arn,
                "tags": dict(tags or {}),
            }
        return True, _create_association(client, cluster_name, namespace, service_account, role_arn, tags)

    role_changed = current.get("roleArn") != role_arn
    to_set, to_unset = _tag_changes(current.get("tags"), tags, purge_tags)
    if not (role_changed or to_set or to_unset):
        return False, current

    if check_mode:
        planned = dict(current, roleArn=role_arn)
        planned["tags"] = _apply_tag_changes(current.get("tags"), to_set, to_unset)
        return True, planned
    if role_changed:
        _update_association(client, cluster_name, current["associationId"], role_arn)
    if to_set or to_unset:
        _update_tags(client, current["associationArn"], to_set, to_unset)
    return True, _describe_association(client, cluster_name, current["associationId"])


def ensure_pod_identity_association_absent(
    client, cluster_name, namespace, service_account, check_mode=False, current=_UNSET
):
    validate_pod_identity_params(namespace, service_account, state="absent")
    if current is _UNSET:
        current = get_pod_identity_association(client, cluster_name, namespace, service_account)
    if current is None:
        return False, None
    if check_mode:
        return True, None
    deleted = _delete_association(client, cluster_name, current["associationId"])
    return bool(deleted), None
