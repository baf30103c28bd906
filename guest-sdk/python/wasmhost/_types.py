"""Type hints as JSON Schemas and as validators with pydantic's lax rules and error shapes.

FastAPI answers bad input with ``422 {"detail": [...]}``, one entry per problem:
``{"type", "loc", "msg", "input"}``. The validators here collect the same entries so a
Modal user sees the answers FastAPI would give, without pydantic in the component.
"""

import dataclasses
import enum
import json
import types
import typing

INVALID = object()
"""What a validator returns after recording an error."""

_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


def error(errors, kind, loc, msg, value, ctx=None):
    """Records one FastAPI-style error entry and returns ``INVALID``."""
    entry = {"type": kind, "loc": list(loc), "msg": msg, "input": _jsonable(value)}
    if ctx is not None:
        entry["ctx"] = ctx
    errors.append(entry)
    return INVALID


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def strip(tp):
    """The type inside ``Annotated[...]``; ``inspect.Parameter.empty`` becomes ``Any``."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _is_union(tp):
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def optional(tp):
    """Whether ``None`` is a valid value of ``tp`` (``Optional[..]``, ``Any``, ``None``)."""
    tp = strip(tp)
    if tp is typing.Any or tp is None or tp is type(None):
        return True
    return _is_union(tp) and any(a is type(None) for a in typing.get_args(tp))


def is_scalar(tp):
    """Whether ``tp`` is a plain value FastAPI reads from the query string."""
    tp = strip(tp)
    if _is_union(tp):
        return all(is_scalar(a) for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is typing.Literal:
        return True
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return True
    return tp in (str, int, float, bool, type(None), typing.Any)


def validate(tp, value, loc, errors, from_text=False):
    """Checks ``value`` against ``tp``; returns the converted value or ``INVALID``.

    ``from_text`` says the value is a query-string text: complex types are then parsed
    as JSON first, like the Rust SDK does.
    """
    tp = strip(tp)
    if tp is typing.Any or tp is object:
        return value
    if tp is None or tp is type(None):
        if value is None:
            return None
        return error(errors, "none_required", loc, "Input should be None", value)
    if _is_union(tp):
        return _union(tp, value, loc, errors, from_text)
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return _literal(tp, value, loc, errors)
    if from_text and isinstance(value, str) and not is_scalar(tp):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, enum.Enum) and isinstance(value.value, str):
            return value.value
        return error(errors, "string_type", loc, "Input should be a valid string", value)
    if tp is bool:
        return _bool(value, loc, errors)
    if tp is int:
        return _int(value, loc, errors)
    if tp is float:
        return _float(value, loc, errors)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp, value, loc, errors)
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        return _list(tp, value, loc, errors)
    if origin is dict or tp is dict or origin is typing.Mapping:
        return _dict(tp, value, loc, errors)
    if typing.is_typeddict(tp):
        return _typeddict(tp, value, loc, errors)
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, loc, errors)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    return error(
        errors, "is_instance_of", loc, f"Input should be an instance of {getattr(tp, '__name__', tp)}", value
    )


def _union(tp, value, loc, errors, from_text):
    members = typing.get_args(tp)
    if value is None and type(None) in members:
        return None
    candidates = [m for m in members if m is not type(None)]
    # An exact type match wins (pydantic's smart mode): `int | str` keeps "5" a string.
    for member in candidates:
        if isinstance(member, type) and type(value) is member:
            return value
    collected = []
    for member in candidates:
        attempt = []
        result = validate(member, value, loc, attempt, from_text)
        if result is not INVALID:
            return result
        collected.extend(attempt)
    errors.extend(collected)
    return INVALID


def _literal(tp, value, loc, errors):
    options = typing.get_args(tp)
    for option in options:
        if value == option and type(value) is type(option):
            return option
        if isinstance(value, str) and not isinstance(option, str) and str(option) == value:
            return option
    expected = _or_list(options)
    return error(errors, "literal_error", loc, f"Input should be {expected}", value, {"expected": expected})


def _or_list(options):
    shown = [repr(o) for o in options]
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _enum(tp, value, loc, errors):
    for member in tp:
        if value == member.value or value is member:
            return member
        if isinstance(value, str) and str(member.value) == value:
            return member
    expected = _or_list([m.value for m in tp])
    return error(errors, "enum", loc, f"Input should be {expected}", value, {"expected": expected})


def _bool(value, loc, errors):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return error(errors, "bool_parsing", loc, "Input should be a valid boolean, unable to interpret input", value)
    return error(errors, "bool_type", loc, "Input should be a valid boolean", value)


def _int(value, loc, errors):
    if isinstance(value, bool):
        return error(errors, "int_type", loc, "Input should be a valid integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        return error(
            errors, "int_from_float", loc, "Input should be a valid integer, got a number with a fractional part", value
        )
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return error(
                errors, "int_parsing", loc, "Input should be a valid integer, unable to parse string as an integer", value
            )
    return error(errors, "int_type", loc, "Input should be a valid integer", value)


def _float(value, loc, errors):
    if isinstance(value, bool):
        return error(errors, "float_type", loc, "Input should be a valid number", value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return error(
                errors, "float_parsing", loc, "Input should be a valid number, unable to parse string as a number", value
            )
    return error(errors, "float_type", loc, "Input should be a valid number", value)


def _list(tp, value, loc, errors):
    origin = typing.get_origin(tp) or tp
    if not isinstance(value, (list, tuple)):
        return error(errors, "list_type", loc, "Input should be a valid list", value)
    args = typing.get_args(tp)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(args) != len(value):
            return error(errors, "tuple_type", loc, f"Tuple should have {len(args)} items", value)
        items = [validate(a, v, [*loc, i], errors) for i, (a, v) in enumerate(zip(args, value))]
    else:
        item = args[0] if args else typing.Any
        items = [validate(item, v, [*loc, i], errors) for i, v in enumerate(value)]
    if any(i is INVALID for i in items):
        return INVALID
    return items if origin is list else origin(items)


def _dict(tp, value, loc, errors):
    if not isinstance(value, dict):
        return error(errors, "dict_type", loc, "Input should be a valid dictionary", value)
    args = typing.get_args(tp)
    if not args:
        return value
    key_tp, value_tp = args
    out = {}
    failed = False
    for k, v in value.items():
        key = validate(key_tp, k, [*loc, k], errors, from_text=True)
        item = validate(value_tp, v, [*loc, k], errors)
        failed |= key is INVALID or item is INVALID
        out[key] = item
    return INVALID if failed else out


def _fields(tp, value, loc, errors, fields):
    """Validates the fields of a dict; ``fields`` is ``[(name, type, has_default)]``."""
    out = {}
    failed = False
    for name, field_tp, has_default in fields:
        if name in value:
            result = validate(field_tp, value[name], [*loc, name], errors)
            failed |= result is INVALID
            out[name] = result
        elif not has_default:
            if optional(field_tp):
                out[name] = None
            else:
                error(errors, "missing", [*loc, name], "Field required", value)
                failed = True
    return INVALID if failed else out


def _typeddict(tp, value, loc, errors):
    if not isinstance(value, dict):
        return error(errors, "dict_type", loc, "Input should be a valid dictionary", value)
    hints = typing.get_type_hints(tp)
    required = getattr(tp, "__required_keys__", set(hints))
    fields = [(name, hint, name not in required) for name, hint in hints.items()]
    out = _fields(tp, value, loc, errors, fields)
    if out is INVALID:
        return INVALID
    return {k: v for k, v in out.items() if k in value or k in required}


def _dataclass(tp, value, loc, errors):
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        return error(
            errors, "dataclass_type", loc, f"Input should be a dictionary or an instance of {tp.__name__}", value
        )
    hints = typing.get_type_hints(tp)
    fields = [
        (
            f.name,
            hints.get(f.name, typing.Any),
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
        )
        for f in dataclasses.fields(tp)
        if f.init
    ]
    out = _fields(tp, value, loc, errors, fields)
    if out is INVALID:
        return INVALID
    return tp(**out)


def schema(tp, defs):
    """The JSON Schema of ``tp``; named types (dataclasses, TypedDicts, enums) go to ``defs``."""
    tp = strip(tp)
    if tp is typing.Any or tp is object:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if _is_union(tp):
        return {"anyOf": [schema(a, defs) for a in typing.get_args(tp)]}
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(tp))}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if tp in simple:
        return {"type": simple[tp]}
    if tp is bytes:
        return {"type": "string", "format": "binary"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        defs.setdefault(tp.__name__, {"title": tp.__name__, "enum": [m.value for m in tp]})
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        args = typing.get_args(tp)
        out = {"type": "array"}
        if (origin or tp) is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            out["prefixItems"] = [schema(a, defs) for a in args]
        elif args:
            out["items"] = schema(args[0], defs)
        return out
    if origin is dict or tp is dict or origin is typing.Mapping:
        args = typing.get_args(tp)
        out = {"type": "object"}
        if args and strip(args[1]) is not typing.Any:
            out["additionalProperties"] = schema(args[1], defs)
        return out
    if typing.is_typeddict(tp) or dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            defs[name] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    return {}


def _object_schema(tp, defs):
    hints = typing.get_type_hints(tp)
    properties = {}
    required = []
    if typing.is_typeddict(tp):
        keys = getattr(tp, "__required_keys__", set(hints))
        for name, hint in hints.items():
            properties[name] = {"title": _title(name), **schema(hint, defs)}
            if name in keys:
                required.append(name)
    else:
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            prop = {"title": _title(f.name), **schema(hints.get(f.name, typing.Any), defs)}
            if f.default is not dataclasses.MISSING:
                prop["default"] = _jsonable(f.default)
            elif f.default_factory is dataclasses.MISSING:
                required.append(f.name)
            properties[f.name] = prop
    out = {"title": tp.__name__, "type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def _title(name):
    return " ".join(w.capitalize() for w in name.split("_") if w)


def to_json(value):
    """``value`` as JSON-compatible data: dataclasses become dicts, enums their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "model_dump"):
        return to_json(value.model_dump())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def dumps(value):
    """Compact JSON text of ``value`` (after ``to_json``)."""
    return json.dumps(to_json(value), separators=(",", ":"), ensure_ascii=False)
