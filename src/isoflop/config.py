"""The study config: parsed, validated against the schema (defaults filled in), errors naming the key.

The schemas ship inside the package (`isoflop/schemas/*.schema.yaml`), so an installed wheel validates a
config as a checkout does; `schema_path(name)` finds one.

Beyond the schema, a config is refused before any work when a number is NaN or infinite, when it holds more
than `MAX_CONFIG_VALUES` values (what a YAML alias bomb expands to), when it reads no corpus at all, or, read
from a file (`read_config_file`), when the file uses YAML aliases or asks for YTE templating.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import reprlib
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


# Far above any real study (the default config holds about 300 values), far below what a YAML alias bomb
# expands to: the walk that counts stops at the limit, so a bomb costs milliseconds, not memory.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 32  # the schema's deepest key is 4 levels down
YTE_KEY = "__use_yte__"


def _load_yaml(path: Path) -> Any:
    with open(path) as handle:
        return yaml.safe_load(handle)


class _NoAliasLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses aliases (`*name`): a study config never needs them, and a few nested
    ones expand to billions of values (the "billion laughs" bomb) in whatever walks the result."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _AliasFound(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


class _AliasFound(Exception):
    """An alias at this line (1-based) of the file being read."""


def read_config_file(path: str | Path) -> dict:
    """The mapping a YAML config file holds, read safely: no Python objects, no aliases, no YTE templates
    (refused with one line naming the file). Snakemake reads `--configfile` itself; `common.smk` rereads
    each file through this to refuse what Snakemake's own loader let through."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        try:  # JSON first, as Snakemake reads a config file (JSON has no aliases and no templates)
            raw = json.loads(text)
        except ValueError:
            raw = yaml.load(text, Loader=_NoAliasLoader) or {}  # noqa: S506 - a SafeLoader subclass
    except _AliasFound as found:
        raise UserError(f"{path}:{found.args[0]}: YAML aliases (*name) are not allowed in a study config") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: not valid YAML: {' '.join(str(err.problem or err.context).split())}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise UserError(f"{path} nests deeper than YAML can be read") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte {err.start})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a mapping of config keys, not {type(raw).__name__}")
    if YTE_KEY in raw:
        raise UserError(
            f"{path} asks for YTE templating ({YTE_KEY}), which isoflop refuses: templates are Python code "
            f"(see README, Faults and bad input)"
        )
    return raw


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

    # JSON Schema counts 8.0 as an integer; a float where a count is meant would change every run id (its
    # spec hashes 8.0, not 8) and fail later in training, so only a Python int is one here.
    strict_integers = base.TYPE_CHECKER.redefine(
        "integer", lambda checker, instance: isinstance(instance, int) and not isinstance(instance, bool))
    extended = validators.extend(base, {"properties": properties_with_defaults}, type_checker=strict_integers)
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
        return f"config key '{key}' = {_shown(error.instance)} is not allowed; allowed values: {allowed}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[
            error.validator
        ]
        return f"config key '{key}' = {_shown(error.instance)} is out of range; allowed values: {bound} {error.validator_value}"
    if error.validator == "pattern":
        return f"config key '{key}' = {_shown(error.instance)} is not allowed; allowed values: strings matching {error.validator_value}"
    if error.validator == "uniqueItems":
        first, repeat = _first_repeat(error.instance)
        return (f"config key '{key}[{repeat}]' = {_shown(error.instance[repeat])} repeats '{key}[{first}]'; "
                f"allowed values: distinct entries")
    if error.validator == "type":
        message = f"config key '{key}' = {_shown(error.instance)} has the wrong type; expected {error.validator_value}"
        if isinstance(error.instance, str) and _is_number(error.instance):
            message += " (YAML reads a number like 2.5e10 as text: write 2.5e+10)"
        return message
    return f"config key '{key}': {error.message}"


def _shown(value) -> str:
    """A value as a message shows it: short, so an error about a huge value (an alias bomb's list) stays a
    line rather than the whole expansion."""
    short = reprlib.Repr()  # Python 3.11's Repr takes no arguments
    short.maxlist = short.maxdict = 4
    short.maxlevel, short.maxstring, short.maxother = 2, 80, 80
    return short.repr(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_repeat(items: list) -> tuple[int, int]:
    """(index of the first entry, index of its first repeat) in a list with a repeated entry."""
    seen: dict = {}
    for index, item in enumerate(items):
        marker = repr(item) if isinstance(item, (dict, list)) else item
        if marker in seen:
            return seen[marker], index
        seen[marker] = index
    raise ValueError("no repeated entry")


def _check_values(config: dict) -> None:
    """Refuse a NaN or infinite number anywhere (YAML's `.nan`, `.inf`; JSON's NaN), naming its key, and a
    config of more than `MAX_CONFIG_VALUES` values or nested deeper than `MAX_CONFIG_DEPTH`. The walk keeps
    its own stack and stops at the first offence, so neither a bomb nor a deep nesting costs more than the
    limit."""
    pending = [("", config, 0)]
    seen = 0
    while pending:
        key, value, depth = pending.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise UserError(f"the config holds more than {MAX_CONFIG_VALUES:,} values (YAML aliases expanding?); "
                            f"a study config holds a few hundred")
        if depth > MAX_CONFIG_DEPTH:
            raise UserError(f"config key '{key}' nests deeper than {MAX_CONFIG_DEPTH} levels")
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"config key '{key or '<top level>'}' = {value!r} is not a finite number")
        if isinstance(value, str) and _is_path_key(key) and CONTROL_CHARACTER.search(value):
            character = CONTROL_CHARACTER.search(value).group()
            raise UserError(f"config key '{key}' = {_shown(value)} holds a control character "
                            f"(U+{ord(character):04X}); a path must be plain text")
        if isinstance(value, dict):
            children = [(f"{key}.{name}" if key else str(name), item) for name, item in value.items()]
        elif isinstance(value, list):
            children = [(f"{key}[{index}]", item) for index, item in enumerate(value)]
        else:
            continue
        pending += [(child_key, item, depth + 1) for child_key, item in reversed(children)]  # file order


# A newline, tab or other C0/DEL character in a path would split a log line, a shell command or a Snakemake
# path; no real folder needs one
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
PATH_KEYS = {"results_dir", "baseline", "path", "uri"}  # and any key ending in _path or _dir


def _is_path_key(key: str) -> bool:
    """Whether a config key (as `_check_values` spells it, e.g. `corpus.sources[0].path`) names a path."""
    name = re.sub(r"\[\d+\]$", "", key.rsplit(".", 1)[-1])
    return name in PATH_KEYS or name.endswith(("_path", "_dir"))


def _check_study(config: dict) -> None:
    """What the schema cannot say about a whole study: it must read some corpus."""
    corpus = config["corpus"]
    if not (corpus["stdlib"]["enabled"] or corpus["synthetic"]["enabled"] or corpus["sources"]):
        raise UserError("config key 'corpus': no source is enabled (corpus.stdlib.enabled and "
                        "corpus.synthetic.enabled are false and corpus.sources is empty); the study has no documents")


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Return a validated deep copy of `config` with every default filled in.

    Keys come back sorted (see `_sorted_keys`). Raises UserError naming the first offending key (path such as
    `plan.budgets[0]`) and the allowed values.
    """
    _check_values(config or {})
    config = copy.deepcopy(config or {})
    validator = _validator_filling_defaults(schema_path)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.path)))
    if errors:
        raise UserError(_describe(errors[0]))
    if schema_path == SCHEMA_PATH:
        _check_study(config)
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
    """Read a YAML study config (`read_config_file`), validate it and fill defaults."""
    return validate_config(read_config_file(path))


def register(subparsers) -> None:
    check = subparsers.add_parser(
        "check-config", help="refuse a study config before Snakemake reads it",
        description="Read a study config as isoflop does (YAML without aliases or YTE templates) and validate "
        "it: one line naming the file or key when it is refused. Snakemake evaluates a config file's YTE "
        "templates while it reads it, before any isoflop code runs, so `make study` runs this first.",
        epilog="examples:\n  isoflop check-config my-study.yaml", formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("config", help="study config file (YAML)")
    check.set_defaults(func=_check_config_command)


def _check_config_command(args) -> int:
    config = load_config(args.config)
    print(f"{args.config}: valid study config '{config['study']}'")
    return 0
