"""``--scenario-set PATH=VALUES``: variants of scenario files, for ``setpoint sweep`` and ``setpoint tune``.

The same settings as a policy's ``--set`` (:mod:`simulators.policy_set`: lists, ranges, ``[*]``
for every item of a list, ``x1.5`` multiples and ``PATH+=`` offsets of the file's own values),
applied to each scenario of the grid: every combination of the values is one more scenario,
named after the file's with the values (``trace-nasa-july[startupDelay=90s]``). What a policy is
checked on before production is then not only the load it was tuned on but the same load with
slower pods, higher peaks or another week of the trace::

    --scenario-set 'spec.services[*].startupDelay=30s,90s,180s'
    --scenario-set 'spec.services[*].load[0].trace.peakRps=x0.8,x1.5'
    --scenario-set 'spec.services[*].load[0].trace.start+=1d,2d'

Every variant is validated as a scenario before anything runs; errors name the
``--scenario-set``, the scenario file and the field.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from controller.errors import FieldError, ScenarioError
from controller.policy.yamlsrc import read_documents
from simulators.policy_set import (SetError, Setting, assigned_document, assigned_text, check_grid, grid, invalid_with,
                                   parse_setting, policy_text, variant_label)
from simulators.load import traces_digest
from simulators.sweep import ScenarioInput

OPTION = "--scenario-set"


def parse_scenario_settings(texts: Sequence[str], option: str = OPTION) -> list[Setting]:
    """Each ``PATH=VALUES`` of ``option`` parsed (SetError naming the option when malformed)."""
    settings = [parse_setting(t, option=option) for t in texts]
    check_grid(settings)  # too many combinations: said before any scenario file is read
    return settings


def scenario_variants(inputs: Sequence[ScenarioInput], settings: Sequence[Setting]) -> list[ScenarioInput]:
    """Each scenario with every combination of ``settings`` (the scenarios themselves when there
    are none), each variant validated: SetError naming the option, the file and the field."""
    if not settings:
        return list(inputs)
    from simulators.scenario import load_scenario_text

    combos = grid(settings)
    out = []
    for base in inputs:
        data = documents_data(base.text)[0]  # read_scenario_input validated it: one mapping
        for assigned in combos:
            text = policy_text(assigned_document(base.file, data, assigned))
            try:
                sc = load_scenario_text(text, base.file, folder=base.folder, lines=base.text)
            except ScenarioError as exc:
                raise invalid_with(base.file, assigned, exc, file_lines=True) from None
            name = f"{base.name}[{variant_label(settings, assigned)}]"
            changes = assigned_text(assigned)
            out.append(ScenarioInput(name, base.file, text, base.path, sc.seed, sc.description,
                                     sc.tick_count * len(sc.services), changes, traces_digest(sc.shapes),
                                     variant_warnings(base, sc.warnings, changes)))
    return out


def variant_warnings(base: ScenarioInput, found: Sequence[FieldError], changes: str) -> tuple[FieldError, ...]:
    """A variant's warnings: those of the file itself as the file's (said once however many variants
    share them), the others with the values that brought them (``spec.duration=10m`` puts a flash
    crowd after the end): ``(with --scenario-set ...)``, naming the file as the file's do."""
    mine = {(w.line, w.path, w.message): w for w in base.warnings}
    return tuple(mine.get((w.line, w.path, w.message))
                 or dataclasses.replace(w, file=base.path, message=f"{w.message} (with {changes})") for w in found)


def varied_scenario(name_or_path: str, texts: Sequence[str], seed: int | None = None):
    """The scenario (a file or bundled name) with one value per ``--scenario-set`` (``setpoint
    simulate``), named as a sweep names it, its description saying what was changed; the scenario
    itself without any. SetError when a setting gives several values."""
    from simulators.scenario import load_scenario, load_scenario_text
    from simulators.sweep import read_scenario_input

    if not texts:
        return load_scenario(name_or_path, seed=seed)
    settings = parse_scenario_settings(texts)
    for s in settings:
        if len(s.values) != 1:
            raise SetError([FieldError(OPTION, None, s.shown_path, f"{OPTION} {s.text}: one value (this runs one "
                                                                    "scenario); setpoint sweep runs several")])
    (variant,) = scenario_variants([read_scenario_input(name_or_path)], settings)
    sc = load_scenario_text(variant.text, variant.file, seed, folder=variant.folder)
    return dataclasses.replace(sc, name=variant.name, description=f"{sc.description} ({variant.changes})".lstrip(),
                               warnings=variant.warnings)


#: Longest folder name made from a scenario's name; a longer one keeps its start and a digest of it
MAX_FOLDER_NAME = 96


def folder_name(name: str) -> str:
    """A scenario's name as a folder name a shell takes unquoted: ``step[startupDelay=3m]`` ->
    ``step-startupDelay=3m``; at most MAX_FOLDER_NAME characters (several --scenario-set values made
    names past the 255 bytes a file system takes): the start, then 8 hex digits of the whole name's
    digest, so two names stay two folders."""
    import hashlib

    folder = re.sub(r"[^A-Za-z0-9._=%+-]+", "-", name).strip("-") or "scenario"
    if len(folder) <= MAX_FOLDER_NAME:
        return folder
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{folder[:MAX_FOLDER_NAME - 9].rstrip('-')}-{digest}"


def check_distinct(train: Sequence[ScenarioInput], held: Sequence[ScenarioInput]) -> None:
    """SetError when a held-out scenario is a training one: the same name or the same content (a
    ``--holdout-set`` value equal to the file's own makes the same scenario under another name)."""
    names = {s.name for s in train}
    contents = [(documents_data(s.text), s.name) for s in train]
    for s in held:
        data = documents_data(s.text)
        same = s.name if s.name in names else next((f"{s.name} (the same scenario as {name})"
                                                    for other, name in contents if other == data), None)
        if same is not None:
            raise SetError([FieldError("--holdout", None, "", f"{same} is also a training scenario; held-out "
                                                              "scenarios must be others")])


def documents_data(text: str) -> list:
    """The data of each YAML document of ``text`` (comments and layout aside)."""
    documents, _ = read_documents(text)
    return [d.data for d in documents]
