"""The study config: parsed, validated against the schema (defaults filled in), errors naming the key.

The schemas ship inside the package (`isoflop/schemas/*.schema.yaml`), so an installed wheel validates a
config as a checkout does; `schema_path(name)` finds one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from isoflop.errors import UserError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def schema_path(name: str) -> Path:
    """The packaged schema `<name>.schema.yaml` (`config`, the whole study; `curate`, its curation keys)."""
    return SCHEMA_DIR / f"{name}.schema.yaml"


SCHEMA_PATH = schema_path("config")


def _load_yaml(path: Path) -> Any:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _validator_filling_defaults(schema_path: Path):
    """A Draft 2020-12 validator that also writes each property's `default` into the instance."""
    schema = _load_yaml(schema_path)
    schema_dir = schema_path.parent

    def retrieve(uri: str) -> Resource:
        fragment = _load_yaml(schema_dir / Path(uri).name)
        # A fragment's own `$schema` would make jsonschema switch to a plain validator for it,
        # which fills no defaults; it is the same dialect, so drop the declaration.
        fragment.pop("$schema", None)
        return Resource.from_contents(fragment, default_specification=DRAFT202012)

    registry = Registry(retrieve=retrieve)
    base = Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for key, prop in properties.items():
                if "default" in prop:
                    instance.setdefault(key, copy.deepcopy(prop["default"]))
        yield from check_properties(validator, properties, instance, subschema)

    extended = validators.extend(base, {"properties": properties_with_defaults})
    return extended(schema, registry=registry)


def _key_path(error) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "<top level>"


def _describe(error) -> str:
    key = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = f"under '{key}'" if key != "<top level>" else "at the top level"
        return f"unknown config key {', '.join(repr(e) for e in extra)} {where}; allowed keys: {', '.join(allowed)}"
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"config key '{key}' = {error.instance!r} is not allowed; allowed values: {allowed}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[
            error.validator
        ]
        return f"config key '{key}' = {error.instance!r} is out of range; allowed values: {bound} {error.validator_value}"
    if error.validator == "type":
        return f"config key '{key}' = {error.instance!r} has the wrong type; expected {error.validator_value}"
    return f"config key '{key}': {error.message}"


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Return a validated deep copy of `config` with every default filled in.

    Keys come back sorted (see `_sorted_keys`). Raises UserError naming the first offending key (path such as
    `plan.budgets[0]`) and the allowed values.
    """
    config = copy.deepcopy(config or {})
    validator = _validator_filling_defaults(schema_path)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.path)))
    if errors:
        raise UserError(_describe(errors[0]))
    return _sorted_keys(config)


def _sorted_keys(value):
    """Mappings with their keys in sorted order, all the way down: the order of a config file's keys then
    changes no rule's params (Snakemake compares them as written) and no content id."""
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def load_config(path: str | Path) -> dict:
    """Read a YAML study config, validate it and fill defaults."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"config file not found: {path}")
    try:
        raw = _load_yaml(path) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a mapping of config keys, not {type(raw).__name__}")
    return validate_config(raw)
