"""Loading a model set from several sources and validating it as a whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xos_runtime.exceptions import ModelError, XprotoSyntaxError
from xos_runtime.models import (
    ROOT_BASE,
    Field,
    Model,
    ModelSet,
    load_models,
    validate_models,
)

DATA = Path(__file__).parent / "data"


def load(*texts: str) -> ModelSet:
    return load_models([(f"src{i}.xproto", text) for i, text in enumerate(texts)])


def load_error(*texts: str) -> str:
    with pytest.raises(ModelError) as info:
        load(*texts)
    return str(info.value)


# --- sources --------------------------------------------------------------------------------


def test_directory_is_read_sorted_and_xosbase_skipped() -> None:
    warnings: list[str] = []
    models = load_models([DATA], on_warning=warnings.append)
    assert models.names() == ["Site", "User", "Slice", "Service", "ComputeSlice"]
    assert ROOT_BASE not in models
    assert models.get("Site").source == str(DATA / "core.xproto")
    assert models.get("Slice").source == str(DATA / "slices.xproto")
    (warning,) = warnings
    assert warning.startswith(f"{DATA / 'slices.xproto'}:19:14: model 'ComputeSlice': manytomany")


def test_mixins_are_not_parents() -> None:
    models = load_models([DATA], on_warning=lambda _: None)
    assert models.get("ComputeSlice").parent == "Slice"
    assert models.ancestors("ComputeSlice") == ["ComputeSlice", "Slice"]
    names = [f.name for f in models.all_fields("ComputeSlice")]
    assert names[-3:] == ["name", "updated_on", "cores"]
    assert models.get("ComputeSlice").fields[0].default == 4


def test_bases_without_a_model_make_a_root() -> None:
    models = load("message User (AbstractBaseUser, PlModelMixIn) { required string email = 1; }")
    assert models.get("User").parent is None


def test_unsupported_warnings_go_to_the_logger(caplog: pytest.LogCaptureFixture) -> None:
    load("message A { optional manytomany bs->B = 1; } message B {}")
    assert "manytomany link 'bs' ignored" in caplog.text


def test_files_and_plugin_texts_mix(tmp_path: Path) -> None:
    shutil.copy(DATA / "core.xproto", tmp_path / "core.xproto")
    (tmp_path / "notes.txt").write_text("not xproto")
    models = load_models(
        [
            tmp_path,
            ("plugin:demo", "message Demo (Site) { required string flavour = 1; }"),
            str(DATA / "slices.xproto"),
        ],
        on_warning=lambda _: None,
    )
    assert models.names() == ["Site", "User", "Demo", "Slice", "Service", "ComputeSlice"]
    assert models.get("Demo").source == "plugin:demo"
    assert models.get("Demo").parent == "Site"


def test_single_file_path(tmp_path: Path) -> None:
    path = tmp_path / "one.xproto"
    path.write_text("message One {}")
    assert load_models([path]).names() == ["One"]


def test_missing_path() -> None:
    with pytest.raises(ModelError, match=r"nowhere\.xproto: no such xproto file or directory"):
        load_models(["nowhere.xproto"])


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.xproto"
    path.write_text("message A {\n  required string x = 1\n}\n")
    with pytest.raises(XprotoSyntaxError) as info:
        load_models([tmp_path])
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}:3:1: unexpected '}}'")


def test_empty_set() -> None:
    assert len(load_models([])) == 0


# --- whole-set validation -------------------------------------------------------------------


def test_duplicate_model_across_sources() -> None:
    message = load_error("message A {}", "\nmessage A {}")
    assert message == "model 'A' is defined twice: src0.xproto:1 and src1.xproto:2"


def test_duplicate_model_in_one_file() -> None:
    assert load_error("message A {}\nmessage A {}") == (
        "model 'A' is defined twice: src0.xproto:1 and src0.xproto:2"
    )


def test_undefined_parent() -> None:
    assert load_error("message A {}\n\nmessage B (Nope) {}") == (
        "src0.xproto:3: model 'B' derives from undefined model 'Nope'"
    )


def test_undefined_link_target() -> None:
    message = load_error(
        "message Site {}",
        "message User {\n  required manytoone site->Sitee:users = 1;\n}",
    )
    assert message == ("src1.xproto:1: model 'User': link 'site' points at undefined model 'Sitee'")


def test_inheritance_cycle() -> None:
    message = load_error("message A (C) {}\nmessage B (A) {}\nmessage C (B) {}")
    assert message == "src0.xproto:1: inheritance cycle: A -> C -> B -> A"


def test_model_derived_from_itself() -> None:
    assert "inheritance cycle: A -> A" in load_error("message A (A) {}")


def test_multiple_inheritance() -> None:
    message = load_error("message A {} message B {} message C (A, B) {}")
    assert "model 'C' derives from several models ('A', 'B')" in message


@pytest.mark.parametrize("name", ["id", "deleted", "backend_status", "leaf_model_name"])
def test_field_clashes_with_bookkeeping(name: str) -> None:
    message = load_error(f"message A {{ optional string {name} = 1; }}")
    assert message == (
        f"src0.xproto:1: model 'A': field {name!r} clashes with bookkeeping field {name!r}"
    )


def test_field_clashes_with_inherited_field() -> None:
    message = load_error(
        "message Base { required string name = 1; }",
        "message Sub (Base) { optional string name = 1; }",
    )
    assert message == (
        "src1.xproto:1: model 'Sub': field 'name' clashes with field 'name' of 'Base'"
    )


def test_field_clashes_with_link_column() -> None:
    message = load_error(
        "message Site {}\n"
        "message User { required manytoone site->Site = 1; optional int32 site_id = 2; }"
    )
    assert message == (
        "src0.xproto:2: model 'User': column 'site_id' of link 'site' clashes with field 'site_id'"
    )


def test_field_clashes_with_inherited_link_column() -> None:
    message = load_error(
        "message Site {}\nmessage Base { required manytoone site->Site = 1; }\n"
        "message Sub (Base) { optional int32 site_id = 1; }"
    )
    assert message == (
        "src0.xproto:3: model 'Sub': column 'site_id' of link 'site' (inherited from 'Base') "
        "clashes with field 'site_id'"
    )


def test_reverse_name_clashes_with_a_field() -> None:
    message = load_error(
        "message Site { optional string users = 1; }\n"
        "message User { required manytoone site->Site:users = 1; }"
    )
    assert message == (
        "src0.xproto:1: model 'Site': reverse name 'users' of link User.site clashes with "
        "field 'users'"
    )


def test_two_links_with_one_reverse_name() -> None:
    message = load_error(
        "message Site {}\n"
        "message A { required manytoone site->Site:members = 1; }\n"
        "message B { required manytoone site->Site:members = 1; }"
    )
    assert "model 'Site': reverse name 'members' of link B.site clashes with reverse name" in (
        message
    )


def test_siblings_may_share_a_column_of_one_type() -> None:
    models = load(
        "message Base {}\n"
        "message A (Base) { optional string color = 1; }\n"
        "message B (Base) { optional string color = 1; }"
    )
    assert models.names() == ["Base", "A", "B"]


def test_siblings_with_one_column_of_two_types() -> None:
    message = load_error(
        "message Base {}\n"
        "message A (Base) { optional string color = 1; }\n"
        "message B (Base) { optional int32 color = 1; }"
    )
    assert message == (
        "src0.xproto:3: models 'A' and 'B' share the table of 'Base' but declare column 'color' "
        "with different types: string and int32"
    )


def test_sibling_field_against_sibling_link_column() -> None:
    message = load_error(
        "message Site {}\nmessage Base {}\n"
        "message A (Base) { optional int32 site_id = 1; }\n"
        "message B (Base) { optional manytoone site->Site = 1; }"
    )
    assert "models 'A' and 'B' share the table of 'Base'" in message
    assert "int32 and link to Site" in message


def test_unrelated_models_may_reuse_names() -> None:
    models = load(
        "message A { optional string color = 1; }\nmessage B { optional int32 color = 1; }"
    )
    assert len(models) == 2


def test_validate_a_hand_built_set() -> None:
    bad = ModelSet({"A": Model("A", fields=(Field("deleted", "bool", declared_in="A"),))})
    with pytest.raises(ModelError, match="clashes with bookkeeping field 'deleted'"):
        validate_models(bad)
    validate_models(ModelSet({"A": Model("A")}))
