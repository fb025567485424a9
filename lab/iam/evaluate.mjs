// IAM policy evaluator of the lab: a persistent JSON-lines server over @cloud-copilot/iam-simulate.
//
// One request per line on stdin, one decision per line on stdout, in order. A request:
//   {"id": any, "principal": "arn:...", "action": "ec2:RunInstances", "resource": "arn:...",
//    "resource_account": "111122223333" (default: the resource ARN's account, else the principal's),
//    "context": {"aws:RequestTag/k": "v", "aws:TagKeys": ["k"]},
//    "identity_policies": [{"name": "p", "policy": {...}} or a bare policy document, ...],
//    "permission_boundaries": [same], "resource_policy": {...},
//    "context_keys": "validated" (default) | "as_given"}
// "validated" runs the library's checked simulation: the action, the resource type and every context
// key are checked against the Service Authorization Reference (keys that do not apply to the request are
// dropped and listed in ignored_context_keys, as AWS would never send them). "as_given" skips that check
// and evaluates every key as given: for trust policies, whose OIDC keys (<issuer>:sub, :aud) are per
// issuer and not in the reference.
// A decision: {"id", "allowed": bool, "decision": "Allowed"|"ExplicitlyDenied"|"ImplicitlyDenied",
//   "matched": [{"policy_type", "policy", "sid", "index"}]   (statements that granted, when allowed),
//   "denied_by": [{"policy_type", "denial_type", "policy", "sid", "index"}]   (when denied),
//   "ignored_context_keys": [...], "resource_type": "subnet"}
// A request that cannot be evaluated gets {"id", "error": "message", "details": ...}; the server goes on.
// {"op": "ping"} answers {"id", "ok": true, "versions": {...}}.
import { createInterface } from 'node:readline'
import { readFileSync } from 'node:fs'
import { getDenialReasons, getGrantReasons, runSimulation } from '@cloud-copilot/iam-simulate'
import { loadPolicy, validateIdentityPolicy, validateResourcePolicy, validateTrustPolicy } from '@cloud-copilot/iam-policy'
// The unchecked path ("as_given") needs the engine's authorize(), which the package does not export.
// These files are pinned by package-lock.json; a version bump that moves them fails at start-up here.
import { authorize } from './node_modules/@cloud-copilot/iam-simulate/dist/esm/core_engine/CoreSimulatorEngine.js'
import { AwsRequestImpl } from './node_modules/@cloud-copilot/iam-simulate/dist/esm/request/request.js'
import { RequestContextImpl } from './node_modules/@cloud-copilot/iam-simulate/dist/esm/requestContext.js'
import { DiscoveryContextKeyConstraints } from './node_modules/@cloud-copilot/iam-simulate/dist/esm/context_keys/discoveryContextKeyConstraints.js'

const versions = Object.fromEntries(
  ['iam-simulate', 'iam-policy', 'iam-data'].map((p) => {
    const file = new URL(`./node_modules/@cloud-copilot/${p}/package.json`, import.meta.url)
    return [p, JSON.parse(readFileSync(file, 'utf8')).version]
  })
)

class RequestError extends Error {
  constructor(message, details) {
    super(message)
    this.details = details
  }
}

function named(list, field, prefix) {
  if (list === undefined || list === null) return []
  if (!Array.isArray(list)) throw new RequestError(`${field} must be a list`)
  return list.map((p, i) => {
    if (p && typeof p === 'object' && 'policy' in p) {
      return { name: String(p.name ?? `${prefix}${i}`), policy: p.policy }
    }
    if (p && typeof p === 'object' && 'Statement' in p) return { name: `${prefix}${i}`, policy: p }
    throw new RequestError(`${field}[${i}] is neither a policy document nor {"name", "policy"}`)
  })
}

function accountOf(arn) {
  const parts = typeof arn === 'string' ? arn.split(':') : []
  return parts.length >= 6 && /^\d{12}$/.test(parts[4]) ? parts[4] : undefined
}

function parse(req) {
  for (const f of ['principal', 'action', 'resource']) {
    if (typeof req[f] !== 'string' || req[f] === '') throw new RequestError(`${f} must be a non-empty string`)
  }
  if (!/^[A-Za-z0-9-]+:[A-Za-z0-9*?]+$/.test(req.action)) {
    throw new RequestError(`action ${JSON.stringify(req.action)} is not service:Action`)
  }
  const context = req.context ?? {}
  if (typeof context !== 'object' || Array.isArray(context)) throw new RequestError('context must be an object')
  for (const [k, v] of Object.entries(context)) {
    const ok = typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))
    if (!ok) throw new RequestError(`context[${JSON.stringify(k)}] must be a string or a list of strings`)
  }
  const mode = req.context_keys ?? 'validated'
  if (mode !== 'validated' && mode !== 'as_given') {
    throw new RequestError(`context_keys must be "validated" or "as_given", not ${JSON.stringify(mode)}`)
  }
  const account = req.resource_account ?? accountOf(req.resource) ?? accountOf(req.principal)
  if (typeof account !== 'string') throw new RequestError('resource_account is needed: the resource ARN has no account')
  return {
    simulation: {
      request: {
        principal: req.principal,
        action: req.action,
        resource: { resource: req.resource, accountId: account },
        contextVariables: context
      },
      identityPolicies: named(req.identity_policies, 'identity_policies', 'identity'),
      permissionBoundaryPolicies: req.permission_boundaries
        ? named(req.permission_boundaries, 'permission_boundaries', 'boundary')
        : undefined,
      resourcePolicy: req.resource_policy ?? undefined,
      serviceControlPolicies: [],
      resourceControlPolicies: []
    },
    mode
  }
}

function grants(analysis) {
  return getGrantReasons(analysis).map((g) => ({
    policy_type: g.policyType,
    policy: g.policyIdentifier ?? (g.policyType === 'resource' ? 'resource_policy' : undefined),
    sid: g.statementId,
    index: g.statementIndex
  }))
}

function denials(analysis) {
  return getDenialReasons(analysis).map((d) => ({
    policy_type: d.policyType,
    denial_type: d.denialType,
    policy: d.policyIdentifier ?? d.identifier,
    sid: d.statementId,
    index: d.statementIndex
  }))
}

// Statements whose action matched but that did not apply, and why: what an implicit denial is made of.
function nearMisses(analysis) {
  const kinds = [
    ['identity', analysis.identityAnalysis],
    ['resource', analysis.resourceAnalysis],
    ['pb', analysis.permissionBoundaryAnalysis]
  ]
  return kinds.flatMap(([type, part]) =>
    (part?.unmatchedStatements ?? [])
      .filter((s) => s.actionMatch)
      .map((s) => {
        const why = []
        const e = s.explain ?? {}
        if (!s.resourceMatch) {
          const errs = [e.resources ?? []].flat().flatMap((r) => r.errors ?? [])
          why.push(`resource does not match${errs.length ? ' (' + [...new Set(errs)].join('; ') + ')' : ''}`)
        }
        if (s.principalMatch !== 'Match') why.push(`principal: ${s.principalMatch}`)
        for (const c of [e.conditions ?? []].flat().filter((c) => !c.matches)) {
          const has = c.failedBecauseMissing
            ? ' (key missing from the request)'
            : c.resolvedConditionKeyValue !== undefined ? ` (request has ${JSON.stringify(c.resolvedConditionKeyValue)})` : ''
          why.push(`condition ${c.operator} ${c.conditionKeyValue} not met${has}`)
        }
        return { policy_type: type, policy: s.policyId, sid: e.identifier, why }
      })
  )
}

function decision(result, analyses) {
  const allowed = result === 'Allowed'
  const out = { allowed, decision: result }
  if (allowed) out.matched = analyses.flatMap(grants)
  else {
    out.denied_by = analyses.flatMap((a) => (a.result === 'Allowed' ? [] : denials(a)))
    out.near_misses = analyses.flatMap(nearMisses)
  }
  return out
}

async function validated(simulation) {
  const r = await runSimulation(simulation, {})
  if (r.resultType === 'error') throw new RequestError(`simulation refused: ${r.errors.message}`, r.errors)
  if (r.resultType === 'single') {
    return {
      ...decision(r.overallResult, [r.result.analysis]),
      ignored_context_keys: r.result.ignoredContextKeys ?? [],
      resource_type: r.result.resourceType
    }
  }
  return {
    ...decision(r.overallResult, r.results.map((x) => x.analysis)),
    ignored_context_keys: [...new Set(r.results.flatMap((x) => x.ignoredContextKeys ?? []))],
    resource_type: [...new Set(r.results.map((x) => x.resourceType))].join(',')
  }
}

// The checked path validates policies inside runSimulation; this one does it here, with the same
// validators (a trust policy is the resource policy of an sts: request on a role).
function validatePolicies(simulation) {
  const errors = {}
  for (const [field, list] of [['identity_policies', simulation.identityPolicies], ['permission_boundaries', simulation.permissionBoundaryPolicies ?? []]]) {
    for (const p of list) {
      const e = validateIdentityPolicy(p.policy)
      if (e.length) errors[`${field}:${p.name}`] = e
    }
  }
  if (simulation.resourcePolicy) {
    const trust = /^sts:/i.test(simulation.request.action) && /:role\//.test(simulation.request.resource.resource)
    const e = (trust ? validateTrustPolicy : validateResourcePolicy)(simulation.resourcePolicy)
    if (e.length) errors.resource_policy = e
  }
  if (Object.keys(errors).length) throw new RequestError(`invalid policy: ${Object.keys(errors).join(', ')}`, errors)
}

function asGiven(simulation) {
  validatePolicies(simulation)
  const load = (p) => loadPolicy(p.policy, { name: p.name })
  const req = simulation.request
  const analysis = authorize({
    request: new AwsRequestImpl(
      req.principal,
      { resource: req.resource.resource, accountId: req.resource.accountId },
      req.action,
      new RequestContextImpl(req.contextVariables)
    ),
    sessionPolicy: undefined,
    identityPolicies: simulation.identityPolicies.map(load),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: simulation.resourcePolicy ? loadPolicy(simulation.resourcePolicy, { name: 'resource_policy' }) : undefined,
    permissionBoundaries: simulation.permissionBoundaryPolicies?.map(load),
    vpcEndpointPolicies: undefined,
    simulationParameters: {
      simulationMode: 'Strict',
      discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([])
    },
    serviceSettings: { s3: {} }
  })
  return { ...decision(analysis.result, [analysis]), ignored_context_keys: [] }
}

async function handle(line) {
  let req
  try {
    req = JSON.parse(line)
  } catch (e) {
    return { id: null, error: `not a JSON line: ${e.message}` }
  }
  if (req === null || typeof req !== 'object' || Array.isArray(req)) return { id: null, error: 'a request is a JSON object' }
  const id = req.id ?? null
  if (req.op === 'ping') return { id, ok: true, versions }
  try {
    const { simulation, mode } = parse(req)
    return { id, ...(mode === 'validated' ? await validated(simulation) : asGiven(simulation)) }
  } catch (e) {
    if (process.env.IAM_EVAL_DEBUG) process.stderr.write(String(e.stack) + "\n")
    return { id, error: e.message, ...(e.details ? { details: e.details } : {}) }
  }
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
for await (const line of rl) {
  if (line.trim() === '') continue
  process.stdout.write(JSON.stringify(await handle(line)) + '\n')
}
