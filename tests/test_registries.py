import pytest

from graphfuse.registry import Registry


def test_register_get_list_and_families():
    registry = Registry("widget", hint="Register one with @widgets.register('{name}')")
    registry.register("b", 2, family="even")

    @registry.register("a", family="odd")
    def make_a():
        return 1

    assert registry.get("a") is make_a and registry.get("b") == 2
    assert registry.names() == ["a", "b"] and list(registry) == ["a", "b"] and len(registry) == 2
    assert registry.names("a*") == ["a"] and registry.names(family="even") == ["b"]
    assert registry.family("a") == "odd" and "a" in registry and "c" not in registry


def test_duplicate_and_unknown_names_raise_naming_the_fix():
    registry = Registry("widget", hint="Register one with @widgets.register('{name}')")
    registry.register("a", 1)
    with pytest.raises(ValueError, match=r"A widget named 'a' is already registered \(int\); choose another name"):
        registry.register("a", 2)
    assert registry.get("a") == 1
    with pytest.raises(ValueError, match=r"Unknown widget 'z'; registered: \['a'\]. Register one with "
                                         r"@widgets.register\('z'\)"):
        registry.get("z")
    with pytest.raises(ValueError, match="non-empty string"):
        registry.register("", 3)


def test_unregister_and_copy_are_independent():
    registry = Registry("widget")
    registry.register("a", 1, family="x")
    scratch = registry.copy()
    scratch.register("b", 2)
    assert scratch.unregister("a") == 1
    assert registry.names() == ["a"] and scratch.names() == ["b"] and registry.family("a") == "x"


@pytest.mark.parametrize(("module", "register", "listing"), [
    ("graphfuse.data.modalities.base", "register_modality", "list_modalities"),
    ("graphfuse.data.cross", "register_strategy", None),
    ("graphfuse.nn.fusion", "register_conv", "list_convs"),
    ("graphfuse.models.registry", "register_model", "list_models"),
    ("graphfuse.datasets.tasks", "register_task", "list_tasks"),
])
def test_every_kind_uses_the_one_registry(module, register, listing):
    import importlib

    namespace = importlib.import_module(module)
    registries = [value for value in vars(namespace).values() if isinstance(value, Registry)]
    assert len(registries) == 1 and len(registries[0]) > 0
    if listing is not None:
        assert getattr(namespace, listing)() == registries[0].names()
