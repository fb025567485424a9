"""Runs the real Karpenter AWS controller the way its Deployment says, as the pod's kubelet would.

The `karpenter` role installs Karpenter's Helm chart. kwok only simulates pods, so the chart's pods
never run anything; this process plays their kubelet and EKS's pod identity webhook for ONE replica
(the leader), on this machine:

* it waits for the chart's Deployment (label app.kubernetes.io/name=karpenter, container
  `controller`) and starts `karpenter-aws` with the container's environment resolved as the kubelet
  resolves it (value, fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef). So the cluster
  name, endpoint, interruption queue and every other setting come from what the role rendered, and a
  wrong value breaks the lab as it would break EKS;
* the controller talks to the apiserver with a token of the Deployment's service account (the chart's
  RBAC applies, as in a pod), not as the lab's admin;
* AWS credentials come the way EKS's pod identity webhook gives them when the pod starts. With an EKS
  Pod Identity association for the service account (looked up in the lab's AWS server, as the webhook
  knows its cluster's associations): AWS_CONTAINER_CREDENTIALS_FULL_URI, the lab's stand-in for the EKS
  Pod Identity Agent (lab/pod_identity_agent.py, served by this process), and
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, a token for the audience `pods.eks.amazonaws.com` that the agent
  exchanges with EKS Auth AssumeRoleForPodIdentity. Otherwise, with the service account's
  `eks.amazonaws.com/role-arn` annotation (IRSA): AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, a token for
  the audience `sts.amazonaws.com`, which the SDK exchanges with AssumeRoleWithWebIdentity at the lab's
  STS. No static keys are handed over; with neither, the controller gets no credentials at all;
* a change of the pod template or of the service account restarts the controller (a rollout); the
  Deployment deleted (helm uninstall) stops it. An association made or removed later reaches the
  controller at its next restart, as on EKS, where the webhook acts when the pod is created.

The process listens on the lab's Karpenter ports (the pod's would collide on a shared host) and serves
the Pod Identity Agent's endpoint on a port of its own. Its log goes to .lab/logs/karpenter.log, its
state to .lab/karpenter-pod.json for `lab status`.
"""
import argparse
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import yaml

from lab import pod_identity_agent

APP_LABEL = "app.kubernetes.io/name=karpenter"
CONTAINER = "controller"
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
STS_AUDIENCE = "sts.amazonaws.com"
POD_IDENTITY_AUDIENCE = "pods.eks.amazonaws.com"
# The projected token's file for each audience, named as the webhook names them.
TOKEN_FILES = {STS_AUDIENCE: "token", POD_IDENTITY_AUDIENCE: "eks-pod-identity-token"}
# The pod identity webhook's default token lifetime; the kubelet renews at 80% of it.
TOKEN_SECONDS = 86400
TOKEN_REFRESH_SECONDS = int(TOKEN_SECONDS * 0.8)


class PodSpecError(Exception):
    """The Deployment cannot run as written (a pod would not start either); the message says why."""


def _quantity(value):
    """A Kubernetes quantity as a float of base units (cores, bytes)."""
    value = str(value)
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
                "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * suffixes[suffix]
    return float(value)


def _resource_field(container, ref):
    """resourceFieldRef as the kubelet resolves it: the value divided by the divisor, rounded up."""
    import math

    kind, _, resource = ref["resource"].partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(resource)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(resource)
    if value is None:
        # No limit: the kubelet reports the node's allocatable; the lab node's is unbounded here.
        return str(sys.maxsize) if kind == "limits" else "0"
    # A divisor of 0 (the chart writes "0") means the default, 1, as in the kubelet.
    divisor = _quantity(ref.get("divisor") or "1") or 1.0
    return str(math.ceil(_quantity(value) / divisor))


def resolve_env(deployment, container, lookup):
    """The container's environment as the kubelet builds it. `lookup(kind, namespace, name)` reads a
    ConfigMap's or Secret's data (decoded) or returns None."""
    namespace = deployment["metadata"]["namespace"]
    pod_spec = deployment["spec"]["template"]["spec"]
    fields = {
        "metadata.namespace": namespace,
        "metadata.name": f"{deployment['metadata']['name']}-lab",
        "spec.serviceAccountName": pod_spec.get("serviceAccountName", "default"),
        "spec.nodeName": "lab-host",
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    env = {}
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = str(item["value"])
            continue
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            if path not in fields:
                raise PodSpecError(f"env {name}: fieldRef {path} is not supported by the lab")
            env[name] = fields[path]
        elif "resourceFieldRef" in source:
            env[name] = _resource_field(container, source["resourceFieldRef"])
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind = "configmap" if "configMapKeyRef" in source else "secret"
            ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
            data = lookup(kind, namespace, ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise PodSpecError(f"env {name}: {kind} {namespace}/{ref['name']} has no key {ref['key']}")
            env[name] = data[ref["key"]]
        else:
            env[name] = ""
    return env


def webhook_env(service_account, association, work, region, aws_endpoint, agent_url):
    """What EKS's pod identity webhook injects for the service account: (env, the audience of the token
    it projects or None, what the credentials are, for the log; None without any)."""
    env = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region, "AWS_STS_REGIONAL_ENDPOINTS": "regional",
           # The lab's AWS endpoint stands for every AWS endpoint the pod would reach.
           "AWS_ENDPOINT_URL": aws_endpoint,
           # The SDK builds the web identity provider's STS client before the shared endpoint applies.
           "AWS_ENDPOINT_URL_STS": aws_endpoint,
           # Nothing else may give the SDK credentials: not the host's files, not an instance role.
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"}
    if association is not None:
        # An association wins over a role annotation: the webhook then injects the container credentials
        # alone, no AWS_ROLE_ARN (amazon-eks-pod-identity-webhook: "Container credentials method takes
        # precedence"). Only IRSA variables written in the pod spec itself would still win, since the Go
        # SDK v2's default chain tries web identity before the container provider: the EKS user guide's
        # "credentials earlier in the chain continue to be used".
        env.update({"AWS_CONTAINER_CREDENTIALS_FULL_URI": agent_url,
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(Path(work) / TOKEN_FILES[POD_IDENTITY_AUDIENCE])})
        return env, POD_IDENTITY_AUDIENCE, f"role {association['roleArn']} by pod identity association {association['associationId']}"
    role_arn = ((service_account.get("metadata") or {}).get("annotations") or {}).get(ROLE_ARN_ANNOTATION)
    if role_arn:
        env.update({"AWS_ROLE_ARN": role_arn, "AWS_WEB_IDENTITY_TOKEN_FILE": str(Path(work) / TOKEN_FILES[STS_AUDIENCE])})
        return env, STS_AUDIENCE, f"role {role_arn} by IRSA"
    return env, None, None


def pod_identity_association(eks, cluster_name, namespace, service_account):
    """The pod identity association of the service account, as the webhook finds it, or None."""
    found = eks.list_pod_identity_associations(clusterName=cluster_name, namespace=namespace,
                                               serviceAccount=service_account)["associations"]
    if not found:
        return None
    return eks.describe_pod_identity_association(clusterName=cluster_name, associationId=found[0]["associationId"])["association"]


class Kube:
    """The few apiserver calls this process makes, as the lab's admin."""

    def __init__(self, kubeconfig):
        from kubernetes import client, config

        self._api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.apps = client.AppsV1Api(self._api_client)
        self.core = client.CoreV1Api(self._api_client)
        self.client = client
        kc = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = kc["clusters"][0]["cluster"]
        self.server = cluster["server"]
        ca = cluster.get("certificate-authority-data")
        if ca is None and cluster.get("certificate-authority"):
            ca = base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
        self.ca_data = ca

    def controller_deployment(self):
        items = self.apps.list_deployment_for_all_namespaces(label_selector=APP_LABEL).items
        found = [self._api_client.sanitize_for_serialization(d) for d in items]
        found = [d for d in found if any(c["name"] == CONTAINER for c in d["spec"]["template"]["spec"]["containers"])]
        return sorted(found, key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"]))[0] if found else None

    def service_account(self, namespace, name):
        try:
            sa = self.core.read_namespaced_service_account(name, namespace)
        except self.client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise
        return self._api_client.sanitize_for_serialization(sa)

    def token(self, namespace, name, audiences=None):
        spec = self.client.V1TokenRequestSpec(audiences=audiences or [], expiration_seconds=TOKEN_SECONDS)
        answer = self.core.create_namespaced_service_account_token(name, namespace, self.client.AuthenticationV1TokenRequest(spec=spec))
        return answer.status.token

    def lookup(self, kind, namespace, name):
        try:
            if kind == "configmap":
                return self.core.read_namespaced_config_map(name, namespace).data or {}
            data = self.core.read_namespaced_secret(name, namespace).data or {}
            return {key: base64.b64decode(value).decode() for key, value in data.items()}
        except self.client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise


def pod_kubeconfig(server, ca_data, token, namespace):
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "pod",
        "clusters": [{"name": "lab", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "lab", "user": "sa", "namespace": namespace}}],
    })


def spec_fingerprint(deployment, service_account):
    """What a rollout would change: the pod template and the service account's annotations."""
    watched = {"template": deployment["spec"]["template"],
               "sa": ((service_account or {}).get("metadata") or {}).get("annotations") or {}}
    return hashlib.sha256(json.dumps(watched, sort_keys=True).encode()).hexdigest()[:16]


class Supervisor:
    def __init__(self, args):
        self.args = args
        self.kube = Kube(args.kubeconfig)
        self.work = Path(args.state_dir) / "karpenter-pod"
        self.work.mkdir(parents=True, exist_ok=True)
        self.status_file = Path(args.state_dir) / "karpenter-pod.json"
        self.proc = None
        self.fingerprint = None
        self.tokens_at = 0
        self.token_audience = None
        self.current = None
        self.stopping = threading.Event()
        # EKS's side of the pod: its webhook reads the cluster's associations, its agent serves the
        # credentials; both act for EKS, so they use the lab's admin keys, never the controller's.
        self.eks = boto3.client("eks", endpoint_url=args.aws_endpoint, region_name=args.region,
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        self.agent = pod_identity_agent.serve(args.pod_identity_agent_port, args.aws_endpoint, args.region, args.cluster_name)

    def log(self, message):
        print(f"lab karpenter-pod: {message}", flush=True)

    def write_status(self, state, **extra):
        self.status_file.write_text(json.dumps({"state": state, "pid": self.proc.pid if self.proc else None, **extra}))

    def write_tokens(self, deployment):
        namespace = deployment["metadata"]["namespace"]
        sa_name = deployment["spec"]["template"]["spec"].get("serviceAccountName", "default")
        for audience, file_name in TOKEN_FILES.items():
            # Only the projected token the webhook chose is there, as in the pod.
            if audience == self.token_audience:
                (self.work / file_name).write_text(self.kube.token(namespace, sa_name, [audience]))
            else:
                (self.work / file_name).unlink(missing_ok=True)
        api_token = self.kube.token(namespace, sa_name)
        (self.work / "kubeconfig").write_text(pod_kubeconfig(self.kube.server, self.kube.ca_data, api_token, namespace))
        self.tokens_at = time.time()

    def start(self, deployment, service_account):
        container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == CONTAINER)
        env = resolve_env(deployment, container, self.kube.lookup)
        namespace = deployment["metadata"]["namespace"]
        sa_name = deployment["spec"]["template"]["spec"].get("serviceAccountName", "default")
        association = pod_identity_association(self.eks, self.args.cluster_name, namespace, sa_name)
        aws, self.token_audience, credentials = webhook_env(
            service_account or {}, association, self.work, self.args.region, self.args.aws_endpoint, self.agent.url)
        self.write_tokens(deployment)
        env.update(aws)
        env.update({
            "KUBECONFIG": str(self.work / "kubeconfig"),
            # In a pod, controller-runtime reads its namespace from the mounted service account
            # files; a process outside a pod is told the same namespace.
            "LEADER_ELECTION_NAMESPACE": deployment["metadata"]["namespace"],
            "METRICS_PORT": str(self.args.metrics_port),
            "HEALTH_PROBE_PORT": str(self.args.health_port),
            "HOME": str(self.work), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        })
        name = f"{deployment['metadata']['namespace']}/{deployment['metadata']['name']}"
        self.log(f"starting the controller of Deployment {name} (generation {deployment['metadata'].get('generation')}), "
                 f"credentials: {credentials or 'NONE: no pod identity association and no ' + ROLE_ARN_ANNOTATION + ' annotation'}")
        (self.work / "env.json").write_text(json.dumps({k: v for k, v in env.items() if k != "PATH"}, indent=1, sort_keys=True))
        self.proc = subprocess.Popen([self.args.binary], env=env, stdin=subprocess.DEVNULL, stdout=sys.stdout, stderr=sys.stderr)
        self.current = name
        self.write_status("running", deployment=name, credentials=credentials)

    def stop(self, reason):
        if self.proc is None:
            return
        self.log(f"stopping the controller ({reason})")
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.fingerprint = None
        self.write_status("waiting")

    def step(self):
        deployment = self.kube.controller_deployment()
        if deployment is None:
            self.stop("its Deployment is gone") if self.proc else None
            self.write_status("waiting")
            return
        namespace = deployment["metadata"]["namespace"]
        sa_name = deployment["spec"]["template"]["spec"].get("serviceAccountName", "default")
        service_account = self.kube.service_account(namespace, sa_name)
        if service_account is None:
            self.stop(f"service account {namespace}/{sa_name} is gone") if self.proc else None
            self.write_status("waiting", reason=f"no service account {namespace}/{sa_name}")
            return
        if (deployment["spec"].get("replicas") or 0) == 0:
            self.stop("scaled to 0") if self.proc else None
            self.write_status("waiting", reason="scaled to 0")
            return
        fingerprint = spec_fingerprint(deployment, service_account)
        if self.proc is not None and self.proc.poll() is not None:
            self.log(f"the controller exited with {self.proc.returncode}; restarting it, as the kubelet would")
            self.proc = None
            time.sleep(2)
        if fingerprint != self.fingerprint and self.proc is not None:
            self.stop("its pod template or service account changed")
        if self.proc is None:
            try:
                self.start(deployment, service_account)
                self.fingerprint = fingerprint
            except PodSpecError as error:
                self.log(f"cannot start: {error}")
                self.write_status("failed", reason=str(error))
        elif time.time() - self.tokens_at > TOKEN_REFRESH_SECONDS:
            self.write_tokens(deployment)

    def run(self):
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        self.write_status("waiting")
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception as error:  # noqa: BLE001 - the apiserver may be restarting: keep going
                self.log(f"error: {error}")
            self.stopping.wait(1)
        self.stop("lab-down")
        self.agent.shutdown()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--aws-endpoint", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--health-port", type=int, required=True)
    parser.add_argument("--cluster-name", required=True, help="the EKS cluster the pod runs in (its associations, its agent's)")
    parser.add_argument("--pod-identity-agent-port", type=int, required=True)
    Supervisor(parser.parse_args(argv)).run()


if __name__ == "__main__":
    main()
