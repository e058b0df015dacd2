"""All policies of a folder, grouped by city, with the version in force for a period (政策库)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.compile.build import load_policy_file
from engine.errors import Diagnostic, InputFault, PolicyError, SituationError
from engine.period import Period
from engine.policy.spec import Policy


def default_policy_dir() -> Path:
    """MEDPAY_POLICIES if set; in a source checkout its policies/; else policies/ of the current folder."""
    if os.environ.get("MEDPAY_POLICIES"):
        return Path(os.environ["MEDPAY_POLICIES"])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "policies").is_dir():
        return checkout / "policies"
    return Path("policies")


POLICY_DIR = default_policy_dir()


def policy_files(folder: Path = POLICY_DIR) -> list[Path]:
    """Policy files of a folder: every *.yaml but the shared model (template included)."""
    return sorted(p for p in folder.glob("*.yaml") if p.name != "model.yaml")


class UnknownCity(KeyError):
    """No policy with that id."""


@dataclass
class Registry:
    """Loaded policies: id → versions sorted by effective date."""

    cities: dict[str, list[Policy]] = field(default_factory=dict)
    problems: dict[str, list[Diagnostic]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path = POLICY_DIR, include_template: bool = True) -> Registry:
        reg = cls()
        for file in policy_files(folder):
            if file.name.startswith("_") and not include_template:
                continue
            try:
                reg.add(load_policy_file(file))
            except PolicyError as err:
                reg.problems[str(file)] = err.diagnostics
        return reg

    @classmethod
    def load_city(cls, city: str, folder: Path = POLICY_DIR) -> Registry:
        """Only the files that look like this city's (`city.yaml`, `city_2026.yaml`, …); all files
        when none of them holds it (a policy's id need not be its file name)."""
        reg = cls()
        for file in policy_files(folder):
            if file.stem == city or file.stem.startswith((f"{city}_", f"{city}-", f"{city}@")):
                try:
                    reg.add(load_policy_file(file))
                except PolicyError as err:
                    reg.problems[str(file)] = err.diagnostics
        return reg if city in reg.cities or reg.problems else cls.load(folder)

    def add(self, policy: Policy) -> None:
        versions = [p for p in self.cities.get(policy.id, []) if p.meta.version != policy.meta.version]
        versions.append(policy)
        self.cities[policy.id] = sorted(versions, key=lambda p: p.meta.effective_from)

    def pick(self, city: str, period: Period | None) -> Policy:
        """The version in force for the period: the latest one that overlaps it."""
        if city not in self.cities:
            raise UnknownCity(city)
        versions = self.cities[city]
        if period is None:
            return versions[-1]
        fitting = [p for p in versions if period.overlaps(p.meta.effective_from, p.meta.effective_to)]
        if not fitting:
            spans = ", ".join(f"{p.meta.effective_from}–{p.meta.effective_to or '…'}" for p in versions)
            raise SituationError([InputFault("period", f"no version of {city} is in force for {period.text} "
                                             f"(versions: {spans})",
                                             f"{city} 没有在 {period.text} 有效的政策版本（{spans}）")])
        return fitting[-1]
