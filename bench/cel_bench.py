"""CEL libraries for the CRD validation, measured on the CRDs' own rules: python -m bench.cel_bench.

Candidates from PyPI: `common-expression-language` (module cel, Rust interpreter) and `cel-python`
(module celpy, pure Python). Both must be importable; the project venv has only the first, so run it in a
throwaway venv:

    python3.11 -m venv /tmp/celbench && /tmp/celbench/bin/pip install common-expression-language==0.10.0 \
        cel-python==0.5.0 pyyaml && /tmp/celbench/bin/python -m bench.cel_bench

For each library: whether it installs on this Python, how many of the rules of the NodePool and
EC2NodeClass CRDs (karpenter-crd chart of the lab's Karpenter version) compile, how many evaluate on
sample objects natively and with the Kubernetes functions of our module_utils/kube_cel.py added, whether
its results agree with the expected values of hand-checked cases (Kubernetes CEL semantics), and the
median time of evaluating every rule once (5 runs). Results: bench/results/cel.json.
"""
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results" / "cel.json"

# Hand-checked cases: (rule, self, expected) with the value Kubernetes gives (an exception = "error").
CASES = [
    ('self.find("^([^/]+)").endsWith("karpenter.sh")', "karpenter.sh/capacity-type", True),
    ('self.find("^([^/]+)").endsWith("karpenter.sh")', "example.com/x", False),
    ("self.split('@')[0] in ['al2', 'al2023']", "al2023@latest", True),
    ("self.matches('^[a-zA-Z0-9]+@.+$')", "al2023", False),
    ("self.all(x, (x.operator == 'Gt') ? (x.values.size() == 1 && int(x.values[0]) >= 0) : true)",
     [{"operator": "Gt", "values": ["-1"]}], False),
    ("self.all(x, (x.operator == 'Gt') ? int(x.values[0]) >= 0 : true)", [{"operator": "Gt", "values": ["x"]}], "error"),
    ("self.all(x, has(x.schedule) == has(x.duration))", [{"nodes": "1", "schedule": "@daily"}], False),
    ("self.filter(x, has(x.rootVolume)?x.rootVolume==true:false).size() <= 1", [{"rootVolume": True}, {"rootVolume": True}], False),
    ("(has(self.role) && !has(self.instanceProfile)) || (!has(self.role) && has(self.instanceProfile))", {"role": "r"}, True),
    ("self.all(k, !k.startsWith('kubernetes.io/cluster'))", {"kubernetes.io/cluster/x": "owned"}, False),
    ("self.all(x, !self[x].startsWith('-'))", {"cpu": "-1"}, False),
    ("self.missing == 1", {"a": 1}, "error"),
]


def crd_rules():
    from lab import labctl

    templates = labctl.karpenter_crd_chart() / "templates"
    rules = []

    def walk(node, value):
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations") or []:
                rules.append((rule["rule"], value))
            for key, sub in (node.get("properties") or {}).items():
                walk(sub, value.get(key) if isinstance(value, dict) else None)
            if isinstance(node.get("items"), dict):
                walk(node["items"], value[0] if isinstance(value, list) and value else None)
            if isinstance(node.get("additionalProperties"), dict):
                walk(node["additionalProperties"], next(iter(value.values()), None) if isinstance(value, dict) and value else None)

    for name, sample in (("karpenter.sh_nodepools.yaml", SAMPLE_POOL), ("karpenter.k8s.aws_ec2nodeclasses.yaml", SAMPLE_CLASS)):
        text = "\n".join(line for line in (templates / name).read_text().splitlines() if "{{" not in line)
        crd = yaml.safe_load(text)
        walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], sample)
    # Transition rules need oldSelf: on a create the apiserver skips them, so does the benchmark.
    return [(rule, value) for rule, value in rules if "oldSelf" not in rule and value is not None]


SAMPLE_POOL = {"spec": {
    "template": {"metadata": {"labels": {"intent": "apps"}}, "spec": {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
        "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                         {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["5"], "minValues": 1}]}},
    "disruption": {"consolidateAfter": "1m", "budgets": [{"nodes": "10%"}, {"nodes": "0", "schedule": "@daily", "duration": "8h"}]},
    "limits": {"cpu": "1000"}}}
SAMPLE_CLASS = {"spec": {
    "role": "KarpenterNodeRole-eksworkshop", "amiSelectorTerms": [{"alias": "al2023@v20251120"}],
    "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "eksworkshop"}}],
    "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "eksworkshop"}}],
    "tags": {"team": "a"}, "kubelet": {"maxPods": 110, "systemReserved": {"cpu": "100m"}, "evictionSoft": {"memory.available": "10%"},
                                       "evictionSoftGracePeriod": {"memory.available": "1m"}, "evictionHard": {"memory.available": "5%"}},
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {"volumeSize": "100Gi"}}],
    "metadataOptions": {"httpTokens": "required"}}}


class RustCel(object):
    name = "common-expression-language"

    def __init__(self, with_kubernetes):
        import cel
        from cel import stdlib

        from ansible_collections.eks_autoscaling.core.plugins.module_utils import kube_cel

        self.cel, self.stdlib, self.kube_cel, self.with_kubernetes = cel, stdlib, kube_cel, with_kubernetes

    def compile(self, rule):
        return self.cel.compile(rule)

    def run(self, program, value):
        context = self.cel.Context()
        self.stdlib.add_stdlib_to_context(context)
        if self.with_kubernetes:
            for name, function in self.kube_cel.KUBERNETES_FUNCTIONS.items():
                context.add_function(name, function)
        context.add_variable("self", value)
        return program.execute(context)


class CelPython(object):
    name = "cel-python"

    def __init__(self, with_kubernetes):
        import celpy

        from ansible_collections.eks_autoscaling.core.plugins.module_utils import kube_cel

        self.celpy, self.env = celpy, celpy.Environment()
        self.functions = {}
        if with_kubernetes:
            # celpy lacks both the Kubernetes regex library and cel-go's strings.split.
            self.functions = {"find": lambda s, p: celpy.celtypes.StringType(kube_cel.k8s_find(s, p)),
                              "split": lambda s, sep: celpy.celtypes.ListType([celpy.celtypes.StringType(x) for x in s.split(sep)])}

    def compile(self, rule):
        return self.env.program(self.env.compile(rule), functions=self.functions)

    def run(self, program, value):
        result = program.evaluate({"self": self.celpy.json_to_cel(value)})
        if isinstance(result, Exception):
            raise result
        return result


def outcome(library, program, value):
    try:
        result = library.run(program, value)
    except Exception:  # noqa: BLE001 - an evaluation error is an outcome
        return "error"
    return bool(result) if isinstance(result, (bool, int)) and not isinstance(result, str) else result


def measure(factory):
    entry = {}
    try:
        native, extended = factory(False), factory(True)
    except ImportError as exc:
        return {"installed": False, "error": str(exc)}
    entry["installed"] = True
    rules = crd_rules()
    for label, library in (("native", native), ("with_kubernetes_functions", extended)):
        compiled, evaluated, programs = 0, 0, []
        for rule, value in rules:
            try:
                program = library.compile(rule)
            except Exception:  # noqa: BLE001
                continue
            compiled += 1
            if outcome(library, program, value) != "error":
                evaluated += 1
                programs.append((program, value))
        correct = 0
        for rule, value, expected in CASES:
            try:
                got = outcome(library, library.compile(rule), value)
            except Exception:  # noqa: BLE001
                got = "error"
            correct += got == expected
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            for program, value in programs:
                library.run(program, value)
            timings.append(time.perf_counter() - started)
        entry[label] = {"rules": len(rules), "compiled": compiled, "evaluated_on_valid_samples": evaluated,
                        "hand_checked_cases": len(CASES), "agree_with_kubernetes": correct,
                        "median_seconds_all_rules_once": round(statistics.median(timings), 5)}
    return entry


def main():
    results = {"python": platform.python_version(), "runs": 5,
               "libraries": {"common-expression-language": measure(RustCel), "cel-python": measure(CelPython)}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
