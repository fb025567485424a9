"""IAM policy evaluators compared: correctness on lab/iam/known_cases.json and latency per evaluation.

    python -m bench.iam_eval_bench [--runs 5] [--evaluations 400]

- iam-simulate through lab/iam_eval.py (one persistent Node process): cold start (process start to
  the first decision) and warm latency per evaluation, over every known case in turn, one request at
  a time as the lab's AWS server would send them;
- moto's own evaluator (moto.iam.access_control.IAMPolicy, what moto's INITIAL_NO_AUTH_ACTION_COUNT
  authorization uses), in-process, on the same cases; a permission boundary is evaluated as a second
  policy set that must also allow.

Each figure is the median of ``runs`` runs. Results go to bench/results/iam_eval.json with the command.
"""
import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from lab.iam_eval import IAM_DIR, IamEvaluator

RESULTS = Path(__file__).resolve().parent / "results" / "iam_eval.json"
CASES = json.loads((IAM_DIR / "known_cases.json").read_text())


def simulate_request(case):
    return {"principal": CASES["principal"], "action": case["action"], "resource": case["resource"],
            "context": case["context"], "identity_policies": case["identity_policies"],
            "permission_boundaries": case.get("permission_boundaries")}


def moto_decision(case):
    from moto.iam.access_control import IAMPolicy, PermissionResult

    def evaluate(policies):
        results = [IAMPolicy(json.dumps(p)).is_action_permitted(case["action"], case["resource"], None, case["context"])
                   for p in policies]
        return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results

    allowed = evaluate(case["identity_policies"])
    if allowed and case.get("permission_boundaries"):
        allowed = evaluate(case["permission_boundaries"])
    return "allow" if allowed else "deny"


def correctness(decide):
    wrong = []
    for case in CASES["cases"]:
        try:
            got = decide(case)
        except Exception as exc:  # an evaluator that cannot evaluate a case gets it wrong
            got = f"error: {exc}"
        if got != case["expect"]:
            wrong.append({"case": case["name"], "expected": case["expect"], "got": got})
    return {"right": len(CASES["cases"]) - len(wrong), "total": len(CASES["cases"]), "wrong": wrong}


def per_evaluation_ms(decide, evaluations):
    cases = CASES["cases"]
    samples = []
    for index in range(evaluations):
        start = time.perf_counter()
        decide(cases[index % len(cases)])
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50": statistics.median(samples), "p95": samples[int(len(samples) * 0.95) - 1]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--evaluations", type=int, default=400)
    args = parser.parse_args(argv)

    cold, warm_p50, warm_p95, moto_p50, moto_p95 = [], [], [], [], []
    versions = None
    for _ in range(args.runs):
        with IamEvaluator() as evaluator:
            def simulate(case, evaluator=evaluator):
                return "allow" if evaluator.evaluate(**simulate_request(case)).allowed else "deny"

            start = time.perf_counter()
            simulate(CASES["cases"][0])
            cold.append((time.perf_counter() - start) * 1000)
            versions = evaluator.ping()
            warm = per_evaluation_ms(simulate, args.evaluations)
            warm_p50.append(warm["p50"])
            warm_p95.append(warm["p95"])
        moto = per_evaluation_ms(moto_decision, args.evaluations)
        moto_p50.append(moto["p50"])
        moto_p95.append(moto["p95"])
    with IamEvaluator() as evaluator:
        simulate_right = correctness(lambda c: "allow" if evaluator.evaluate(**simulate_request(c)).allowed else "deny")

    import moto

    def median(xs):
        return round(statistics.median(xs), 3)

    result = {
        "machine": {"cpus": 2, "python": platform.python_version()},
        "command": "python -m bench.iam_eval_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "runs": args.runs,
        "evaluations_per_run": args.evaluations,
        "iam_simulate": {
            "versions": versions,
            "known_cases": simulate_right,
            "cold_start_to_first_decision_ms": median(cold),
            "per_evaluation_ms": {"p50": median(warm_p50), "p95": median(warm_p95)},
        },
        "moto_iam_policy": {
            "version": moto.__version__,
            "known_cases": correctness(moto_decision),
            "per_evaluation_ms": {"p50": median(moto_p50), "p95": median(moto_p95)},
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("iam_simulate", "moto_iam_policy")}, indent=2))


if __name__ == "__main__":
    main()
