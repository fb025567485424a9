# -*- coding: utf-8 -*-

# Copyright: Karpenter HPA EKS contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read-only facts about an EKS cluster and its managed nodegroups: every API call eks_cluster_info makes.

As in eks_access.py, the module only parses its options and reports; reads, pagination, retries,
error translation and the derived facts live here, so they can be tested against the lab's EKS
API without AnsibleModule.

The client is made the amazon.aws way, wrapped for retries:

    client = module.client("eks", retry_decorator=AWSRetry.jittered_backoff())

Failures are raised as ``EksClusterError`` (an ``AnsibleAWSError``) for
``module.fail_json_aws_error``. Nothing here calls a mutating API.
"""

import re

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.arn import parse_aws_arn
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# What EKS means when DescribeCluster has no accessConfig: clusters older than access entries
# authenticate through the aws-auth ConfigMap only.
DEFAULT_AUTHENTICATION_MODE = "CONFIG_MAP"
# CreateCluster's own constraint. Checked locally so a typo fails with a message about the name
# instead of a not-found or a botocore validation error.
CLUSTER_NAME_RE = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
_HTTPS = "https://"

# Keys whose values are user-chosen maps: snake-casing them would rename the user's keys
# (a label `nodeClass` would come back as `node_class`).
CLUSTER_VERBATIM_KEYS = ("tags",)
NODEGROUP_VERBATIM_KEYS = ("tags", "labels")


class EksClusterError(AnsibleAWSError):
    """Any failure of the collection's EKS module_utils (eks_access uses it too); ``exception`` holds
    the botocore error when there is one."""


class _EksErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = EksClusterError

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("ResourceNotFoundException")


def validate_cluster_name(cluster_name, option="name"):
    if not isinstance(cluster_name, str) or not CLUSTER_NAME_RE.match(cluster_name):
        raise EksClusterError(
            message=f"{option} must be an EKS cluster name (1 to 100 letters, digits, hyphens and underscores, "
            f"starting with a letter or digit), got {cluster_name!r}"
        )


def _region(client):
    return getattr(getattr(client, "meta", None), "region_name", None) or "the configured region"


def _cluster_not_found(client, cluster_name, error):
    return EksClusterError(message=f"EKS cluster {cluster_name!r} does not exist in {_region(client)}", exception=error)


# -- API reads ----------------------------------------------------------------------------------------
@_EksErrorHandler.common_error_handler("describe EKS cluster")
def describe_cluster(client, cluster_name):
    """The cluster as DescribeCluster returns it (camelCase). A missing cluster is an error, not None:
    every caller needs the cluster, and an empty answer would hide a wrong name or region.
    Callers validate the name first, under the name of their own option."""
    try:
        return client.describe_cluster(name=cluster_name, aws_retry=True)["cluster"]
    except is_boto3_error_code("ResourceNotFoundException") as e:
        raise _cluster_not_found(client, cluster_name, e) from e


@AWSRetry.jittered_backoff()
def _paginate_nodegroups(client, **params):
    # The retrying wrapper does not cover get_paginator: retry the whole walk instead, so a
    # throttled second page does not lose the first.
    paginator = client.get_paginator("list_nodegroups")
    return paginator.paginate(**params).build_full_result().get("nodegroups", [])


@_EksErrorHandler.common_error_handler("list EKS nodegroups")
def list_nodegroups(client, cluster_name, page_size=None):
    """Names of the cluster's managed nodegroups, across all pages."""
    validate_cluster_name(cluster_name)
    params = {"clusterName": cluster_name}
    if page_size:
        params["PaginationConfig"] = {"PageSize": page_size}
    try:
        return _paginate_nodegroups(client, **params)
    except is_boto3_error_code("ResourceNotFoundException") as e:
        # The only thing ListNodegroups can fail to find is the cluster.
        raise _cluster_not_found(client, cluster_name, e) from e


@_EksErrorHandler.list_error_handler("describe EKS nodegroup")
def _describe_nodegroup(client, cluster_name, nodegroup_name):
    return client.describe_nodegroup(clusterName=cluster_name, nodegroupName=nodegroup_name, aws_retry=True)[
        "nodegroup"
    ]


def describe_nodegroups(client, cluster_name, page_size=None):
    """Every managed nodegroup of the cluster, described (camelCase), ordered by name.

    Sorted so that two runs against an unchanged cluster return the same list whatever order
    ListNodegroups used. A nodegroup deleted between the list and its describe is left out
    rather than failing the run: it no longer exists, which is what the caller should see.
    """
    names = sorted(list_nodegroups(client, cluster_name, page_size=page_size))
    described = (_describe_nodegroup(client, cluster_name, name) for name in names)
    return [nodegroup for nodegroup in described if nodegroup is not None]


# -- the module's view ----------------------------------------------------------------------------------
def snake_cluster(cluster):
    return camel_dict_to_snake_dict(cluster or {}, ignore_list=list(CLUSTER_VERBATIM_KEYS))


def snake_nodegroup(nodegroup):
    return camel_dict_to_snake_dict(nodegroup or {}, ignore_list=list(NODEGROUP_VERBATIM_KEYS))


def _oidc_provider(issuer):
    # IAM names an OIDC provider by its issuer without the scheme; that is the form trust
    # policies use in their `<provider>:sub` condition keys.
    if issuer and issuer.startswith(_HTTPS):
        return issuer[len(_HTTPS) :]
    return issuer


def cluster_facts(cluster, nodegroups=None):
    """The module's result from API objects (camelCase, as boto3 returns them).

    Facts EKS has not filled in yet (no OIDC issuer while a cluster is being created, say) are
    None rather than missing, so roles can test them without a `default`. The nodegroup keys are
    only present when ``nodegroups`` is a list: a run that did not look must not claim there are none.
    """
    cluster = cluster or {}
    vpc_config = cluster.get("resourcesVpcConfig") or {}
    issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer")
    arn = parse_aws_arn(cluster["arn"]) if cluster.get("arn") else None
    facts = {
        "cluster": snake_cluster(cluster),
        "oidc_issuer": issuer,
        "oidc_provider": _oidc_provider(issuer),
        "cluster_security_group_id": vpc_config.get("clusterSecurityGroupId"),
        "vpc_id": vpc_config.get("vpcId"),
        "authentication_mode": (cluster.get("accessConfig") or {}).get("authenticationMode")
        or DEFAULT_AUTHENTICATION_MODE,
        "partition": arn["partition"] if arn else None,
        "account_id": arn["account_id"] if arn else None,
    }
    if nodegroups is not None:
        facts["nodegroups"] = [snake_nodegroup(nodegroup) for nodegroup in nodegroups]
        facts["nodegroup_subnet_ids"] = sorted(
            {subnet for nodegroup in nodegroups for subnet in (nodegroup.get("subnets") or [])}
        )
    return facts


def get_cluster_info(client, cluster_name, nodegroups=True, page_size=None):
    """Describe the cluster and, when ``nodegroups`` is true, its managed nodegroups; return cluster_facts.

    The cluster is read first so a missing one fails as such before any nodegroup call.
    ``page_size`` only exists so that tests can force ListNodegroups onto several pages.
    """
    validate_cluster_name(cluster_name)
    cluster = describe_cluster(client, cluster_name)
    described = describe_nodegroups(client, cluster_name, page_size=page_size) if nodegroups else None
    return cluster_facts(cluster, described)
