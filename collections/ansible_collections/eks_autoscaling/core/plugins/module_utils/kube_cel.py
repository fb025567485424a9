# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CEL evaluation for CRD x-kubernetes-validations rules, with the Kubernetes CEL libraries the rules use.

The CEL language itself comes from the `common-expression-language` package (a Rust CEL interpreter,
module `cel`) and its `cel.stdlib` extensions, which include cel-go's strings library (`split`, `join`,
`lowerAscii`, ...) that Kubernetes enables. What Kubernetes adds on top and `cel` lacks is implemented here,
with the semantics of the Kubernetes CEL documentation ("CEL in Kubernetes", "Kubernetes CEL libraries"):

* regex library: ``<string>.find(<regex>) -> string`` (first match, "" if none) and
  ``<string>.findAll(<regex>[, <limit>]) -> list(string)`` (all matches, at most limit when limit >= 0).
* lists library: ``<list>.isSorted()`` (``sum``, ``min``, ``max`` come with ``cel.stdlib``).

Regexes follow RE2 syntax in Kubernetes; Python's ``re`` accepts every RE2 construct the CRDs use
(classes, anchors, groups, repetition). A rule whose evaluation fails (no such key, a bad int() parse)
is an error, as in the apiserver, which reports it as an invalid value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    import cel
    from cel import stdlib as cel_stdlib

    HAS_CEL = True
    CEL_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported to the user by the callers
    HAS_CEL = False
    CEL_IMPORT_ERROR = exc


class CelError(Exception):
    """A rule that does not compile or whose evaluation fails."""


def _regex(pattern):
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CelError("invalid regex %r: %s" % (pattern, exc))


def k8s_find(value, pattern):
    """Kubernetes regex library: the first match of pattern in value, or "" when there is none."""
    match = _regex(pattern).search(value)
    return match.group(0) if match else ""


def k8s_find_all(value, pattern, limit=-1):
    """Kubernetes regex library: every match of pattern in value, at most limit of them when limit >= 0."""
    matches = [m.group(0) for m in _regex(pattern).finditer(value)]
    return matches if limit < 0 else matches[:limit]


def k8s_is_sorted(values):
    """Kubernetes lists library: true if the list is in ascending order (its elements of one comparable type)."""
    values = list(values)
    kinds = set(type(v) for v in values)
    if len(kinds) > 1 and not kinds <= {int, float}:
        raise CelError("no such overload: isSorted on a list of mixed types")
    return all(a <= b for a, b in zip(values, values[1:]))


# Names the Kubernetes libraries add to CEL, bound to the functions above.
KUBERNETES_FUNCTIONS = {
    "find": k8s_find,
    "findAll": k8s_find_all,
    "isSorted": k8s_is_sorted,
}


def plain(value):
    """A copy of value made of plain dict/list/str/int/float/bool/None, as CEL bindings expect.

    Ansible hands filters tagged or lazy subclasses of str, dict and list; the CEL bindings want the base types.
    """
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return dict((str(k), plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


_PROGRAMS = {}


def compile_rule(rule):
    """The compiled program of a rule, cached: a CRD's rules are evaluated for every object."""
    if not HAS_CEL:
        raise CelError("the Python package common-expression-language (module cel) is required: %s" % CEL_IMPORT_ERROR)
    program = _PROGRAMS.get(rule)
    if program is None:
        try:
            program = cel.compile(rule)
        except Exception as exc:
            raise CelError("compilation failed: %s" % exc)
        _PROGRAMS[rule] = program
    return program


def _context(variables):
    context = cel.Context()
    cel_stdlib.add_stdlib_to_context(context)
    for name, function in KUBERNETES_FUNCTIONS.items():
        context.add_function(name, function)
    for name, value in variables.items():
        context.add_variable(name, plain(value))
    return context


def references(rule, name):
    """Whether a rule mentions the variable name (oldSelf for transition rules) outside string literals."""
    without_strings = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", rule)
    return re.search(r"(?<![\w.])%s\b" % re.escape(name), without_strings) is not None


def evaluate(rule, **variables):
    """The value of a CEL expression with the given variables (self=..., oldSelf=...); CelError if it fails."""
    program = compile_rule(rule)
    try:
        return program.execute(_context(variables))
    except CelError:
        raise
    except Exception as exc:
        if isinstance(exc, KeyError):
            raise CelError("no such key: %s" % exc)
        raise CelError(str(exc).split(". Check")[0])
