"""Parse xproto text into model definitions.

Called by the loader for every `*.xproto` file and every text a plugin contributes. The
grammar lives in `xproto.lark` next to this module (LALR, so a file parses in linear time and
a syntax error points at the first token that cannot continue the file). This module turns the
parse tree into `Model` records and reports problems as `FILE:LINE:COLUMN: message`, because
the command line prints the message as the whole diagnosis.

Only one file is looked at here: whether parents and link targets exist is the loader's job.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import math
from importlib import resources
from typing import Any

import attrs
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from xos_runtime.exceptions import ModelError, XprotoSyntaxError
from xos_runtime.models.definitions import NO_DEFAULT, ROOT_BASE, SCALAR_TYPES, Field, Link, Model
from xos_runtime.models.parsercache import load_or_build

__all__ = [
    "BASES_OPTION",
    "LINK_KINDS",
    "POLICY_OPTION",
    "REVERSE_ID_OPTION",
    "XprotoFile",
    "convert_default",
    "parse_xproto",
]

#: Link kinds the grammar accepts. `onetoone` is a `manytoone` with `unique = True`;
#: `manytomany` is read and dropped with a warning (the runtime has no join tables).
LINK_KINDS = ("manytoone", "onetoone", "manytomany")

#: Model options the parser fills from the `message` line: the policy attached with
#: `message Name::policy`, and every base when more than one is listed (`(XOSBase, Mixin)`).
POLICY_OPTION = "policy"
BASES_OPTION = "bases"
#: Field/link option holding the second number of `= 10:1001`.
REVERSE_ID_OPTION = "reverse_id"

#: Options that become attributes of `Field`; every other option stays in `Field.options`.
_FIELD_ATTR_OPTIONS = ("null", "blank", "max_length")

#: How terminals that are not literal text are named in "expected ..." lists.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "SIGNED_NUMBER": "a number",
    "MODIFIER": "'optional', 'required'",
    "POLICY": "a policy",
    "$END": "end of file",
}


@attrs.frozen
class XprotoFile:
    """What one xproto text declares.

    `options` are the file-level `option name = value;` statements; `warnings` are readable
    notes about constructs that were accepted but are not supported (`manytomany` links).
    """

    options: dict[str, Any] = attrs.field(factory=dict)
    models: tuple[Model, ...] = ()
    warnings: tuple[str, ...] = ()


@functools.cache
def _parser() -> Lark:
    # Once per process, and the tables from the cache when an earlier process saved them:
    # compiling them costs more than parsing a file.
    grammar = resources.files("xos_runtime.models").joinpath("xproto.lark").read_text("utf-8")
    return load_or_build(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def parse_xproto(text: str, source: str = "<string>") -> XprotoFile:
    """Parse one xproto text; `source` names it in every message and becomes `Model.source`.

    Raises `XprotoSyntaxError` for text that does not parse and `ModelError` for text that
    parses but declares something unusable (unknown type, duplicate field, bad number).
    """
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, source) from None
    return _Builder(source).build(tree)


# --- syntax errors ----------------------------------------------------------------------------


def _syntax_error(exc: UnexpectedInput, text: str, source: str) -> XprotoSyntaxError:
    """Turn a lark exception into `FILE:LINE:COL: unexpected X, expected one of: ...`."""
    expected: set[str] = set()
    if isinstance(exc, UnexpectedToken):
        expected = set(exc.expected)
        if exc.interactive_parser is not None:
            # LALR merges lookaheads of states that share a rule (`value` appears in file
            # options and in field options), so `expected` can list tokens that would fail one
            # step later. Asking the parser which tokens it really accepts keeps the list true.
            with contextlib.suppress(UnexpectedInput):
                expected = set(exc.interactive_parser.accepts()) or expected
    elif isinstance(exc, UnexpectedEOF):
        expected = set(exc.expected)
    elif isinstance(exc, UnexpectedCharacters):
        expected = set(exc.allowed or ())
    expected_text = _describe_expected(expected)

    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        found = f"character {text[pos]!r}" if pos is not None and pos < len(text) else "input"
        line, column = exc.line, exc.column
    else:
        token = getattr(exc, "token", None)
        if token is None or token.type == "$END":
            found = "end of file"
            line, column = _end_position(text)
        else:
            found = repr(str(token))
            line = token.line or 1
            column = token.column or 1
    message = f"unexpected {found}"
    if expected_text:
        message += f", expected {expected_text}"
    return XprotoSyntaxError(message, file=source, line=line, column=column)


def _describe_expected(names: set[str]) -> str:
    terminals = {t.name: t for t in _parser().terminals}
    words: set[str] = set()
    for name in names:
        term = terminals.get(name)
        if name in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[name])
        elif term is not None and term.pattern.type == "str":
            words.add(repr(term.pattern.value))
        else:
            words.add(name.lower())
    if "a policy" in words and len(words) > 1:
        # A top-level position also accepts `policy ...`; naming it only adds noise.
        words.discard("a policy")
    ordered = sorted(words)
    if not ordered:
        return ""
    if len(ordered) == 1:
        return ordered[0]
    return "one of: " + ", ".join(ordered)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


# --- tree to models ---------------------------------------------------------------------------


class _Builder:
    """Walks the parse tree of one file; knows the file name for every message it writes."""

    def __init__(self, source: str):
        self.source = source
        self.warnings: list[str] = []

    def build(self, tree: Tree[Token]) -> XprotoFile:
        options: dict[str, Any] = {}
        models: list[Model] = []
        for child in tree.children:
            if not isinstance(child, Tree):
                continue  # policies and stray `;`
            if child.data == "option":
                key, value = self._option(child)
                options[key] = value
            elif child.data == "message":
                models.append(self._message(child))
        return XprotoFile(options=options, models=tuple(models), warnings=tuple(self.warnings))

    def _where(self, token: Token) -> str:
        return f"{self.source}:{token.line}:{token.column}"

    def _option(self, tree: Tree[Token]) -> tuple[str, Any]:
        key, value = tree.children
        assert isinstance(key, Token) and isinstance(value, Tree)
        return str(key), self._value(value)

    def _message(self, tree: Tree[Token]) -> Model:
        name_tok, policy_tree, bases_tree, *items = tree.children
        assert isinstance(name_tok, Token)
        name = str(name_tok)
        options: dict[str, Any] = {}
        if isinstance(policy_tree, Tree):
            options[POLICY_OPTION] = str(policy_tree.children[0])
        bases = [str(b) for b in bases_tree.children] if isinstance(bases_tree, Tree) else []
        if len(bases) > 1:
            # Which of several bases is a model and which a Python mixin is only known once
            # every file is read: the loader decides (`resolve_bases`).
            options[BASES_OPTION] = bases
        parent = bases[0] if bases and bases[0] != ROOT_BASE else None
        fields: list[Field] = []
        links: list[Link] = []
        seen: dict[str, Token] = {}  # member name -> where it was first declared
        for item in items:
            if not isinstance(item, Tree):
                continue
            if item.data == "option":
                key, value = self._option(item)
                options[key] = value
                continue
            member_tok = item.children[2]
            assert isinstance(member_tok, Token)
            if str(member_tok) in seen:
                first = seen[str(member_tok)]
                raise ModelError(
                    f"{self._where(member_tok)}: model {name!r}: field {str(member_tok)!r} is "
                    f"declared twice (first at line {first.line})"
                )
            seen[str(member_tok)] = member_tok
            if item.data == "field":
                fields.append(self._field(item, name))
            else:
                link = self._link(item, name)
                if link is not None:
                    links.append(link)
        return Model(
            name=name,
            parent=parent,
            fields=tuple(fields),
            links=tuple(links),
            options=options,
            source=self.source,
            line=name_tok.line or 0,
        )

    def _number(self, token: Token, model: str, member: str) -> int:
        try:
            number = int(str(token))
        except ValueError:
            number = 0
        if number <= 0:
            raise ModelError(
                f"{self._where(token)}: model {model!r}: field {member!r}: the field number "
                f"must be a positive integer, not {token!s}"
            )
        return number

    def _field_options(self, tree: Tree[Token] | Token | None) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if not isinstance(tree, Tree):
            return options
        for opt in tree.children:
            if isinstance(opt, Tree):
                key, value = opt.children
                assert isinstance(value, Tree)
                options[str(key)] = self._value(value)
        return options

    def _keep_reverse_id(self, options: dict[str, Any], tree: Tree[Token] | Token | None) -> None:
        # XOS numbers the reverse accessor of a link (`= 10:1001`); only gRPC cared.
        if isinstance(tree, Tree):
            options.setdefault(REVERSE_ID_OPTION, _number_value(str(tree.children[0])))

    def _field(self, tree: Tree[Token], model: str) -> Field:
        modifier, type_tok, name_tok, number_tok, reverse_id, opts_tree = tree.children
        assert isinstance(type_tok, Token) and isinstance(name_tok, Token)
        assert isinstance(number_tok, Token) and isinstance(modifier, Token)
        name = str(name_tok)
        type_ = str(type_tok)
        if type_ not in SCALAR_TYPES:
            hint = (
                " (links are written `manytoone name->Model:reverse`)"
                if type_ in LINK_KINDS
                else ""
            )
            raise ModelError(
                f"{self._where(type_tok)}: model {model!r}: field {name!r} has unknown type "
                f"{type_!r}{hint}; valid types are: {', '.join(SCALAR_TYPES)}"
            )
        required = str(modifier) == "required"
        options = self._field_options(opts_tree)
        self._keep_reverse_id(options, reverse_id)
        attrs_from_options: dict[str, Any] = {}
        for key in _FIELD_ATTR_OPTIONS:
            if key in options:
                attrs_from_options[key] = options.pop(key)
        null = _as_bool(attrs_from_options.get("null"), default=not required)
        blank = _as_bool(attrs_from_options.get("blank"), default=not required)
        max_length = _as_int(attrs_from_options.get("max_length"))
        if "max_length" in attrs_from_options and max_length is None:
            raise ModelError(
                f"{self._where(name_tok)}: model {model!r}: field {name!r}: max_length must be "
                f"an integer, not {attrs_from_options['max_length']!r}"
            )
        default = NO_DEFAULT
        if "default" in options:
            converted = convert_default(options["default"], type_)
            if converted is not NO_DEFAULT:
                default = converted
                del options["default"]
            # else: a dynamic default such as "now()": kept in options for whoever knows it.
        return Field(
            name=name,
            type=type_,
            required=required,
            number=self._number(number_tok, model, name),
            default=default,
            null=null,
            blank=blank,
            max_length=max_length,
            options=options,
            declared_in=model,
        )

    def _link(self, tree: Tree[Token], model: str) -> Link | None:
        (
            modifier,
            kind_tok,
            name_tok,
            target_tok,
            through,
            reverse,
            number_tok,
            reverse_id,
            opts,
        ) = tree.children
        assert isinstance(kind_tok, Token) and isinstance(name_tok, Token)
        assert isinstance(number_tok, Token) and isinstance(target_tok, Token)
        name = str(name_tok)
        kind = str(kind_tok)
        if kind not in LINK_KINDS:
            raise ModelError(
                f"{self._where(kind_tok)}: model {model!r}: link {name!r} has unknown kind "
                f"{kind!r}; valid link kinds are: {', '.join(LINK_KINDS)}"
            )
        number = self._number(number_tok, model, name)
        if kind == "manytomany":
            self.warnings.append(
                f"{self._where(kind_tok)}: model {model!r}: manytomany link {name!r} ignored "
                "(manytomany links are not supported)"
            )
            return None
        del through  # only meaningful for manytomany
        options = self._field_options(opts)
        self._keep_reverse_id(options, reverse_id)
        if kind == "onetoone":
            options.setdefault("unique", True)
        return Link(
            name=name,
            target=str(target_tok),
            reverse_name=str(reverse.children[0]) if isinstance(reverse, Tree) else None,
            required=str(modifier) == "required",
            number=number,
            options=options,
            declared_in=model,
        )

    def _value(self, tree: Tree[Token]) -> Any:
        token = tree.children[0]
        assert isinstance(token, Token)
        raw = str(token)
        if tree.data == "string":
            return _unquote(raw)
        if tree.data == "number":
            return _number_value(raw)
        lowered = raw.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        if raw == "None":
            return None
        return raw  # a bare identifier stays its name


def _unquote(raw: str) -> str:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        # An escape Python does not know (`\q`): keep the text between the quotes as is.
        return raw[1:-1]
    return value if isinstance(value, str) else raw[1:-1]


def _number_value(raw: str) -> int | float:
    try:
        return int(raw)
    except ValueError:
        return float(raw)


def _as_bool(value: Any, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int | float):
        return bool(value)
    return default


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def convert_default(value: Any, type_: str) -> Any:
    """The static default of a field of xproto type `type_`, or NO_DEFAULT if there is none.

    XOS files write defaults loosely (`default = "True"` on a bool, `default = "10"` on an int);
    what reads as the field's type is converted. Anything else (`"now()"`, a function name)
    is a dynamic default the runtime does not evaluate: NO_DEFAULT.
    """
    if value is None:
        return None
    python_type = SCALAR_TYPES[type_]
    if python_type is str:
        if isinstance(value, bool):
            return str(value)
        return value if isinstance(value, str) else str(value)
    if python_type is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        return NO_DEFAULT
    if python_type is int:
        as_int = _as_int(value)
        if as_int is not None:
            return as_int
        if isinstance(value, str):  # "10.0" still reads as an integer default
            try:
                as_float = float(value.strip())
            except ValueError:
                return NO_DEFAULT
            return int(as_float) if as_float.is_integer() else NO_DEFAULT
        return NO_DEFAULT
    # float / double
    if isinstance(value, bool):
        return NO_DEFAULT
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            as_float = float(value.strip())
        except ValueError:
            return NO_DEFAULT
        return as_float if math.isfinite(as_float) else NO_DEFAULT
    return NO_DEFAULT
