"""The xproto parser: what it accepts, what it builds, and how it reports mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xos_runtime.exceptions import ModelError, XprotoSyntaxError
from xos_runtime.models import (
    BASES_OPTION,
    NO_DEFAULT,
    POLICY_OPTION,
    REVERSE_ID_OPTION,
    SCALAR_TYPES,
    Field,
    Model,
    ModelSet,
    XprotoFile,
    convert_default,
    parse_xproto,
)

DATA = Path(__file__).parent / "data"


def one_model(text: str) -> Model:
    parsed = parse_xproto(text, "t.xproto")
    assert len(parsed.models) == 1
    return parsed.models[0]


def field_of(model: Model, name: str) -> Field:
    return next(f for f in model.fields if f.name == name)


# --- a realistic file ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def core() -> XprotoFile:
    path = DATA / "core.xproto"
    return parse_xproto(path.read_text(), str(path))


def test_file_options(core: XprotoFile) -> None:
    assert core.options == {"name": "core", "app_label": "core", "legacy": True}
    assert core.warnings == ()


def test_models_in_order_with_source_and_line(core: XprotoFile) -> None:
    assert [m.name for m in core.models] == ["XOSBase", "Site", "User"]
    site = core.models[1]
    assert site.source == str(DATA / "core.xproto")
    assert site.line == 14
    assert site.parent is None  # (XOSBase) means root
    assert site.options == {"verbose_name": "Site", POLICY_OPTION: "site_policy"}


def test_required_string_field(core: XprotoFile) -> None:
    name = field_of(core.models[1], "name")
    assert name == Field(
        name="name",
        type="string",
        required=True,
        number=1,
        default=NO_DEFAULT,
        null=False,
        blank=False,
        max_length=256,
        options={"db_index": True, "tosca_key": True, "help_text": "Name of the site"},
        declared_in="Site",
    )


def test_optional_field_with_defaults(core: XprotoFile) -> None:
    site = core.models[1]
    login_base = field_of(site, "login_base")
    assert (login_base.required, login_base.null, login_base.blank) == (False, True, True)
    assert login_base.default == "x"
    assert login_base.max_length == 50
    assert login_base.options == {}
    assert field_of(site, "enabled").default is True
    assert field_of(site, "max_instances").default == 10
    latitude = field_of(site, "latitude")
    assert latitude.default == 0.5
    assert latitude.options == {"gui_hidden": True}


def test_link_with_reverse_name(core: XprotoFile) -> None:
    user = core.models[2]
    assert user.fields[0].name == "email"
    (site,) = user.links
    assert site.name == "site"
    assert site.target == "Site"
    assert site.reverse_name == "users"
    assert site.required is True
    assert site.number == 2
    assert site.column == "site_id"
    assert site.declared_in == "User"
    assert site.options == {"db_index": True, "tosca_key": True, REVERSE_ID_OPTION: 1001}


# --- syntax variants --------------------------------------------------------------------------


def test_message_forms() -> None:
    parsed = parse_xproto(
        """
        message Thing {}
        message Sub(Thing) { };
        message Other (Thing)
        {
        }
        message Mixed (XOSBase, AttributeMixin) {}
        """
    )
    thing, sub, other, mixed = parsed.models
    assert thing.parent is None
    assert sub.parent == "Thing"
    assert other.parent == "Thing"
    assert mixed.parent is None
    assert mixed.options == {BASES_OPTION: ["XOSBase", "AttributeMixin"]}
    assert all(m.source == "<string>" for m in parsed.models)


def test_link_without_reverse_name_and_onetoone() -> None:
    model = one_model(
        """message A {
            required manytoone owner->Service = 1;
            optional onetoone twin->B:twin_of = 2 [null = True];
        }"""
    )
    owner, twin = model.links
    assert owner.reverse_name is None
    assert owner.required is True
    assert owner.options == {}
    assert twin.required is False
    assert twin.options == {"null": True, "unique": True}


def test_manytomany_is_dropped_with_a_warning() -> None:
    parsed = parse_xproto(
        "message A {\n    optional manytomany tags->Tag/ATag:as = 3 [];\n}", "m.xproto"
    )
    assert parsed.models[0].links == ()
    (warning,) = parsed.warnings
    assert warning.startswith("m.xproto:2:14: model 'A': manytomany link 'tags' ignored")


def test_comments_and_policies_are_ignored() -> None:
    parsed = parse_xproto(
        """
        // a line comment with message X {
        /* a block comment
           over lines, with } and ; */
        policy p1 < ctx.user.is_admin | (a => b) & obj.x = "a>b" & obj.y = 'c>' >
        policy p2 <
            exists Privilege: Privilege.object_id = obj.id
        >
        message A { // trailing comment
            required string name = 1; /* inline */ optional int32 n = 2;
        }
        """
    )
    assert [m.name for m in parsed.models] == ["A"]
    assert [f.name for f in parsed.models[0].fields] == ["name", "n"]


def test_keywords_are_usable_as_names() -> None:
    model = one_model(
        "message A { optional string message = 1; optional string option = 2;"
        " optional bool required = 3; }"
    )
    assert [f.name for f in model.fields] == ["message", "option", "required"]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"double"', "double"),
        ("'single'", "single"),
        (r'"esc \"q\" \n"', 'esc "q" \n'),
        (r"'it\'s'", "it's"),
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("1.5", 1.5),
        ("-2.5e3", -2500.0),
        ("True", True),
        ("true", True),
        ("FALSE", False),
        ("None", None),
        ("get_first_site", "get_first_site"),
        ("\"(('a', 'A'),)\"", "(('a', 'A'),)"),
    ],
)
def test_option_values(literal: str, value: Any) -> None:
    parsed = parse_xproto(f"option v = {literal};\nmessage A {{ option v = {literal}; }}")
    assert parsed.options["v"] == value
    assert parsed.models[0].options["v"] == value
    model = one_model(f"message A {{ optional string s = 1 [anything = {literal}]; }}")
    assert model.fields[0].options["anything"] == value


def test_unknown_options_never_fail() -> None:
    model = one_model(
        """message A {
            option custom_python = True;
            option whatever = some_identifier;
            required string s = 1 [gui_hidden = True, feedback_state = True,
                unique_with = "owner", content_type = "stripped", x_y_z = -1.0,];
        }"""
    )
    assert model.options == {"custom_python": True, "whatever": "some_identifier"}
    assert model.fields[0].options == {
        "gui_hidden": True,
        "feedback_state": True,
        "unique_with": "owner",
        "content_type": "stripped",
        "x_y_z": -1.0,
    }


def test_every_scalar_type_is_accepted() -> None:
    body = " ".join(f"optional {t} f_{t} = {i + 1};" for i, t in enumerate(SCALAR_TYPES))
    model = one_model(f"message A {{ {body} }}")
    assert [f.type for f in model.fields] == list(SCALAR_TYPES)


@pytest.mark.parametrize(
    ("modifier", "opts", "null", "blank"),
    [
        ("required", "", False, False),
        ("optional", "", True, True),
        ("required", "[null = True]", True, False),
        ("required", "[blank = True]", False, True),
        ("optional", "[null = False, blank = False]", False, False),
        ("optional", '[null = "False"]', False, True),
    ],
)
def test_null_and_blank(modifier: str, opts: str, null: bool, blank: bool) -> None:
    field = one_model(f"message A {{ {modifier} string s = 1 {opts}; }}").fields[0]
    assert (field.null, field.blank) == (null, blank)
    assert field.required is (modifier == "required")
    assert "null" not in field.options and "blank" not in field.options


def test_max_length_must_be_an_integer() -> None:
    field = one_model('message A { optional string s = 1 [max_length = "30"]; }').fields[0]
    assert field.max_length == 30
    with pytest.raises(ModelError, match=r"t\.xproto:1:29: model 'A': field 's': max_length"):
        one_model("message A { optional string s = 1 [max_length = big]; }")


# --- defaults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("bool", True, True),
        ("bool", "True", True),
        ("bool", "false", False),
        ("bool", 1, True),
        ("bool", "maybe", NO_DEFAULT),
        ("int32", 10, 10),
        ("int64", "10", 10),
        ("uint32", 4.0, 4),
        ("int32", "2.0", 2),
        ("int32", "2.5", NO_DEFAULT),
        ("int32", True, NO_DEFAULT),
        ("int32", "now()", NO_DEFAULT),
        ("double", 3, 3.0),
        ("float", "0.25", 0.25),
        ("double", "now()", NO_DEFAULT),
        ("double", "nan", NO_DEFAULT),
        ("string", "now()", "now()"),
        ("text", 5, "5"),
        ("string", True, "True"),
        ("string", None, None),
        ("int32", None, None),
    ],
)
def test_convert_default(type_: str, value: Any, expected: Any) -> None:
    result = convert_default(value, type_)
    assert result == expected
    assert type(result) is type(expected)


def test_dynamic_default_stays_in_options() -> None:
    field = one_model('message A { required double when = 1 [default = "now()"]; }').fields[0]
    assert field.default is NO_DEFAULT
    assert not field.has_default
    assert field.options == {"default": "now()"}


def test_static_default_leaves_options() -> None:
    field = one_model('message A { required bool on = 1 [default = "True"]; }').fields[0]
    assert field.default is True
    assert field.options == {}


# --- errors ---------------------------------------------------------------------------------


def syntax_error(text: str) -> XprotoSyntaxError:
    with pytest.raises(XprotoSyntaxError) as info:
        parse_xproto(text, "demo.xproto")
    return info.value


def test_unexpected_token_position_and_expected_list() -> None:
    err = syntax_error(
        'option name = "demo";\n\nmessage A {\n    required string name = 1 [a = 1 }\n'
    )
    assert (err.file, err.line, err.column) == ("demo.xproto", 4, 37)
    assert str(err) == "demo.xproto:4:37: unexpected '}', expected one of: ',', ']'"


def test_missing_equal_sign() -> None:
    err = syntax_error("message A {\n  required string name 1;\n}")
    assert str(err) == "demo.xproto:2:24: unexpected '1', expected one of: '->', '='"


def test_single_expected_token() -> None:
    err = syntax_error('option a = "x" }')
    assert str(err) == "demo.xproto:1:16: unexpected '}', expected ';'"


def test_unexpected_character() -> None:
    err = syntax_error("message A {\n  required string s = 1 @\n}")
    assert (err.line, err.column) == (2, 25)
    assert "unexpected character '@'" in str(err)
    assert "'['" in str(err) and "';'" in str(err)


def test_unexpected_end_of_file() -> None:
    err = syntax_error("message A {\n  required string s = 1;\n")
    assert (err.line, err.column) == (3, 1)
    assert str(err).startswith("demo.xproto:3:1: unexpected end of file, expected one of: ")
    assert "'}'" in str(err) and "'required'" in str(err)


def test_misspelt_keyword_at_top_level() -> None:
    err = syntax_error("mesage A {}")
    assert str(err) == (
        "demo.xproto:1:1: unexpected 'mesage', expected one of: ';', 'message', 'option', "
        "end of file"
    )


def test_unterminated_block_comment_is_a_syntax_error() -> None:
    err = syntax_error("message A {}\n/* never closed\n")
    assert (err.line, err.column) == (2, 1)


def test_unknown_field_type() -> None:
    with pytest.raises(ModelError) as info:
        parse_xproto("message Site {\n    required strin name = 1;\n}", "demo.xproto")
    message = str(info.value)
    assert message.startswith("demo.xproto:2:14: model 'Site': field 'name' has unknown type")
    assert "'strin'" in message
    assert "valid types are: string, text, bool, int32, uint32, int64, uint64, float, double" in (
        message
    )


def test_link_kind_used_as_a_type_gets_a_hint() -> None:
    with pytest.raises(ModelError, match=r"unknown type 'manytoone' \(links are written"):
        parse_xproto("message A { required manytoone site = 1; }")


def test_unknown_link_kind() -> None:
    with pytest.raises(ModelError) as info:
        parse_xproto("message A {\n  required manytoon site->Site = 1;\n}", "demo.xproto")
    assert str(info.value) == (
        "demo.xproto:2:12: model 'A': link 'site' has unknown kind 'manytoon'; valid link kinds "
        "are: manytoone, onetoone, manytomany"
    )


def test_duplicate_field_names() -> None:
    with pytest.raises(ModelError) as info:
        parse_xproto(
            "message A {\n  required string x = 1;\n  optional int32 x = 2;\n}", "demo.xproto"
        )
    assert str(info.value) == (
        "demo.xproto:3:18: model 'A': field 'x' is declared twice (first at line 2)"
    )


def test_field_and_link_with_one_name() -> None:
    with pytest.raises(ModelError, match=r"model 'A': field 'site' is declared twice"):
        parse_xproto("message A { required string site = 1; required manytoone site->B = 2; }")


@pytest.mark.parametrize("number", ["0", "-1", "1.5"])
def test_field_number_must_be_positive(number: str) -> None:
    with pytest.raises(ModelError) as info:
        parse_xproto(f"message A {{ required string x = {number}; }}", "demo.xproto")
    assert str(info.value) == (
        f"demo.xproto:1:33: model 'A': field 'x': the field number must be a positive integer, "
        f"not {number}"
    )


# --- records --------------------------------------------------------------------------------


def test_models_round_trip_through_json(core: XprotoFile) -> None:
    models = ModelSet({m.name: m for m in core.models})
    assert ModelSet.from_json(models.to_json()) == models
