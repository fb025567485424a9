"""The lab's AWS account outlives its server: moto's state saved to a file and loaded back on start.

A real AWS account does not forget its EKS cluster, VPC, roles or the sessions it issued when one of
its endpoints restarts; moto keeps everything in memory, so without this a restarted lab AWS server
would answer as a brand-new, empty account and nothing run against the lab could converge again.

What is saved: every backend moto has created (``BackendDict._instances``: service -> account ->
region -> backend), pickled as one object graph, so that references between services (an EKS
cluster's security group in EC2, a session of an IAM role in STS) stay shared after a load. The
lab's own additions (lab/aws_server.py's access entries and pod identity associations, lab/aws_budgets.py's
notifications, lab/aws_ec2.py's capacity reservations, ...) live on moto's objects and travel with
them. Locks are saved as new, unlocked locks; moto's backend dictionaries themselves are module
globals and are referred to, not copied, so a load puts the backends back into the very dictionaries
moto's handlers read.

When it is saved (``Persistence``, WSGI middleware in front of the whole server): after every request
that can change the account, before its answer leaves, so a SIGKILL loses at most the requests in
flight, never one a client was told succeeded; and on SIGTERM (lab-down, ``stop_process``). Reads
(Describe*, List*, Get*, ...; an EKS GET) save nothing. SQS ReceiveMessage does not save either: it
is Karpenter's 20-second long poll, and only changes a message's visibility, which a restart may
reset as a real queue's visibility timeout would. A change runs under the shared side of a lock
whose exclusive side the snapshot takes, so a snapshot never holds half of a request's change;
concurrent changes are saved by one snapshot. The file is replaced atomically (``os.replace``);
it is not fsync'ed: the fault it survives is the server's death, not the machine's.

When it is loaded: by ``python -m lab.aws_server --state-file PATH`` at start, when the file exists.
lab-up starts a fresh lab's server without one (lab/ctl/services.py removes it; lab-down does too),
so a new lab is the seeded, tutorial-like account it has always been; only a restart of a running
lab's server (lab/faults.py) loads it. A snapshot moto cannot load stops the server with the reason
rather than have it answer as an empty account.
"""
import collections
import copy
import io
import os
import pickle
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs

from moto.core.base_backend import AccountSpecificBackend, BackendDict

FORMAT = 1
READ_ONLY_ACTION = re.compile(r"^(Describe|List|Get|Search|Lookup|BatchGet|Check|Simulate|Preview|Validate|Estimate)")
# Changes nothing the account must remember (see the module's docstring).
NOT_SAVED = {"ReceiveMessage"}
# Saved as new, unlocked locks of the same kind: a lock's state means nothing to another process.
_LOCKS = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


def log(message):
    print(f"lab aws: {message}", flush=True)


class SnapshotError(Exception):
    """A state file that cannot be loaded into this moto."""


# -- which BackendDict is which ------------------------------------------------------------------------
def _backend_dicts():
    return list(BackendDict._instances)


def _global_name(obj, _cache={}):  # noqa: B006 - a deliberate per-process cache
    """(module, attribute) of a moto module global (a BackendDict)."""
    key = id(obj)
    if key in _cache and _cache[key][0] is obj:
        return _cache[key][1]
    for name, module in list(sys.modules.items()):
        if not name.startswith("moto.") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is obj:
                _cache[key] = (obj, (name, attr))
                return name, attr
    raise SnapshotError(f"no moto module holds the backends of {getattr(obj, 'service_name', obj)!r}")


def _resolve(module, attr):
    import importlib

    return getattr(importlib.import_module(module), attr)


class _Fresh:
    """A defaultdict's factory that pickle can save: a new copy of what the original factory made. Stands in for
    a lambda or local function (pickle saves functions by name), such as SSM's tag store's
    `defaultdict(lambda: defaultdict(dict))`; such factories in moto make an empty container each time."""

    def __init__(self, template):
        self.template = template

    def __call__(self):
        return copy.deepcopy(self.template)


def _unnamed(function):
    return "<lambda>" in getattr(function, "__qualname__", "") or "<locals>" in getattr(function, "__qualname__", "")


def _defaultdict(kind, factory):
    made = kind.__new__(kind)
    collections.defaultdict.__init__(made, factory)
    return made


def _account(module, attr, account_id):
    return _resolve(module, attr)[account_id]


def _private_key(pem):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, password=None)


def _public_key(pem):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_public_key(pem)


def _key_reduction(obj):
    """cryptography's keys (Rust objects pickle cannot take) as PEM: moto keeps some, e.g. SNS's signing key once a
    topic delivers a message, KMS's keys, EC2 key pairs."""
    from cryptography.hazmat.primitives import serialization

    if hasattr(obj, "private_bytes"):
        return _private_key, (obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()),)
    if hasattr(obj, "public_bytes") and hasattr(obj, "public_numbers"):
        return _public_key, (obj.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),)
    return NotImplemented


class _Pickler(pickle.Pickler):
    # reducer_override, not persistent_id: pickle asks it about far fewer objects (never about a str, an int, ...);
    # on the lab's EC2 state that took a snapshot from 0.8 s to 0.03 s.
    def reducer_override(self, obj):
        kind = type(obj)
        factory = _LOCKS.get(kind)
        if factory is not None:
            return factory, ()
        # Module globals are referred to by name: a load must fill moto's own dictionaries, not copies.
        if kind is BackendDict:
            return _resolve, _global_name(obj)
        if kind is AccountSpecificBackend:
            owner = next(bd for bd in _backend_dicts() if dict.get(bd, obj.account_id) is obj)
            return _account, (*_global_name(owner), obj.account_id)
        if kind.__module__.startswith("cryptography."):
            return _key_reduction(obj)
        if isinstance(obj, collections.defaultdict) and (kind is not collections.defaultdict or _unnamed(obj.default_factory)):
            factory = _Fresh(obj.default_factory()) if _unnamed(obj.default_factory) else obj.default_factory
            # A subclass (SSM's ParameterDict) is rebuilt without its __init__, whose arguments pickle does not know.
            return _defaultdict, (kind, factory), getattr(obj, "__dict__", None) or None, None, iter(obj.items())
        return NotImplemented


def dumps():
    """The whole account as bytes. Call with no change in progress (``Persistence`` sees to it)."""
    import moto

    state = {}
    for backends in _backend_dicts():
        accounts = state.setdefault(_global_name(backends), {})
        for account_id, regions in list(dict.items(backends)):
            accounts[account_id] = dict(list(dict.items(regions)))
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({"format": FORMAT, "moto": moto.__version__, "backends": state})
    return buffer.getvalue()


def loads(data):
    """Put an account saved by ``dumps`` into moto's backends, replacing what they hold."""
    import moto

    try:
        snapshot = pickle.loads(data)  # noqa: S301 - the lab's own file, written by dumps()
    except Exception as error:  # noqa: BLE001 - whatever the reason, the same answer: not loadable
        raise SnapshotError(f"cannot read the saved AWS state: {error!r}") from error
    if not isinstance(snapshot, dict) or snapshot.get("format") != FORMAT:
        raise SnapshotError(f"the saved AWS state has format {snapshot.get('format') if isinstance(snapshot, dict) else '?'}, not {FORMAT}")
    if snapshot["moto"] != moto.__version__:
        raise SnapshotError(f"the saved AWS state is of moto {snapshot['moto']}, this server runs moto {moto.__version__}")
    BackendDict.reset()
    for (module, attr), accounts in snapshot["backends"].items():
        backends = _resolve(module, attr)
        for account_id, regions in accounts.items():
            account = backends[account_id]  # created, and the BackendDict registered as in use
            for region, backend in regions.items():
                dict.__setitem__(account, region, backend)


def save(path, data):
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def load(path):
    """Load the account saved at ``path``; False when there is none."""
    path = Path(path)
    if not path.exists():
        return False
    loads(path.read_bytes())
    return True


# -- when to save --------------------------------------------------------------------------------------
def action_of(environ, body):
    """The API action a request calls (``Service.Action``-style name only), or the HTTP method for REST."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    if body and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        form = parse_qs(body.decode(errors="replace"))
        if "Action" in form:
            return form["Action"][0]
    return environ.get("REQUEST_METHOD", "GET")


def changes_state(environ, body):
    action = action_of(environ, body)
    if action in ("GET", "HEAD", "OPTIONS") or action in NOT_SAVED:
        return False
    return not READ_ONLY_ACTION.match(action)


class _SharedExclusiveLock:
    """Many holders of the shared side, or one of the exclusive side; a waiting exclusive holder goes first."""

    def __init__(self):
        self._condition = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    def acquire_shared(self):
        with self._condition:
            while self._exclusive or self._waiting:
                self._condition.wait()
            self._shared += 1

    def release_shared(self):
        with self._condition:
            self._shared -= 1
            self._condition.notify_all()

    def acquire_exclusive(self):
        with self._condition:
            self._waiting += 1
            while self._exclusive or self._shared:
                self._condition.wait()
            self._waiting -= 1
            self._exclusive = True

    def release_exclusive(self):
        with self._condition:
            self._exclusive = False
            self._condition.notify_all()


class Persistence:
    """WSGI middleware: saves the account to ``path`` after every request that can change it."""

    def __init__(self, app, path):
        self.app = app
        self.path = Path(path)
        self._lock = _SharedExclusiveLock()
        self._save_lock = threading.Lock()
        self._changes = 0  # changing requests finished
        self._saved = 0  # of which the file holds this many

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if not changes_state(environ, body):
            return self.app(environ, start_response)
        self._lock.acquire_shared()
        try:
            # The answer is built here: werkzeug sends nothing, not even the status, before it has a body.
            iterable = self.app(environ, start_response)
            try:
                answer = list(iterable)
            finally:
                if hasattr(iterable, "close"):
                    iterable.close()
        finally:
            with self._lock._condition:
                self._changes += 1
                change = self._changes
            self._lock.release_shared()
        self.save_through(change)
        return answer

    def save_through(self, change=None):
        """Save unless the file already holds every change up to ``change`` (all of them by default)."""
        with self._save_lock:
            if change is not None and self._saved >= change:
                return
            self._lock.acquire_exclusive()
            try:
                included = self._changes
                data = self._dumps()
            except Exception as error:
                # The change is made but would not survive a restart: say so, and fail the request.
                log(f"SAVE FAILED: the account's state could not be saved to {self.path}: {error!r}")
                raise
            finally:
                self._lock.release_exclusive()
            save(self.path, data)
            self._saved = included

    @staticmethod
    def _dumps(attempts=5):
        # A read runs beside the snapshot; the one kind of change a read makes (a backend created on first
        # use of a region or account) can make pickling see a dictionary change size: try again.
        for attempt in range(attempts):
            try:
                return dumps()
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05)
        raise AssertionError("unreachable")
