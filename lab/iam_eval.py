"""A real AWS IAM policy evaluator for the lab and the tests: a Python client of lab/iam/evaluate.mjs.

lab/iam/evaluate.mjs is a persistent Node process around @cloud-copilot/iam-simulate (pinned by
lab/iam/package-lock.json, installed by ``make venv``): one JSON request per line on its stdin, one
decision per line on its stdout. lab/iam/README.md says why this evaluator and how it was checked.

IamEvaluator starts the process on first use, serialises requests with a lock (one process, one
request in flight, so threads may share an evaluator), and starts a new process when the old one
has died, retrying the request once (an evaluation has no side effects). A request the evaluator
refuses (malformed policy, unknown action, resource type that does not fit the action) raises
IamEvalError with the evaluator's message; IamEvaluatorUnavailable (a subclass) says that node or
lab/iam/node_modules is missing or that the process keeps dying.

evaluate_trust_policy() evaluates a role's trust policy for sts:AssumeRoleWithWebIdentity from an
OIDC provider (IRSA), with the context keys STS sets from the token: ``<issuer>:sub`` and
``<issuer>:aud`` (``<issuer>`` is the provider URL without https://, as the provider ARN names it).
evaluate_service_trust_policy() evaluates it for a service principal (EKS Pod Identity's
pods.eks.amazonaws.com), for sts:AssumeRole or sts:TagSession with the session tags as request tags.
"""
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

IAM_DIR = Path(__file__).resolve().parent / "iam"
SCRIPT = IAM_DIR / "evaluate.mjs"
# Present once `npm ci` has installed the evaluator (the Makefile's stamp file is next to it).
LIBRARY = IAM_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate" / "package.json"
INSTALL_HINT = "run `make venv` (it installs lab/iam's pinned Node packages with npm ci)"
CONTEXT_KEY_MODES = ("validated", "as_given")


class IamEvalError(Exception):
    """The evaluator could not evaluate a request; ``details`` holds what it returned, if anything."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details


class IamEvaluatorUnavailable(IamEvalError):
    """node or lab/iam/node_modules is missing, or the evaluator process keeps dying."""


@dataclass(frozen=True)
class Decision:
    """One evaluation. ``decision`` is Allowed, ExplicitlyDenied or ImplicitlyDenied.

    ``matched``: the statements that granted ({"policy_type", "policy", "sid", "index"}), when allowed;
    ``denied_by``: the policy types (and explicit Deny statements) that denied, when denied;
    ``near_misses``: statements whose action matched but which did not apply, each with ``why``;
    ``ignored_context_keys``: keys of the request that the Service Authorization Reference does not
    give to this action and resource (AWS would not send them), left out of the evaluation.
    """

    allowed: bool
    decision: str
    matched: list = field(default_factory=list)
    denied_by: list = field(default_factory=list)
    near_misses: list = field(default_factory=list)
    ignored_context_keys: list = field(default_factory=list)
    resource_type: str | None = None

    @property
    def matched_sids(self):
        """Sids of the granting statements (None for a statement without one)."""
        return [m.get("sid") for m in self.matched]

    def explain(self):
        """One line for an assertion message or a log."""
        if self.allowed:
            grants = ", ".join("%s/%s" % (m.get("policy"), m.get("sid")) for m in self.matched)
            return f"Allowed by {grants}"
        misses = "; ".join(f"{m.get('sid')}: {', '.join(m.get('why', []))}" for m in self.near_misses)
        by = ", ".join(d.get("sid") or d.get("policy_type", "?") for d in self.denied_by)
        return f"{self.decision} by {by or '?'}" + (f" (near misses: {misses})" if misses else "")


class IamEvaluator:
    """A client of one lab/iam/evaluate.mjs process, started lazily, shared safely between threads."""

    def __init__(self, node=None, directory=IAM_DIR, timeout=60.0):
        self._node = node
        self._directory = Path(directory)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._proc = None
        self._stderr = None
        self._buffer = b""
        self._next_id = 0

    # -- process ------------------------------------------------------------------------------------
    def _command(self):
        node = self._node or shutil.which("node")
        if not node or not (os.path.isfile(node) and os.access(node, os.X_OK)):
            raise IamEvaluatorUnavailable(
                f"node (Node.js >= 20) not found{f' at {self._node}' if self._node else ' on PATH'}: "
                f"install Node.js, then {INSTALL_HINT}"
            )
        script = self._directory / SCRIPT.name
        library = self._directory / LIBRARY.relative_to(IAM_DIR)
        if not script.is_file():
            raise IamEvaluatorUnavailable(f"{script} is missing")
        if not library.is_file():
            raise IamEvaluatorUnavailable(f"{self._directory / 'node_modules'} is missing: {INSTALL_HINT}")
        return [node, str(script)]

    def _start(self):
        command = self._command()
        self._stderr = tempfile.TemporaryFile()
        self._buffer = b""
        self._proc = subprocess.Popen(
            command, cwd=self._directory, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, close_fds=True,
        )

    def _stop(self):
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_tail(self):
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-2000:].strip()

    def _readline(self):
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], self._timeout)
            if not ready:
                raise TimeoutError(f"the IAM evaluator gave no answer in {self._timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _exchange(self, request):
        """Send one request, return its answer; None when the process died before answering."""
        if self._proc is None or self._proc.poll() is not None:
            self._stop()
            self._start()
        try:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        line = self._readline()
        return None if line is None else json.loads(line)

    def request(self, payload):
        """Send a raw request (a dict as lab/iam/evaluate.mjs reads it) and return its raw answer."""
        with self._lock:
            self._next_id += 1
            request = {**payload, "id": self._next_id}
            for attempt in (1, 2):
                try:
                    answer = self._exchange(request)
                except TimeoutError as exc:
                    self._stop()
                    raise IamEvaluatorUnavailable(str(exc)) from exc
                if answer is not None:
                    break
                tail = self._stderr_tail()
                self._stop()
                if attempt == 2:
                    raise IamEvaluatorUnavailable(
                        "the IAM evaluator process exited twice without answering" + (f": {tail}" if tail else "")
                    )
            if answer.get("id") != request["id"]:
                self._stop()
                raise IamEvaluatorUnavailable(f"the IAM evaluator answered request {answer.get('id')} to request {request['id']}")
        if "error" in answer:
            raise IamEvalError(f"IAM evaluator: {answer['error']}", answer.get("details"))
        return answer

    @property
    def pid(self):
        """PID of the running evaluator process, None before the first request or after close()."""
        with self._lock:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def close(self):
        with self._lock:
            self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- evaluation ---------------------------------------------------------------------------------
    def ping(self):
        """Start the process if needed; return the versions of the evaluator's packages."""
        return self.request({"op": "ping"})["versions"]

    def evaluate(self, *, principal, action, resource, context=None, identity_policies=(),
                 permission_boundaries=None, resource_policy=None, resource_account=None,
                 context_keys="validated"):
        """Evaluate one request as AWS does for a principal in the resource's account.

        ``identity_policies`` and ``permission_boundaries``: policy documents (dicts) or
        ``{"name": ..., "policy": ...}``; ``context``: condition keys to values (str or list of str);
        ``resource_account``: defaults to the resource ARN's account, else the principal's.
        ``context_keys="validated"`` checks the action, resource type and keys against the Service
        Authorization Reference; ``"as_given"`` takes every key as given (issuer keys of trust policies).
        """
        if context_keys not in CONTEXT_KEY_MODES:
            raise IamEvalError(f"context_keys must be one of {CONTEXT_KEY_MODES}, not {context_keys!r}")
        payload = {
            "principal": principal, "action": action, "resource": resource,
            "context": dict(context or {}), "identity_policies": list(identity_policies),
            "context_keys": context_keys,
        }
        if permission_boundaries is not None:
            payload["permission_boundaries"] = list(permission_boundaries)
        if resource_policy is not None:
            payload["resource_policy"] = resource_policy
        if resource_account is not None:
            payload["resource_account"] = resource_account
        answer = self.request(payload)
        return Decision(
            allowed=bool(answer["allowed"]), decision=answer["decision"],
            matched=answer.get("matched", []), denied_by=answer.get("denied_by", []),
            near_misses=answer.get("near_misses", []),
            ignored_context_keys=answer.get("ignored_context_keys", []),
            resource_type=answer.get("resource_type"),
        )


_default = None
_default_lock = threading.Lock()


def default_evaluator():
    """The process-wide shared evaluator (started on its first request)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = IamEvaluator()
        return _default


def oidc_issuer(provider_arn):
    """``oidc.eks.<region>.amazonaws.com/id/<id>`` from ``arn:<partition>:iam::<account>:oidc-provider/<that>``."""
    parts = provider_arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "iam" or not parts[5].startswith("oidc-provider/") or parts[5] == "oidc-provider/":
        raise IamEvalError(f"not an OIDC provider ARN: {provider_arn!r}")
    return parts[5][len("oidc-provider/"):]


def evaluate_trust_policy(trust_policy, *, role_arn, provider_arn, sub, aud, context=None, evaluator=None):
    """Would STS let a web identity token of ``provider_arn`` with ``sub``/``aud`` assume ``role_arn``?

    The trust policy is the role's resource policy; the principal is the federated provider, the
    action sts:AssumeRoleWithWebIdentity, and the token's claims become ``<issuer>:sub`` and
    ``<issuer>:aud`` (``context`` adds more keys, e.g. aws:RequestTag/* of session tags).
    """
    issuer = oidc_issuer(provider_arn)
    role_account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else None
    keys = {f"{issuer}:sub": sub, f"{issuer}:aud": aud, **(context or {})}
    return (evaluator or default_evaluator()).evaluate(
        principal=provider_arn, action="sts:AssumeRoleWithWebIdentity", resource=role_arn,
        context=keys, resource_policy=trust_policy, resource_account=role_account,
        context_keys="as_given",
    )


def evaluate_service_trust_policy(trust_policy, *, role_arn, service, action, context=None, evaluator=None):
    """Would STS let the AWS service ``service`` (a service principal, e.g. ``pods.eks.amazonaws.com``)
    perform ``action`` (sts:AssumeRole, sts:TagSession) on ``role_arn``?

    The trust policy is the role's resource policy and the service the principal; ``context`` holds the
    request's keys, e.g. the session tags as ``aws:RequestTag/*`` and ``aws:TagKeys``.
    """
    return (evaluator or default_evaluator()).evaluate(
        principal=service, action=action, resource=role_arn, context=dict(context or {}), resource_policy=trust_policy,
    )
