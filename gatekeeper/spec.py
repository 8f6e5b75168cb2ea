"""Release specs: loading the YAML a release manager writes, and checking it before a start.

Three layers, each reporting every problem with its field path and line:

1. structure (pydantic, via :mod:`gatekeeper.yamlfile`), with relative ``uri:`` values resolved
   against the spec file's directory into absolute ``file://`` URIs, so the running release
   never depends on the directory it was started from;
2. :func:`check_spec_against_policy`: the submitter, cohorts, regions and separation of duties;
3. :func:`verify_local_evidence`: every local file's sha256 matches the digest in the spec.

``release start`` calls :func:`load_checked_spec` (or :func:`check_spec_file`), so a spec that
would fail later is refused before anything starts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from gatekeeper.errors import Problem, SpecError
from gatekeeper.models.enums import WellKnownRole
from gatekeeper.models.policy import AccessGrantStage, Policy, Stage
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.rules import feasibility
from gatekeeper.yamlcheck import validate_model
from gatekeeper.yamlfile import (
    FieldPath,
    YamlDocument,
    did_you_mean,
    format_path,
    parse_yaml,
    read_yaml_file,
    sort_problems,
)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: ``ShortText``'s bound (models/base.py): a resolved URI must still fit the model.
_MAX_URI = 200
_RELEASE_MANAGER = WellKnownRole.RELEASE_MANAGER.value
_Findings = list[tuple[FieldPath, str]]


def load_spec(path: str | Path) -> ReleaseSpec:
    """Read and validate a release spec file.

    Raises:
        SpecError: with every structural problem, each located by field path and line.
    """
    return _load(path)[0]


def parse_spec(
    text: str | bytes, *, source: str = "<spec>", base_dir: Path | None = None
) -> ReleaseSpec:
    """Like :func:`load_spec` for text in memory; relative URIs resolve against ``base_dir``
    (the current directory when not given)."""
    document = parse_yaml(text, source=source, error=SpecError)
    return _validate(document, source, base_dir or Path.cwd())


def load_checked_spec(path: str | Path, policy: Policy) -> ReleaseSpec:
    """Load a spec and run every check against ``policy`` and the local evidence files.

    Raises:
        SpecError: with every problem found (structure, policy, digests), located by line.
    """
    spec, document = _load(path)
    problems = [
        *check_spec_against_policy(spec, policy, document),
        *verify_local_evidence(spec, document),
    ]
    if problems:
        raise SpecError(str(path), sort_problems(problems))
    return spec


def check_spec_file(path: str | Path, policy: Policy) -> list[Problem]:
    """Every problem with the spec at ``path`` under ``policy``; empty when it may start."""
    try:
        load_checked_spec(path, policy)
    except SpecError as err:
        return err.problems
    return []


def check_spec_against_policy(
    spec: ReleaseSpec, policy: Policy, document: YamlDocument | None = None
) -> list[Problem]:
    """Whether ``spec`` can run under ``policy``.

    Refused: a submitter who is not on the roster with the release_manager role; partner
    cohorts the policy does not declare or no access stage grants; no regions when an access
    stage will run; regions no requested cohort allows; a gate that cannot reach its quorum once
    the submitter and the authors of the evidence it covers are set aside. Evidence authors who
    are not on the roster are fine: authors are often outside the release process.
    """
    findings: _Findings = []
    _check_submitter(spec, policy, findings)
    _check_access(spec, policy, findings)
    _check_separation_of_duties(spec, policy, findings)
    return _located(findings, document)


def verify_local_evidence(spec: ReleaseSpec, document: YamlDocument | None = None) -> list[Problem]:
    """Hash every ``file://`` evidence item and artifact; report those whose digest differs.

    Other schemes (``https://``, ``s3://``) are checked by the evidence activity when the
    release runs, not here.
    """
    findings: _Findings = []
    items: list[tuple[FieldPath, str, str]] = [
        (("artifact",), spec.artifact.uri, spec.artifact.sha256)
    ]
    items += [(("evidence", i), e.uri, e.sha256) for i, e in enumerate(spec.evidence)]
    for path, uri, expected in items:
        problem = _file_problem(uri, expected)
        if problem:
            field, message = problem
            findings.append(((*path, field), message))
    return _located(findings, document)


def local_path(uri: str) -> Path | None:
    """The local file a ``file://`` URI names, or ``None`` for any other scheme."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return Path(url2pathname(parts.path))


def sha256_file(path: Path) -> str:
    """Lower-case hex sha256 of a file, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _load(path: str | Path) -> tuple[ReleaseSpec, YamlDocument]:
    document = read_yaml_file(path, error=SpecError)
    base_dir = Path(path).resolve().parent
    return _validate(document, str(path), base_dir), document


def _validate(document: YamlDocument, source: str, base_dir: Path) -> ReleaseSpec:
    findings: _Findings = []
    for path, uri in list(_uris(document.data)):
        resolved = _resolve_uri(uri, base_dir)
        if len(resolved) > _MAX_URI:
            message = f"resolves to a URI longer than {_MAX_URI} characters ({resolved[:60]}...)"
            findings.append((path, message))
            continue
        _set(document.data, path, resolved)
    early = _located(findings, document)
    try:
        spec = validate_model(document, ReleaseSpec, source=source, error=SpecError)
    except SpecError as err:
        raise SpecError(source, sort_problems([*early, *err.problems])) from None
    if early:
        raise SpecError(source, early)
    return spec


def _uris(data: dict[str, Any]) -> Iterator[tuple[FieldPath, str]]:
    artifact = data.get("artifact")
    if isinstance(artifact, dict) and isinstance(artifact.get("uri"), str):
        yield ("artifact", "uri"), artifact["uri"]
    evidence = data.get("evidence")
    if isinstance(evidence, list):
        for index, item in enumerate(evidence):
            if isinstance(item, dict) and isinstance(item.get("uri"), str):
                yield ("evidence", index, "uri"), item["uri"]


def _resolve_uri(uri: str, base_dir: Path) -> str:
    text = uri.strip()
    if not text or _SCHEME.match(text):
        return uri
    return (base_dir / Path(text).expanduser()).resolve().as_uri()


def _set(data: Any, path: FieldPath, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _located(findings: _Findings, document: YamlDocument | None) -> list[Problem]:
    return sort_problems(
        document.problem(path, message) if document else Problem(format_path(path), message)
        for path, message in findings
    )


def _check_submitter(spec: ReleaseSpec, policy: Policy, out: _Findings) -> None:
    person = policy.person(spec.submitter)
    if person is None:
        known = [p.id for p in policy.roster]
        hint = did_you_mean(spec.submitter, known)
        out.append((("submitter",), f"'{spec.submitter}' is not on the policy's roster{hint}"))
    elif _RELEASE_MANAGER not in person.roles:
        message = f"'{spec.submitter}' does not hold the {_RELEASE_MANAGER} role, so cannot submit"
        out.append((("submitter",), message))


def _applicable(spec: ReleaseSpec, policy: Policy) -> list[Stage]:
    return [stage for stage in policy.stages if spec.covered_model in stage.applies_to]


def _check_access(spec: ReleaseSpec, policy: Policy, out: _Findings) -> None:
    access = [s for s in _applicable(spec, policy) if isinstance(s, AccessGrantStage)]
    known = [cohort.id for cohort in policy.cohorts]
    grantable = {c for stage in access for c in (stage.cohorts or known)}
    for index, cohort_id in enumerate(spec.partner_cohorts):
        path = ("partner_cohorts", index)
        if cohort_id not in known:
            hint = did_you_mean(cohort_id, known)
            out.append((path, f"the policy declares no cohort '{cohort_id}'{hint}"))
        elif cohort_id not in grantable:
            out.append((path, f"no access stage of the policy grants cohort '{cohort_id}'"))
    if access and not spec.regions:
        stages = ", ".join(stage.id for stage in access)
        message = f"must name at least one region: the policy grants partner access ({stages})"
        out.append((("regions",), message))
    allowed = {
        region
        for cohort_id in spec.partner_cohorts
        if (cohort := policy.cohort(cohort_id)) is not None
        for region in cohort.jurisdictions
    }
    if allowed and "*" not in allowed:
        for index, region in enumerate(spec.regions):
            if region not in allowed:
                hint = did_you_mean(region, allowed)
                message = f"region '{region}' is not a jurisdiction of any requested cohort{hint}"
                out.append((("regions", index), message))


def _check_separation_of_duties(spec: ReleaseSpec, policy: Policy, out: _Findings) -> None:
    out.extend(feasibility.spec_problems(policy, spec))


def _file_problem(uri: str, expected: str) -> tuple[str, str] | None:
    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        return "uri", f"file URIs on another host ({parts.netloc}) cannot be verified"
    path = local_path(uri)
    if path is None:
        return None
    if not path.exists():
        return "uri", f"no such file: {path}"
    if not path.is_file():
        return "uri", f"{path} is not a file (pin a manifest file listing the contents instead)"
    try:
        actual = sha256_file(path)
    except OSError as err:
        return "uri", f"cannot read {path}: {err.strerror or err}"
    if actual != expected:
        return "sha256", f"does not match {path.name} (the file's sha256 is {actual})"
    return None
