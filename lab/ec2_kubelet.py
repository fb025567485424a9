"""Instances become nodes: what each instance's kubelet does after boot, for the lab's EC2 instances.

Karpenter launches instances in the lab's AWS server (CreateFleet). No machine boots there, so this
process does, for every instance Karpenter launched (tag `karpenter.sh/nodepool`), what the AL2023
image's nodeadm and kubelet would do with the instance's user data:

* a `running` instance registers a Node named like EC2's private DNS name, with providerID
  `aws:///<zone>/<instance-id>`, capacity from the instance type (lab/instance_types.py, the
  catalogue the AWS server offers) and allocatable as the kubelet computes it (kube-reserved of the
  EKS formula, or what the user data's kubelet config sets, and the eviction threshold);
* the labels (`--node-labels`) and taints (`registerWithTaints`, Karpenter's startup and
  `karpenter.sh/unregistered` taints among them) are the ones the launch carried: read from the
  NodeConfig documents of the instance's user data, the way nodeadm reads them. So the capacity type
  Karpenter asked for is the one the node has;
* a `shutting-down` or `terminated` instance's Node is deleted, as EKS's cloud controller does.

kwok then simulates the Node (heartbeats, pods) because of its `kwok.x-k8s.io/node` annotation.
"""
import argparse
import base64
import email
import sys
import time

import yaml

from lab.instance_types import CATALOGUE

NODEPOOL_TAG = "karpenter.sh/nodepool"
NODECONFIG_TYPE = "application/node.eks.aws"
GONE_STATES = ("shutting-down", "terminated")


def node_configs(user_data):
    """The NodeConfig documents of an instance's user data (a MIME multi-part archive or one document)."""
    text = user_data.strip()
    documents = []
    if text.startswith("MIME-Version:") or text.startswith("Content-Type:"):
        message = email.message_from_string(text)
        parts = message.walk() if message.is_multipart() else [message]
        for part in parts:
            if part.get_content_type() == NODECONFIG_TYPE:
                documents.append(part.get_payload(decode=True).decode())
    elif text:
        documents.append(text)
    configs = []
    for document in documents:
        for item in yaml.safe_load_all(document):
            if isinstance(item, dict) and item.get("kind") == "NodeConfig":
                configs.append(item)
    return configs


def kubelet_settings(user_data):
    """(labels, taints, kubelet config) as nodeadm merges them: later documents win, flags add up."""
    labels, taints, config = {}, [], {}
    for node_config in node_configs(user_data):
        kubelet = (node_config.get("spec") or {}).get("kubelet") or {}
        kubelet_config = dict(kubelet.get("config") or {})
        taints = kubelet_config.pop("registerWithTaints", None) or taints
        config.update(kubelet_config)
        for flag in kubelet.get("flags") or []:
            name, _, value = flag.partition("=")
            # nodeadm hands the flags to the kubelet through a shell line: a value may be quoted.
            value = value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'" else value
            if name == "--node-labels":
                for pair in value.split(","):
                    if pair:
                        key, _, value = pair.partition("=")
                        labels[key] = value
            elif name == "--register-with-taints":
                for spec in value.split(","):
                    key_value, _, effect = spec.partition(":")
                    key, _, value = key_value.partition("=")
                    taints.append({"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect})
    return labels, taints, config


def _mib(quantity):
    quantity = str(quantity)
    for suffix, factor in (("Gi", 1024), ("Mi", 1), ("Ki", 1 / 1024)):
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**20


def _millicores(quantity):
    quantity = str(quantity)
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def kube_reserved(cpus, pods):
    """EKS's kube-reserved (nodeadm, and Karpenter's own prediction): memory 11 MiB per pod + 255 MiB,
    CPU 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% of the rest."""
    millicores = cpus * 1000
    cpu = 0.0
    for start, end, share in ((0, 1000, 0.06), (1000, 2000, 0.01), (2000, 4000, 0.005), (4000, 1 << 31, 0.0025)):
        if millicores >= start:
            cpu += (min(millicores, end) - start) * share
    return {"cpu": cpu, "memory": 11 * pods + 255}


def node_manifest(instance, user_data, region):
    """The Node an instance's kubelet registers."""
    instance_type = instance["InstanceType"]
    if instance_type not in CATALOGUE:
        raise ValueError(f"instance {instance['InstanceId']} has type {instance_type}, which the lab's catalogue lacks")
    arch, cpus, mem_gib, catalogue_pods, _price, extra = CATALOGUE[instance_type]
    labels, taints, config = kubelet_settings(user_data)
    pods = int(config.get("maxPods") or catalogue_pods)
    reserved = kube_reserved(cpus, pods)
    kube = config.get("kubeReserved") or {}
    system = config.get("systemReserved") or {}
    eviction = (config.get("evictionHard") or {}).get("memory.available", "100Mi")
    cpu_reserved = _millicores(kube["cpu"]) if "cpu" in kube else reserved["cpu"]
    cpu_reserved += _millicores(system.get("cpu", "0"))
    mem_reserved = _mib(kube["memory"]) if "memory" in kube else reserved["memory"]
    mem_reserved += _mib(system.get("memory", "0")) + _mib(eviction)
    zone = instance["Placement"]["AvailabilityZone"]
    name = instance.get("PrivateDnsName") or f"{instance['InstanceId']}.{region}.compute.internal"
    capacity = {"cpu": str(cpus), "memory": f"{mem_gib}Gi", "pods": str(pods), "ephemeral-storage": "20Gi", **extra}
    allocatable = {
        "cpu": f"{int(cpus * 1000 - cpu_reserved)}m",
        "memory": f"{int(mem_gib * 1024 - mem_reserved)}Mi",
        "pods": str(pods),
        "ephemeral-storage": "18Gi",
        **extra,
    }
    # What the kubelet and the cloud provider put on every node, under what the launch asked for.
    node_labels = {
        "kubernetes.io/arch": arch,
        "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name,
        "node.kubernetes.io/instance-type": instance_type,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
        "type": "kwok",
        **labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": node_labels,
        },
        "spec": {"providerID": f"aws:///{zone}/{instance['InstanceId']}", "taints": taints},
        "status": {"capacity": capacity, "allocatable": allocatable},
    }


class Bridge:
    def __init__(self, args):
        import boto3
        from kubernetes import client, config

        self.region = args.region
        self.ec2 = boto3.client("ec2", endpoint_url=args.aws_endpoint, region_name=args.region,
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        api = config.new_client_from_config(config_file=args.kubeconfig)
        self.core = client.CoreV1Api(api)
        self.api = api
        self.client = client
        self.registered = {}  # instance id -> node name

    def log(self, message):
        print(f"lab ec2-kubelet: {message}", flush=True)

    def user_data(self, instance_id):
        answer = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        value = (answer.get("UserData") or {}).get("Value") or ""
        return base64.b64decode(value).decode(errors="replace") if value else ""

    def instances(self):
        found = []
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=[{"Name": "tag-key", "Values": [NODEPOOL_TAG]}]):
            for reservation in page["Reservations"]:
                found.extend(reservation["Instances"])
        return found

    def existing_nodes(self):
        nodes = self.core.list_node().items
        return {n.spec.provider_id: n.metadata.name for n in nodes if n.spec and n.spec.provider_id}

    def step(self):
        nodes = self.existing_nodes()
        for instance in self.instances():
            instance_id, state = instance["InstanceId"], instance["State"]["Name"]
            provider_id = f"aws:///{instance['Placement']['AvailabilityZone']}/{instance_id}"
            if state in GONE_STATES:
                if provider_id in nodes:
                    self.log(f"instance {instance_id} is {state}: deleting node {nodes[provider_id]}")
                    try:
                        self.core.delete_node(nodes[provider_id])
                    except self.client.exceptions.ApiException as error:
                        if error.status != 404:
                            raise
                self.registered.pop(instance_id, None)
            elif state == "running" and provider_id not in nodes and instance_id not in self.registered:
                manifest = node_manifest(instance, self.user_data(instance_id), self.region)
                self.core.create_node(manifest)
                # The kubelet then posts the node's status; the apiserver ignores status on create.
                self.core.patch_node_status(manifest["metadata"]["name"], {"status": manifest["status"]})
                self.registered[instance_id] = manifest["metadata"]["name"]
                capacity_type = manifest["metadata"]["labels"].get("karpenter.sh/capacity-type", "?")
                self.log(f"instance {instance_id} ({instance['InstanceType']}, {capacity_type}) registered as node {manifest['metadata']['name']}")

    def run(self):
        while True:
            try:
                self.step()
            except Exception as error:  # noqa: BLE001 - the AWS server or apiserver may be restarting
                self.log(f"error: {error}")
            time.sleep(1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--aws-endpoint", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    args = parser.parse_args(argv)
    bridge = Bridge(args)
    if args.once:
        bridge.step()
        return
    bridge.run()


if __name__ == "__main__":
    sys.exit(main())
