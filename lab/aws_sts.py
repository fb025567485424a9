"""STS AssumeRoleWithWebIdentity that checks the token as STS does, for IRSA in the lab.

moto hands out credentials for any token. AWS STS, per the AssumeRoleWithWebIdentity API reference and
the IAM OIDC documentation, first:

* verifies the token's signature (RS256) with the signing keys of its issuer: STS reads them from the
  issuer's discovery document; in the lab, lab-up copies the apiserver's /openid/v1/jwks to the file
  named by LAB_OIDC_JWKS_FILE, keyed by issuer (InvalidIdentityToken otherwise);
* requires an IAM OIDC provider in the account for the token's `iss` (InvalidIdentityToken:
  "No OpenIDConnect provider found in your account for <iss>"), and the token's `aud` in that
  provider's client ID list (InvalidIdentityToken: "Incorrect token audience");
* refuses a token past its `exp` (ExpiredTokenException);
* evaluates the role's trust policy for the federated principal (the provider's ARN), action
  sts:AssumeRoleWithWebIdentity and the context keys `<issuer host/path>:sub` and `:aud` taken from
  the token (AccessDenied: "Not authorized to perform sts:AssumeRoleWithWebIdentity"). The trust
  policy is evaluated by the lab's IAM evaluator (lab/iam_eval.py), the one that authorizes every
  other call.

Only then does moto issue the credentials.
"""
import base64
import json
import os
import time

from moto.core.exceptions import ServiceException
from moto.iam.models import iam_backends
from moto.sts.responses import TokenResponse

JWKS_ENV = "LAB_OIDC_JWKS_FILE"


class InvalidIdentityToken(ServiceException):
    code = "InvalidIdentityToken"


class ExpiredTokenException(ServiceException):
    code = "ExpiredTokenException"


class AccessDenied(ServiceException):
    code = "AccessDenied"


def _b64(segment):
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _int(value):
    return int.from_bytes(_b64(value), "big")


def decode_verified(token, jwks_by_issuer):
    """The claims of a JWT whose RS256 signature verifies with its issuer's keys."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header, claims = json.loads(_b64(header_b64)), json.loads(_b64(claims_b64))
        signature = _b64(signature_b64)
    except (ValueError, AttributeError):
        raise InvalidIdentityToken("The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.") from None
    if header.get("alg") != "RS256":
        raise InvalidIdentityToken(f"The web identity token uses the unsupported algorithm {header.get('alg')!r}.")
    keys = (jwks_by_issuer.get(claims.get("iss")) or {}).get("keys") or []
    for key in keys:
        if key.get("kty") != "RSA" or (header.get("kid") and key.get("kid") != header.get("kid")):
            continue
        public = rsa.RSAPublicNumbers(_int(key["e"]), _int(key["n"])).public_key()
        try:
            public.verify(signature, f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
            return claims
        except InvalidSignature:
            continue
    raise InvalidIdentityToken("The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.")


def issuer_jwks():
    """The issuers' signing keys lab-up registered ({issuer: JWKS}), as STS would fetch them."""
    path = os.environ.get(JWKS_ENV)
    if not path or not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def check_web_identity(account_id, role_arn, token, now=None, jwks=None, trust_allows=None):
    """Raise what STS answers for a token that may not assume the role; return the claims otherwise."""
    claims = decode_verified(token, issuer_jwks() if jwks is None else jwks)
    if claims.get("exp", 0) <= (now or time.time()):
        raise ExpiredTokenException("Token expired: current date/time is past the token's exp.")
    issuer = claims["iss"]
    provider_url = issuer.removeprefix("https://")
    iam = iam_backends[account_id]["aws"]
    provider = next((p for p in iam.open_id_providers.values() if p.url == provider_url), None)
    if provider is None:
        raise InvalidIdentityToken(f"No OpenIDConnect provider found in your account for {issuer}")
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    audience = next((a for a in audiences if a in provider.client_id_list), None)
    if audience is None:
        raise InvalidIdentityToken("Incorrect token audience")
    role_name = role_arn.rsplit("/", 1)[-1]
    role = next((r for r in iam.roles.values() if r.name == role_name), None)
    if role is None:
        raise AccessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity")
    trust_allows = trust_allows or _trust_policy_allows
    context = {f"{provider_url}:sub": claims.get("sub", ""), f"{provider_url}:aud": audience}
    if not trust_allows(role.assume_role_policy_document, provider.arn, "sts:AssumeRoleWithWebIdentity", context, role.arn):
        print(f"lab aws: DENIED sts:AssumeRoleWithWebIdentity on {role.arn} for {claims.get('sub')} "
              f"(aud {audience}): the role's trust policy does not admit the token", flush=True)
        raise AccessDenied("Not authorized to perform sts:AssumeRoleWithWebIdentity")
    return claims


def _trust_policy_allows(policy, provider_arn, _action, context, role_arn):
    from lab.iam_eval import evaluate_trust_policy

    issuer = provider_arn.split(":oidc-provider/", 1)[1]
    decision = evaluate_trust_policy(
        json.loads(policy) if isinstance(policy, str) else policy, role_arn=role_arn, provider_arn=provider_arn,
        sub=context[f"{issuer}:sub"], aud=context[f"{issuer}:aud"])
    return decision.allowed


_moto_assume_role_with_web_identity = TokenResponse.assume_role_with_web_identity


def assume_role_with_web_identity(self):
    check_web_identity(self.current_account, self._get_param("RoleArn"), self._get_param("WebIdentityToken") or "")
    return _moto_assume_role_with_web_identity(self)


def install():
    TokenResponse.assume_role_with_web_identity = assume_role_with_web_identity
