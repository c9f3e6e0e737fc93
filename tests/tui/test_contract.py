"""The TUI's contract (fleettop.tui.contract.FleetView) holds both fleets it is shown with: the
real service has every method with the same parameters, and the snapshot tests' fixed fleet
answers only what the contract asks, as the contract asks it. A rename on either side fails here,
not in a dashboard at run time."""

from __future__ import annotations

import inspect

from fixed_fleet import FixedFleet

from fleettop.service import FleetService
from fleettop.tui.contract import FleetView

CONTRACT = {
    name: member for name, member in inspect.getmembers(FleetView, inspect.isfunction) if not name.startswith("_")
}


def _parameters(function) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]


def _kind(function) -> str:
    if inspect.isasyncgenfunction(function):
        return "async iterator"
    return "coroutine" if inspect.iscoroutinefunction(function) else "plain"


def test_the_service_keeps_the_contract():
    assert len(CONTRACT) >= 20
    for name, promised in CONTRACT.items():
        actual = getattr(FleetService, name, None)
        assert actual is not None, f"FleetService has no {name}"
        assert _parameters(actual) == _parameters(promised), name
        expected_kind = "async iterator" if name == "events" else "coroutine"
        assert _kind(actual) == expected_kind, name


def test_the_fixed_fleet_answers_only_what_the_contract_asks():
    offered = {name: member for name, member in vars(FixedFleet).items() if inspect.isfunction(member)}
    public = {name for name in offered if not name.startswith("_")}
    assert public <= set(CONTRACT), f"not in the contract: {sorted(public - set(CONTRACT))}"
    for name in public:
        assert _parameters(offered[name]) == _parameters(CONTRACT[name]), name
