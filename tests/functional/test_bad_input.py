"""Bad input never changes anything: each value below, given as a user would (`ansible-playbook -i
inventories/lab playbooks/<p>.yml -e ...`) to a fresh lab, fails with a message naming the variable, and
leaves the AWS server and the cluster exactly as they were (compared around all the rows, which run
side by side). Good edge values pass validation."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.functional.conftest import run_playbook

LONG_CLUSTER = "c" * 60  # a legal EKS name, but KarpenterNodeRole-<it> is longer than IAM's 64
# With a long cluster name, role names of its own, so that the check under test is the one that fails.
SHORT_ROLE_NAMES = {"eks_cluster_node_role_name": "NodeRole", "eks_cluster_controller_role_name": "ControllerRole"}

BAD = [
    # playbook, extra vars, the variable the message must name
    ("karpenter.yml", {"eks_cluster_region": "ap-southeast-one"}, "eks_cluster_region"),
    ("event_bus.yml", {"event_bus_billing_region": "cn-north-1"}, "event_bus_billing_region"),
    ("karpenter.yml", {"eks_cluster_region": "ap-southeast-1 "}, "eks_cluster_region"),
    ("karpenter.yml", {"eks_cluster_name": "eksworkshop\n"}, "eks_cluster_name"),
    ("karpenter.yml", {"eks_cluster_name": LONG_CLUSTER}, "eks_cluster_node_role_name"),
    ("karpenter.yml", {"eks_cluster_node_role_name": "Karpenter Node Role"}, "eks_cluster_node_role_name"),
    ("karpenter.yml", {"eks_cluster_node_role_name": "R" * 65}, "eks_cluster_node_role_name"),
    ("karpenter.yml", {"eks_cluster_controller_role_name": "Rôle"}, "eks_cluster_controller_role_name"),
    ("karpenter.yml", {"iam_controller_policy_name": "policy/x"}, "iam_controller_policy_name"),
    ("karpenter.yml", {"iam_instance_profile_name": "my profile", "iam_create_instance_profile": True}, "iam_instance_profile_name"),
    ("karpenter.yml", {"iam_node_managed_policies": ["AmazonEKSWorkerNodePolicy", "bad policy"]}, "iam_node_managed_policies[1]"),
    ("karpenter.yml", {"eks_cluster_karpenter_namespace": "Karpenter"}, "eks_cluster_karpenter_namespace"),
    ("karpenter.yml", {"eks_cluster_karpenter_service_account": "karpenter_sa"}, "eks_cluster_karpenter_service_account"),
    ("karpenter.yml", {"eks_cluster_interruption_queue_name": "queue.fifo"}, "eks_cluster_interruption_queue_name"),
    ("karpenter.yml", {"eks_cluster_account_id": "12345"}, "eks_cluster_account_id"),
    ("karpenter.yml", {"eks_cluster_controller_identity": "keys"}, "eks_cluster_controller_identity"),
    ("karpenter.yml", {"eks_cluster_discovery_tag_key": ""}, "eks_cluster_discovery_tag_key"),
    ("karpenter.yml", {"eks_cluster_discovery_tag_key": "aws:discovery"}, "eks_cluster_discovery_tag_key"),
    ("karpenter.yml", {"eks_cluster_discovery_tag_key": "k" * 129}, "eks_cluster_discovery_tag_key"),
    ("karpenter.yml", {"eks_cluster_name": "eks workshop"}, "eks_cluster_name"),
    ("karpenter.yml", {"tagging_subnet_ids": ["subnet-0123abcd\n"]}, "tagging_subnet_ids[0]"),
    ("karpenter.yml", {"tagging_security_group_ids": ["sg-xyz"]}, "tagging_security_group_ids[0]"),
    ("karpenter.yml", {"aws_auth_mode": "configmap", "aws_auth_node_groups": []}, "aws_auth_node_groups"),
    ("karpenter.yml", {"aws_auth_node_groups": ["system:nodes "]}, "aws_auth_node_groups[0]"),
    ("karpenter.yml", {"aws_auth_node_username": "\tsystem:node"}, "aws_auth_node_username"),
    ("karpenter.yml", {"eks_cluster_node_role_arn": "arn:aws:iam::123:role/x"}, "eks_cluster_node_role_arn"),
    ("karpenter.yml", {"eks_cluster_name": "-eks"}, "eks_cluster_name"),
    ("karpenter.yml", {"aws_auth_mode": "both"}, "aws_auth_mode"),
    ("karpenter.yml", {"eks_cluster_interruption_queue_name": "queue/name"}, "eks_cluster_interruption_queue_name"),
    # The cluster's connection: a profile beside the lab's keys, a key without its secret, an account the
    # credentials do not reach (valid, but another cluster's: nothing may change on this one).
    ("karpenter.yml", {"eks_cluster_aws_profile": "production"}, "eks_cluster_aws_profile"),
    ("event_bus.yml", {"eks_cluster_aws_secret_key": ""}, "eks_cluster_aws_secret_key"),
    ("karpenter.yml", {"eks_cluster_account_id": "210987654321"}, "eks_cluster_account_id"),
    ("karpenter.yml", {"eks_cluster_interruption_queue_name": "q" * 81}, "eks_cluster_interruption_queue_name"),
    ("karpenter.yml", {"eks_cluster_region": "AP-SOUTHEAST-1"}, "eks_cluster_region"),
    ("karpenter.yml", {"interruption_queue_retention_seconds": 59}, "interruption_queue_retention_seconds"),
    ("karpenter.yml", {"interruption_queue_retention_seconds": "-1"}, "interruption_queue_retention_seconds"),
    ("karpenter.yml", {"eks_cluster_name": "c" * 50, **SHORT_ROLE_NAMES}, "eks_cluster_name/interruption_queue_rules"),
    ("karpenter.yml", {"interruption_queue_rules": [{"suffix": "Spot Interruption", "pattern": {"source": ["aws.ec2"]}}]},
     "eks_cluster_name/interruption_queue_rules[0]"),
    ("karpenter.yml", {"karpenter_replicas": -1}, "karpenter_replicas"),
    ("karpenter.yml", {"karpenter_replicas": "2 replicas"}, "karpenter_replicas"),
    ("karpenter.yml", {"karpenter_controller_resources": {"requests": {"cpu": "2 cores", "memory": "1Gi"}}},
     "karpenter_controller_resources.requests.cpu"),
    ("karpenter.yml", {"karpenter_controller_resources": {"limits": {"memory": "1 GB"}}}, "karpenter_controller_resources.limits.memory"),
    ("karpenter.yml", {"eks_cluster_karpenter_namespace": "karpenter-"}, "eks_cluster_karpenter_namespace"),
    ("karpenter.yml", {"karpenter_release_name": "r" * 54}, "karpenter_release_name"),
    ("karpenter.yml", {"eks_cluster_karpenter_service_account": "SA"}, "eks_cluster_karpenter_service_account"),
    ("karpenter.yml", {"eks_cluster_interruption_queue_name": "queue with spaces"}, "eks_cluster_interruption_queue_name"),
    ("karpenter.yml", {"eks_cluster_name": "eks.prod"}, "eks_cluster_name"),
    ("karpenter.yml", {"karpenter_wait_timeout": 0}, "karpenter_wait_timeout"),
    ("karpenter.yml", {"karpenter_extra_values": {"podLabels": {"tier": "web\n"}}}, "karpenter_extra_values"),
    ("karpenter.yml", {"karpenter_extra_values": {"controller": {"resources": {"requests": {"cpu": "lots"}}}}}, "karpenter_extra_values"),
    ("karpenter.yml", {"karpenter_extra_values": {"priorityClassName": "Not_A_Name"}}, "karpenter_extra_values"),
    ("karpenter.yml", {"nodepools_list": [{"name": "default", "node_class": "default", "labels": {"intent": "apps\n"},
                                           "disruption": {"consolidation_policy": "WhenEmpty", "consolidate_after": "1m"}}]},
     "nodepools_list[0]"),
    ("karpenter.yml", {"nodepools_list": [{"name": "default", "node_class": "default", "limits": {"cpu": "1000 cores"},
                                           "disruption": {"consolidation_policy": "WhenEmpty", "consolidate_after": "1m"}}]},
     "nodepools_list[0]"),
    ("karpenter.yml", {"nodepools_list": [{"name": "default", "node_class": "default", "expire_after": "30d",
                                           "disruption": {"consolidation_policy": "WhenEmpty", "consolidate_after": "1m"}}]},
     "nodepools_list[0]"),
    ("karpenter.yml", {"nodepools_node_classes": [{"name": "default", "role": "Node Role", "ami_alias": "al2023@v20251120",
                                                   "subnet_selector_terms": [{"tags": {"a": "b"}}],
                                                   "security_group_selector_terms": [{"tags": {"a": "b"}}]}]},
     "nodepools_node_classes[0].role"),
    ("karpenter.yml", {"nodepools_node_classes": [{"name": "default", "role": "NodeRole", "ami_alias": "al2023@v20251120",
                                                   "tags": {"team": "a;b"},
                                                   "subnet_selector_terms": [{"tags": {"a": "b"}}],
                                                   "security_group_selector_terms": [{"tags": {"a": "b"}}]}]},
     "nodepools_node_classes[0].tags"),
    ("karpenter.yml", {"eks_cluster_name": "ekswork\tshop"}, "eks_cluster_name"),
    ("karpenter.yml", {"nodepools_wait_timeout": -5}, "nodepools_wait_timeout"),
    ("autoscaling.yml", {"metrics_server_replicas": 0}, "metrics_server_replicas"),
    ("autoscaling.yml", {"metrics_server_replicas": "two"}, "metrics_server_replicas"),
    ("autoscaling.yml", {"metrics_server_namespace": "kube_system"}, "metrics_server_namespace"),
    ("autoscaling.yml", {"metrics_server_wait_timeout": 5}, "metrics_server_wait_timeout"),
    ("autoscaling.yml", {"metrics_server_release_name": "Metrics"}, "metrics_server_release_name"),
    ("autoscaling.yml", {"metrics_server_extra_values": {"resources": {"requests": {"cpu": "2 cores"}}}}, "metrics_server_extra_values"),
    ("autoscaling.yml", {"metrics_server_extra_values": {"podLabels": {"bad key": "x"}}}, "metrics_server_extra_values"),
    ("autoscaling.yml", {"hpa_autoscalers": [{"name": "web", "namespace": "Shop", "target": {"kind": "Deployment", "name": "web"},
                                              "min_replicas": 1, "max_replicas": 3, "cpu_utilization": 50}]},
     "hpa_autoscalers[0].namespace"),
    ("autoscaling.yml", {"hpa_autoscalers": [{"name": "web\n", "namespace": "shop", "target": {"kind": "Deployment", "name": "web"},
                                              "min_replicas": 1, "max_replicas": 3, "cpu_utilization": 50}]},
     "hpa_autoscalers[0].name"),
    ("autoscaling.yml", {"hpa_autoscalers": [{"name": "web", "namespace": "shop", "target": {"kind": "Deployment", "name": "web"},
                                              "min_replicas": -1, "max_replicas": 3, "cpu_utilization": 50}]},
     "hpa_autoscalers[0].min_replicas"),
    ("autoscaling.yml", {"demo_app_replicas": -1}, "demo_app_replicas"),
    ("autoscaling.yml", {"demo_app_cpu": "2 cores"}, "demo_app_cpu"),
    ("autoscaling.yml", {"demo_app_cpu": "0"}, "demo_app_cpu"),
    ("autoscaling.yml", {"demo_app_memory": "4 GB"}, "demo_app_memory"),
    ("autoscaling.yml", {"demo_app_namespace": "nlb_app"}, "demo_app_namespace"),
    ("autoscaling.yml", {"demo_app_namespace": "nlb-app\n"}, "demo_app_namespace"),
    ("autoscaling.yml", {"demo_app_service_name": "1service"}, "demo_app_service_name"),
    ("autoscaling.yml", {"demo_app_service_port": 70000}, "demo_app_service_port"),
    ("autoscaling.yml", {"demo_app_labels": {"app": "nginx\n"}}, "demo_app_labels"),
    ("autoscaling.yml", {"demo_app_labels": {}}, "demo_app_labels"),
    ("autoscaling.yml", {"demo_app_pod_annotations": {"bad key": "x"}}, "demo_app_pod_annotations"),
    ("autoscaling.yml", {"demo_app_service_annotations": {"x": 1}}, "demo_app_service_annotations"),
    ("autoscaling.yml", {"demo_app_load_balancer_class": "service.k8s.aws/ nlb"}, "demo_app_load_balancer_class"),
    ("autoscaling.yml", {"demo_app_image": " nginx:1.24"}, "demo_app_image"),
    ("autoscaling.yml", {"demo_app_capacity_type": "spots"}, "demo_app_capacity_type"),
    ("event_bus.yml", {"eks_cluster_region": "ap-southeast-1\n"}, "eks_cluster_region"),
    ("event_bus.yml", {"event_bus_billing_region": "us-east-1\n"}, "event_bus_billing_region"),
    ("event_bus.yml", {"event_bus_queue_name": "events.queue"}, "event_bus_queue_name"),
    ("event_bus.yml", {"event_bus_cost_topic_name": "cost topic"}, "event_bus_cost_topic_name"),
    ("event_bus.yml", {"eks_cluster_budget_name": "team:monthly"}, "eks_cluster_budget_name"),
    ("event_bus.yml", {"eks_cluster_billing_alarm_name": "alarm\tname"}, "eks_cluster_billing_alarm_name"),
    ("event_bus.yml", {"eks_cluster_name": "c" * 60, **SHORT_ROLE_NAMES}, "eks_cluster_name/event_bus_rules"),
    ("event_bus.yml", {"event_bus_billing_alarm_period_seconds": 90}, "event_bus_billing_alarm_period_seconds"),
    ("event_bus.yml", {"event_bus_budget_limit": 0}, "event_bus_budget_limit"),
    ("event_bus.yml", {"event_bus_max_receive_count": 0}, "event_bus_max_receive_count"),
    ("load.yml", {"load_generator_duration_seconds": 0}, "load_generator_duration_seconds"),
    ("load.yml", {"load_generator_simulated_cpu": "1 core"}, "load_generator_simulated_cpu"),
    ("load.yml", {"load_generator_namespace": "NLB"}, "load_generator_namespace"),
    ("load.yml", {"load_generator_concurrency": 10, "load_generator_requests": 5}, "load_generator_concurrency"),
    ("load.yml", {"load_generator_job_name": "load generator"}, "load_generator_job_name"),
]


def _aws_state(aws):
    """Everything our roles write in the AWS server, as the describe and list calls return it."""
    iam, sqs, events, ec2, eks = aws("iam"), aws("sqs"), aws("events"), aws("ec2"), aws("eks")
    roles = sorted(role["RoleName"] for role in iam.list_roles()["Roles"])
    state = {
        "roles": {name: (iam.list_role_policies(RoleName=name)["PolicyNames"],
                         [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]])
                  for name in roles},
        "instance_profiles": sorted(p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]),
        "queues": sorted(sqs.list_queues().get("QueueUrls", [])),
        "rules": sorted(rule["Name"] for rule in events.list_rules()["Rules"]),
        "tags": sorted((t["ResourceId"], t["Key"], t["Value"]) for t in ec2.describe_tags()["Tags"]),
        "access_entries": eks.list_access_entries(clusterName="eksworkshop")["accessEntries"],
        "pod_identity": eks.list_pod_identity_associations(clusterName="eksworkshop")["associations"],
        "topics": sorted(t["TopicArn"] for t in aws("sns", "us-east-1").list_topics()["Topics"]),
        "alarms": sorted(a["AlarmName"] for a in aws("cloudwatch", "us-east-1").describe_alarms()["MetricAlarms"]),
        "budgets": sorted(b["BudgetName"] for b in aws("budgets", "us-east-1").describe_budgets(AccountId="123456789012").get("Budgets", [])),
    }
    for url in state["queues"]:
        state[url] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return state


# The kinds our roles write; their resourceVersions change on any write. Leases, Events, Nodes and Pods
# are the lab's own controllers' and are left out.
KINDS = "namespaces,deployments,services,configmaps,secrets,serviceaccounts,horizontalpodautoscalers,poddisruptionbudgets," \
        "clusterroles,clusterrolebindings,roles,rolebindings,customresourcedefinitions,jobs"


def _kube_state(kube_json):
    items = kube_json(KINDS, "-A")["items"]
    return sorted((i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"], i["metadata"]["resourceVersion"]) for i in items)


# The rows run side by side (a failed validation is mostly ansible-playbook's start-up: CPU-bound, one
# per core), and the state is compared once around all of them: a row that changed anything shows there.
PARALLEL_RUNS = 2


@pytest.fixture(scope="module")
def bad_runs(lab):
    import boto3

    def aws(service, region="ap-southeast-1"):
        return boto3.client(service, endpoint_url=lab.AWS_ENDPOINT, region_name=region,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def kube_json(*args):
        return json.loads(lab.kubectl("get", *args, "-o", "json").stdout)

    before = _aws_state(aws), _kube_state(kube_json)
    with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        results = list(pool.map(lambda row: run_playbook(row[0], extra=row[1], check=False, timeout=300), BAD))
    after = _aws_state(aws), _kube_state(kube_json)
    return {"before": before, "after": after, "results": results}


@pytest.mark.parametrize("row", range(len(BAD)), ids=[f"{p}:{','.join(e)}:{i}" for i, (p, e, _) in enumerate(BAD)])
def test_bad_value_fails_naming_the_variable_and_changes_nothing(bad_runs, row):
    playbook, extra, variable = BAD[row]
    result = bad_runs["results"][row]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    failure = output[output.find("fatal:"):] if "fatal:" in output else output
    assert variable in failure, failure[-3000:]
    assert bad_runs["after"][0] == bad_runs["before"][0], f"the AWS server changed while the {len(BAD)} bad values ran"
    assert bad_runs["after"][1] == bad_runs["before"][1], f"the cluster changed while the {len(BAD)} bad values ran"


def test_the_table_covers_every_playbook_with_80_values():
    assert len(BAD) >= 80
    assert {p for p, _, _ in BAD} == {"karpenter.yml", "autoscaling.yml", "event_bus.yml", "load.yml"}


GOOD = [
    # 22: the longest cluster name whose EventBridge rule names (Karpenter-<name>-CapacityReservationInterruption)
    # stay within 64; the IAM and SQS names at their own maximum.
    ("karpenter.yml", {"eks_cluster_name": "e" * 22, "eks_cluster_node_role_name": "R" * 64, "eks_cluster_controller_role_name": "C" * 64,
                       "iam_controller_policy_name": "P" * 128, "iam_instance_profile_name": "I" * 128,
                       "eks_cluster_interruption_queue_name": "q" * 80}),
    ("karpenter.yml", {"eks_cluster_name": "c" * 22, "eks_cluster_interruption_queue_name": "Q_" + "q" * 78}),
    ("karpenter.yml", {"eks_cluster_discovery_tag_key": "k" * 128, "karpenter_replicas": 1,
                       "karpenter_controller_resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}),
    ("karpenter.yml", {"nodepools_list": [{"name": "default", "node_class": "default", "labels": {"team": "data"},
                                           "limits": {"cpu": "0", "memory": "0"}, "expire_after": "Never",
                                           "disruption": {"consolidation_policy": "WhenEmptyOrUnderutilized", "consolidate_after": "0s"}}]}),
    ("karpenter.yml", {"nodepools_list": [{"name": "balanced", "node_class": "default",
                                           "disruption": {"consolidation_policy": "Balanced", "consolidate_after": "1m"}}]}),
    ("autoscaling.yml", {"demo_app_replicas": 0, "demo_app_cpu": "1m", "demo_app_memory": "1", "demo_app_namespace": "n" * 63,
                         "demo_app_service_port": 65535, "demo_app_pod_annotations": {"note": "Données ünïcode, any text"}}),
    ("autoscaling.yml", {"metrics_server_replicas": 1, "metrics_server_wait_timeout": 10}),
    # Extra values the chart and the apiserver accept; the ServiceMonitor is not rendered without its kind.
    ("karpenter.yml", {"karpenter_extra_values": {"podLabels": {"tier": "platform"}, "priorityClassName": "system-cluster-critical",
                                                  "serviceMonitor": {"enabled": True}}}),
    # The lab inventory's two values, which -e replaces, kept.
    ("autoscaling.yml", {"metrics_server_extra_values": {"fullnameOverride": "metrics-server-chart", "apiService": {"create": False},
                                                         "podLabels": {"tier": "metrics"},
                                                         "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}}}}),
    ("event_bus.yml", {"eks_cluster_budget_name": "Budget für das Team " + "x" * 79, "eks_cluster_billing_alarm_name": "Kosten über 100 €",
                       "event_bus_cost_topic_name": "t" * 256}),
]


@pytest.mark.parametrize("playbook,extra", GOOD, ids=[f"{p}:{','.join(e)}" for p, e in GOOD])
def test_good_edge_value_passes_validation(lab, playbook, extra):
    result = run_playbook(playbook, "--check", "--tags", "validate", extra=extra, check=False, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "failed=0" in result.stdout
