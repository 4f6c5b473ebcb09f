"""Check Terraform against the google provider's own schema, without a provider registry.

`terraform validate` needs the provider plugin, which comes from a registry this project's CI
and sandboxes may not reach. The provider's full schema also ships in the npm package of its
CDK for Terraform bindings (pinned in infra/tools/provider-google.txt): its `.jsii` file has a
class per resource and data source (documented as `{@link …/docs/resources/NAME google_NAME}`)
and a struct per configuration block, whose properties say whether they are optional and link
to their Terraform name (`…#argument_name`); a property typed as another struct (or a list of
one) is a nested block. This module fetches that package with `npm pack` into
.local/tools/provider-google on first use (integrity checked, locked against parallel runs),
distils the ~98 MB .jsii once into a compact schema JSON next to it, and then checks every
`google_*` resource and data block, and every `provider "google"` block, under a directory:

- unknown resource or data source type;
- unknown argument or nested block, at any depth (inside `dynamic` blocks' `content` too), and an
  argument written as a block;
- missing required argument or block (a block written as `dynamic "name"` counts as present);

and that every environment root (terraform/environments/*) pins the google provider to exactly
the version the schema describes, so the schema checked is the one applied.

    python -m infra.tools.tf_schema [DIR]   # default terraform/; exit 1 on findings,
                                            # 2 if the schema cannot be fetched
"""

from __future__ import annotations

import argparse
import base64
import difflib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import hcl2
from hcl2.utils import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
PIN_FILE = ROOT / "infra" / "tools" / "provider-google.txt"
TOOLS = ROOT / ".local" / "tools"
TERRAFORM = ROOT / "terraform"

# Bump when the distilled layout or the way it is derived changes: cached schemas of another
# format are rebuilt from the kept package.
FORMAT = 1
# Terraform's meta-arguments: allowed at the top of a resource or data block, nowhere deeper.
META_ARGUMENTS = frozenset(
    {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
)
PROVIDER_META_ARGUMENTS = frozenset({"alias"})
DYNAMIC_KEYS = frozenset({"for_each", "iterator", "labels", "content"})
# npm error codes that mean the pin itself is wrong (not that the registry is out of reach).
NPM_PIN_ERRORS = ("E404", "ETARGET", "EINTEGRITY")
HCL = SerializationOptions(with_comments=False, explicit_blocks=True, strip_string_quotes=True)
IS_BLOCK = "__is_block__"
PIN_LINE = re.compile(r"(@[\w.-]+/[\w.-]+)@(\S+)\s+(sha512-\S+)")
# `{@link https://registry.terraform.io/providers/SOURCE/VERSION/docs/… TEXT}` in jsii docs.
LINK = re.compile(
    r"\{@link (https://registry\.terraform\.io/providers/([\w.-]+/[\w.-]+)/([^/\s]+)/docs\S*)"
    r" ([^}]*)\}"
)


class SchemaUnavailable(RuntimeError):
    """The package is not cached and cannot be fetched (no npm, registry out of reach)."""


class SchemaError(RuntimeError):
    """The package is not what the pin says, or its .jsii is not laid out as expected."""


# ---- the pin --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    """`@cdktf/provider-google@VERSION sha512-…` from infra/tools/provider-google.txt."""

    name: str
    version: str
    integrity: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


def read_pin(path: Path = PIN_FILE) -> Pin:
    lines = [line.strip() for line in path.read_text().splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    match = PIN_LINE.fullmatch(entries[0]) if len(entries) == 1 else None
    if match is None:
        raise SchemaError(f"{path}: expected one line `@scope/name@VERSION sha512-…`")
    return Pin(match[1], match[2], match[3])


# ---- fetching and distilling ----------------------------------------------------------------


def integrity_of(path: Path) -> str:
    """npm's integrity string (Subresource Integrity, sha512) of a file."""
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def fetch_package(
    pin: Pin, dest: Path, env: Mapping[str, str] | None = None, retries: int = 1
) -> Path:
    """`npm pack` the pinned package into dest; return the tarball, its integrity checked.

    Raises SchemaUnavailable when npm is missing or cannot reach the registry, SchemaError when
    the registry answers but the pin is wrong (no such version, other content)."""
    npm = shutil.which("npm")
    if npm is None:
        raise SchemaUnavailable(f"npm is not installed: cannot fetch {pin.spec}")
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        npm, "pack", pin.spec, "--json", "--ignore-scripts", "--pack-destination", str(dest),
        f"--fetch-retries={retries}", "--fetch-retry-mintimeout=2000",
        "--fetch-retry-maxtimeout=5000",
    ]  # fmt: skip
    # Run outside the repository so no project .npmrc or package.json is read.
    environment = dict(env or os.environ)
    result = subprocess.run(  # noqa: S603 (a fixed argument list, no shell)
        command, cwd=dest, env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = " / ".join(lines[-3:]) or f"exit status {result.returncode}"
        if any(re.search(rf"\b{code}\b", result.stderr) for code in NPM_PIN_ERRORS):
            raise SchemaError(f"npm pack {pin.spec}: {reason}")
        raise SchemaUnavailable(f"npm pack {pin.spec} failed (registry unreachable?): {reason}")
    try:
        tarball = dest / str(json.loads(result.stdout)[0]["filename"])
    except (ValueError, LookupError, TypeError) as error:
        unexpected = result.stdout[:200]
        raise SchemaError(f"npm pack {pin.spec}: unexpected output {unexpected!r}") from error
    actual = integrity_of(tarball)
    if actual != pin.integrity:
        tarball.unlink()
        raise SchemaError(f"{pin.spec}: integrity {actual} is not the pinned {pin.integrity}")
    return tarball


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    handle = archive.extractfile(f"package/{name}")
    if handle is None:
        raise SchemaError(f"package/{name} is not a file")
    with handle:
        return handle.read()


def read_package(tarball: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """package.json and the .jsii assembly, read from the tarball (nothing is extracted)."""
    import gzip

    with tarfile.open(tarball, "r:gz") as archive:
        package: dict[str, Any] = json.loads(_member(archive, "package.json"))
        assembly: dict[str, Any] = json.loads(_member(archive, ".jsii"))
        # jsii may store a compressed assembly behind a redirect.
        if assembly.get("schema") == "jsii/file-redirect":
            data = _member(archive, assembly["filename"])
            if assembly.get("compression") == "gzip":
                data = gzip.decompress(data)
            assembly = json.loads(data)
    return package, assembly


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def distil(package: Mapping[str, Any], assembly: Mapping[str, Any]) -> dict[str, Any]:
    """The compact schema: provider version; resource, data source and provider types → block
    id; blocks[id] = {terraform name: [required (0/1), nested block id or -1]}. Blocks are
    shared by id, so recursive structures stay finite."""
    provider = package.get("cdktf", {}).get("provider", {})
    source = str(provider.get("name", "")).removeprefix("registry.terraform.io/")
    version = str(provider.get("version", ""))
    if not source or not version:
        raise SchemaError("package.json names no cdktf.provider name/version")
    types: Mapping[str, Any] = assembly["types"]
    prefix = assembly["name"] + "."
    ids: dict[str, int] = {}
    blocks: list[dict[str, list[int]]] = []
    versions: set[str] = set()

    def struct_of(type_ref: Mapping[str, Any]) -> str | None:
        """The struct a property holds, directly or as a list of it (then it is a block)."""
        if "fqn" in type_ref:
            fqn = str(type_ref["fqn"])
            return fqn if types.get(fqn, {}).get("datatype") else None
        if "collection" in type_ref:
            collection = type_ref["collection"]
            return struct_of(collection["elementtype"]) if collection["kind"] == "array" else None
        if "union" in type_ref:
            found = [struct_of(member) for member in type_ref["union"]["types"]]
            return next((fqn for fqn in found if fqn), None)
        return None

    def properties(fqn: str) -> Iterator[dict[str, Any]]:
        spec = types[fqn]
        yield from spec.get("properties", [])
        for parent in spec.get("interfaces", []):  # cdktf.TerraformMetaArguments is not ours
            if parent.startswith(prefix):
                yield from properties(parent)

    def terraform_name(prop: Mapping[str, Any]) -> str:
        links = LINK.findall(json.dumps(prop.get("docs", {})))
        for url, _source, link_version, _text in links:
            versions.add(link_version)
            if "#" in url:
                return str(url.rsplit("#", 1)[1])
        return _snake(str(prop["name"]))  # two properties document no link (their docs break it)

    def block_id(fqn: str) -> int:
        if fqn in ids:
            return ids[fqn]
        ids[fqn] = len(blocks)
        block: dict[str, list[int]] = {}
        blocks.append(block)
        for prop in properties(fqn):
            name = terraform_name(prop)
            if name in block:
                raise SchemaError(f"{fqn}: two properties are named {name}")
            child = struct_of(prop["type"])
            required = 0 if prop.get("optional") else 1
            block[name] = [required, block_id(child) if child else -1]
        return ids[fqn]

    kinds = {
        "cdktf.TerraformResource": "resources",
        "cdktf.TerraformDataSource": "data_sources",
        "cdktf.TerraformProvider": "providers",
    }
    found: dict[str, dict[str, int]] = {kind: {} for kind in kinds.values()}
    for fqn, spec in sorted(types.items()):
        kind = kinds.get(spec.get("base", ""))
        if kind is None:
            continue
        links = LINK.findall(spec.get("docs", {}).get("summary", ""))
        config = [p for p in spec["initializer"]["parameters"] if p["name"] == "config"]
        if len(links) != 1 or len(config) != 1 or "fqn" not in config[0]["type"]:
            raise SchemaError(f"{fqn}: no `Represents a {{@link … NAME}}` or no config struct")
        _url, link_source, link_version, name = links[0]
        versions.add(link_version)
        if link_source != source:
            raise SchemaError(f"{fqn} documents {link_source}, not {source}")
        if name in found[kind]:
            raise SchemaError(f"two {kind} are named {name}")
        found[kind][name] = block_id(config[0]["type"]["fqn"])
    if versions != {version}:
        raise SchemaError(f"links name versions {sorted(versions)}, package.json {version}")
    if not found["resources"] or not found["data_sources"] or len(found["providers"]) != 1:
        raise SchemaError("the assembly has no resources, data sources or provider")
    return {
        "format": FORMAT,
        "package": f"{assembly['name']}@{assembly['version']}",
        "provider_source": source,
        "provider_version": version,
        **found,
        "blocks": blocks,
    }


class Argument(NamedTuple):
    required: bool
    block: int | None  # the nested block's id, None for a plain argument


@dataclass(frozen=True)
class Schema:
    package: str
    integrity: str
    provider_source: str
    provider_version: str
    resources: dict[str, int]
    data_sources: dict[str, int]
    providers: dict[str, int]
    blocks: list[dict[str, Argument]]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Schema:
        blocks = [
            {name: Argument(bool(req), None if kid < 0 else kid) for name, (req, kid) in b.items()}
            for b in data["blocks"]
        ]
        return cls(
            package=data["package"],
            integrity=data["integrity"],
            provider_source=data["provider_source"],
            provider_version=data["provider_version"],
            resources=dict(data["resources"]),
            data_sources=dict(data["data_sources"]),
            providers=dict(data["providers"]),
            blocks=blocks,
        )


def schema_path(pin: Pin, tools: Path = TOOLS) -> Path:
    return tools / "provider-google" / f"schema-{pin.version}.json"


def _cached(path: Path, pin: Pin) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    key = (data.get("format"), data.get("package"), data.get("integrity"))
    return data if key == (FORMAT, pin.spec, pin.integrity) else None


def build_schema(pin: Pin, tools: Path = TOOLS, env: Mapping[str, str] | None = None) -> Path:
    """The cached schema JSON for the pin, fetched and distilled first if need be (locked, so
    parallel test workers fetch once). Returns its path."""
    home = tools / "provider-google"
    home.mkdir(parents=True, exist_ok=True)
    target = schema_path(pin, tools)
    with (tools / ".provider-google.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _cached(target, pin) is not None:
            return target
        tarball = home / f"{pin.name.lstrip('@').replace('/', '-')}-{pin.version}.tgz"
        if not tarball.exists() or integrity_of(tarball) != pin.integrity:
            with tempfile.TemporaryDirectory(dir=home) as scratch:
                fetched = fetch_package(pin, Path(scratch), env)
                fetched.replace(tarball)
        package, assembly = read_package(tarball)
        data = distil(package, assembly)
        if data["package"] != pin.spec:
            raise SchemaError(f"{tarball.name} holds {data['package']}, not {pin.spec}")
        data["integrity"] = pin.integrity
        partial = target.with_suffix(".tmp")
        partial.write_text(json.dumps(data, separators=(",", ":")))
        partial.replace(target)
    return target


@functools.cache
def load_schema(pin_file: Path = PIN_FILE, tools: Path = TOOLS) -> Schema:
    """The schema of the pinned package: from the cache, else fetched and distilled."""
    pin = read_pin(pin_file)
    data = _cached(schema_path(pin, tools), pin)
    if data is None:
        data = _cached(build_schema(pin, tools), pin)
        assert data is not None
    return Schema.from_json(data)


# ---- checking -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    file: Path
    line: int
    block: str  # `resource google_x.name`, `data google_x.name`, `provider google`, `terraform`
    path: str  # nested block path inside it (`template.containers`), "" at its top
    message: str

    def __str__(self) -> str:
        where = f"{self.block} {self.path}".rstrip()
        return f"{self.file}:{self.line}: {where}: {self.message}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # every block checked, as in Finding.block


def _is_block_list(value: object) -> bool:
    return isinstance(value, list) and any(isinstance(i, dict) and i.get(IS_BLOCK) for i in value)


def _bodies(value: object) -> list[dict[str, Any]]:
    """The bodies of a nested block's value: block syntax or an object (list) literal;
    expressions (strings such as "${var.x}") have no body to check."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def _suggest(name: str, choices: Iterator[str] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


class _Checker:
    def __init__(self, schema: Schema, report: Report, file: Path, line: int, block: str) -> None:
        self.schema, self.report = schema, report
        self.file, self.line, self.block = file, line, block

    def add(self, path: list[str], message: str) -> None:
        finding = Finding(self.file, self.line, self.block, ".".join(path), message)
        self.report.findings.append(finding)

    def body(
        self, body: Mapping[str, Any], block: int, path: list[str], meta: frozenset[str]
    ) -> None:
        """Check a block's body against schema block `block`; `meta` are names to pass over."""
        arguments = self.schema.blocks[block]
        present: set[str] = set()
        for key, value in body.items():
            if key == IS_BLOCK or key in meta:
                continue
            if key == "dynamic" and "dynamic" not in arguments:
                for dynamic in _bodies(value):
                    for name, spec in dynamic.items():
                        if name != IS_BLOCK:
                            present.add(name)
                            self.dynamic(name, spec, arguments, path)
                continue
            argument = arguments.get(key)
            if argument is None:
                kind = "block" if _is_block_list(value) else "argument"
                self.add(path, f"unknown {kind} {key}{_suggest(key, list(arguments))}")
                continue
            present.add(key)
            if argument.block is None:
                if _is_block_list(value):
                    self.add(path, f"{key} is an argument (`{key} = …`), not a block")
                continue
            for nested in _bodies(value):
                self.body(nested, argument.block, [*path, key], frozenset())
        for name, argument in sorted(arguments.items()):
            if argument.required and name not in present:
                kind = "block" if argument.block is not None else "argument"
                self.add(path, f"missing required {kind} {name}")

    def dynamic(
        self, name: str, spec: object, arguments: Mapping[str, Argument], path: list[str]
    ) -> None:
        """`dynamic "name" { for_each … content { … } }`: content is a `name` block's body."""
        argument = arguments.get(name)
        if argument is None:
            self.add(path, f'unknown block dynamic "{name}"{_suggest(name, list(arguments))}')
            return
        if argument.block is None:
            self.add(path, f'dynamic "{name}": {name} is an argument, not a block')
            return
        for dynamic in _bodies(spec):
            for key in dynamic:
                if key not in DYNAMIC_KEYS and key != IS_BLOCK:
                    self.add([*path, name], f'dynamic "{name}" has no argument {key}')
            for content in _bodies(dynamic.get("content")):
                self.body(content, argument.block, [*path, name], frozenset())


def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        document: dict[str, Any] = hcl2.load(handle, serialization_options=HCL)
    return document


def _line(text: str, *labels: str) -> int:
    """The line a block starts on (`resource "TYPE" "NAME" {`), 0 if not found."""
    words = [re.escape(labels[0]), *(re.escape(f'"{label}"') for label in labels[1:])]
    pattern = r"\s+".join(words)
    match = re.search(rf"^[ \t]*{pattern}\s*\{{", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def _uses_beta(body: Mapping[str, Any]) -> bool:
    return "google-beta" in str(body.get("provider", ""))


def check_file(path: Path, schema: Schema, report: Report, shown: Path | None = None) -> None:
    """Check one .tf file's google blocks into report; `shown` is the path findings name."""
    text = path.read_text()
    document = parse(path)
    file = shown or path
    kinds = (
        ("resource", schema.resources, "resource type"),
        ("data", schema.data_sources, "data source"),
    )
    for kind, known, noun in kinds:
        for entry in document.get(kind, []):
            for type_name, named in entry.items():
                if type_name == IS_BLOCK or not type_name.startswith(("google_", "google-beta_")):
                    continue
                for label, body in named.items():
                    if label == IS_BLOCK:
                        continue
                    block = f"{kind} {type_name}.{label}"
                    line = _line(text, kind, type_name, label)
                    checker = _Checker(schema, report, file, line, block)
                    report.checked.append(block)
                    if _uses_beta(body):
                        checker.add([], "uses google-beta, whose schema is not pinned or checked")
                    elif type_name not in known:
                        hint = _suggest(type_name, list(known))
                        checker.add([], f"unknown {noun} {type_name}{hint}")
                    else:
                        checker.body(body, known[type_name], [], META_ARGUMENTS)
    for entry in document.get("provider", []):
        for name, body in entry.items():
            if name in ("google", "google-beta"):
                block = f"provider {name}"
                checker = _Checker(schema, report, file, _line(text, "provider", name), block)
                report.checked.append(block)
                if name not in schema.providers:
                    checker.add([], f"{name}'s schema is not pinned or checked")
                else:
                    checker.body(body, schema.providers[name], [], PROVIDER_META_ARGUMENTS)


def tf_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)


def google_pins(environment: Path) -> list[tuple[Path, str | None]]:
    """(file, version constraint) of each `required_providers { google = … }` in a root."""
    pins: list[tuple[Path, str | None]] = []
    for path in tf_files(environment):
        for terraform in parse(path).get("terraform", []):
            for required in terraform.get("required_providers", []):
                google = required.get("google")
                if isinstance(google, dict):
                    pins.append((path, google.get("version")))
    return pins


def pinned_exactly(constraint: str | None, version: str) -> bool:
    return constraint is not None and re.sub(r"\s+", "", constraint).lstrip("=") == version


def check_pins(root: Path, schema: Schema, report: Report, base: Path) -> None:
    """Every environment root (ROOT/environments/*) pins google to the schema's version."""
    environments = root / "environments"
    roots = sorted(p for p in environments.iterdir() if p.is_dir()) if environments.is_dir() else []
    for environment in roots:
        pins = google_pins(environment)
        block = f"terraform required_providers ({environment.name})"
        if not pins:
            first = tf_files(environment)[0] if tf_files(environment) else environment
            report.findings.append(
                Finding(_shown(first, base), 0, block, "", "google is not in required_providers")
            )
        for path, constraint in pins:
            if not pinned_exactly(constraint, schema.provider_version):
                line = _line(path.read_text(), "required_providers")
                message = (
                    f"google is pinned to {constraint!r}, not exactly {schema.provider_version!r}"
                    f" (the version of the checked schema, {schema.package})"
                )
                report.findings.append(Finding(_shown(path, base), line, block, "", message))


def _shown(path: Path, base: Path) -> Path:
    try:
        return path.relative_to(base)
    except ValueError:
        return path


def check(root: Path = TERRAFORM, schema: Schema | None = None, base: Path = ROOT) -> Report:
    """Check every .tf under root; findings name files relative to base."""
    schema = schema or load_schema()
    report = Report()
    for path in tf_files(root):
        check_file(path, schema, report, _shown(path, base))
    check_pins(root, schema, report, base)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=TERRAFORM, help="default: terraform/")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        schema = load_schema()
    except SchemaUnavailable as error:
        print(f"schema unavailable: {error}", file=sys.stderr)
        return 2
    report = check(args.root.resolve(), schema, Path.cwd())
    for finding in report.findings:
        print(finding)
    elapsed = time.monotonic() - started
    print(
        f"{len(report.checked)} block(s) checked against {schema.provider_source} "
        f"{schema.provider_version} ({schema.package}) in {elapsed:.1f}s: "
        f"{len(report.findings)} finding(s)",
        file=sys.stderr,
    )
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
