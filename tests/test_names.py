"""jebm.names.Registry: the one register/unregister behind energy, sampler and data set names."""

import pytest

from jebm import names


def _registry():
    table = {"own": len}
    return table, names.Registry("widget", table, ("own",), role="maker", reserved=("array",))


def test_register_adds_replaces_and_unregister_removes_only_user_names():
    table, reg = _registry()
    reg.register("mine", abs)
    assert table == {"own": len, "mine": abs} and reg.registered() == ["mine"]
    reg.register("mine", round)  # again: replaced
    assert table["mine"] is round
    reg.unregister("mine")
    assert table == {"own": len} and reg.registered() == []


@pytest.mark.parametrize("name, fn, message", [
    ("", abs, "widget name must be a non-empty string other than 'array', got ''"),
    (3, abs, "widget name must be a non-empty string other than 'array', got 3"),
    ("array", abs, "widget name must be a non-empty string other than 'array', got 'array'"),
    ("own", abs, "widget name 'own' is jebm's own; choose a name not in ['own']"),
    ("mine", 3, "maker for widget 'mine' must be callable, got 3"),
])
def test_register_rejects_bad_names_and_non_callables_and_keeps_the_table(name, fn, message):
    table, reg = _registry()
    with pytest.raises(ValueError) as err:
        reg.register(name, fn)
    assert str(err.value) == message and table == {"own": len}


def test_unregister_refuses_own_and_unknown_names_listing_the_registered_ones():
    table, reg = _registry()
    reg.register("b", abs)
    reg.register("a", abs)
    for name in ("own", "zzz"):
        with pytest.raises(ValueError) as err:
            reg.unregister(name)
        assert str(err.value) == f"widget name {name!r} is not a registered one; registered: ['a', 'b']"
    assert set(table) == {"own", "a", "b"}


def test_without_reserved_names_the_message_has_no_exception():
    reg = names.Registry("energy", {}, ())
    with pytest.raises(ValueError, match=r"^energy name must be a non-empty string, got ''$"):
        reg.register("", abs)
