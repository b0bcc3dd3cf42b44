"""YAML from files a person (or a vendor) wrote: safe, small, and without aliases.

``yaml.safe_load`` never runs code, but it still expands aliases: a 577-byte
file of nested ``*a`` references ("billion laughs") becomes a million-leaf
object, which takes seconds and gigabytes before detal sees it.
:func:`load_yaml` refuses aliases outright (anchors alone are harmless) and
stops at the first one, so such a file is answered at once. A detal config
never needs an alias: write the value out.

It also refuses text over :data:`MAX_YAML_BYTES` and nesting too deep for the
parser, and turns every way the parser can fail (including an integer with
more digits than Python converts) into one ``error_type`` line naming the
source.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from detal.errors import ConfigError, DetalError

__all__ = ["MAX_YAML_BYTES", "load_yaml"]

MAX_YAML_BYTES = 1024 * 1024
"""The largest YAML text (config, ``data.yaml``) detal parses: 1 MiB."""


class _AliasFound(Exception):
    def __init__(self, anchor: str, line: int) -> None:
        super().__init__(anchor, line)
        self.anchor = anchor
        self.line = line


class _Refused(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message, line)
        self.message = message
        self.line = line


_LITERAL_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_LITERAL_FLOAT = re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")
_LITERAL_BOOL = ("true", "True", "TRUE", "false", "False", "FALSE")
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$")


class _NoAliasLoader(yaml.SafeLoader):
    """``SafeLoader`` that stops at the first alias instead of expanding it.

    It also refuses what YAML 1.1 reads in a way a person does not mean: a key
    given twice (PyYAML keeps the last one silently), an integer written
    ``010`` (octal 8), ``0x10`` (16), ``0b1``, ``1_000`` or ``1:30`` (90), a
    float written ``1_000.5`` or ``1:30.5``, and a boolean written ``yes``,
    ``no``, ``on`` or ``off`` (YAML 1.1 reads a class name ``no`` as false):
    ``true`` and ``false`` are the booleans. A float written without a dot
    (``5e-2``), which YAML 1.1 leaves a string, is read as the float it reads as.
    """

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader reports an unhashable key itself
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _Refused(f"key {key!r} given twice (first on line {seen[key]})", line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> Any:
        text = str(node.value)
        if not _LITERAL_INT.match(text):
            raise _Refused(
                f"{text!r} is not a plain decimal integer (YAML 1.1 would read it as "
                f"{super().construct_yaml_int(node)}); write the number in decimal "
                "without leading zeros, or quote it",
                node.start_mark.line + 1,
            )
        return int(text)

    def construct_yaml_float(self, node: Any) -> Any:
        text = str(node.value)
        if not _LITERAL_FLOAT.match(text):
            raise _Refused(
                f"{text!r} is not a plain decimal number (YAML 1.1 would read it as "
                f"{super().construct_yaml_float(node)!r}); write it without '_' or ':', or quote it",
                node.start_mark.line + 1,
            )
        return super().construct_yaml_float(node)

    def construct_yaml_bool(self, node: Any) -> Any:
        text = str(node.value)
        if text not in _LITERAL_BOOL:
            raise _Refused(
                f"{text!r} is not true or false (YAML 1.1 would read it as "
                f"{super().construct_yaml_bool(node)}); write true or false, or quote it",
                node.start_mark.line + 1,
            )
        return super().construct_yaml_bool(node)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasFound(str(event.anchor), event.start_mark.line + 1)
        return super().compose_node(parent, index)


_NoAliasLoader.add_constructor("tag:yaml.org,2002:int", _NoAliasLoader.construct_yaml_int)
_NoAliasLoader.add_constructor("tag:yaml.org,2002:float", _NoAliasLoader.construct_yaml_float)
_NoAliasLoader.add_constructor("tag:yaml.org,2002:bool", _NoAliasLoader.construct_yaml_bool)
_NoAliasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    _EXPONENT_FLOAT,
    list("-+0123456789"),
)


def _where_and_what(exc: yaml.MarkedYAMLError) -> str:
    """``line N: not valid YAML (what the parser found)``, with a hint for a tab, YAML's common trap."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}: " if mark is not None else ""
    what = ", ".join(part for part in (exc.context, exc.problem) if part) or exc.__class__.__name__
    if "'\\t'" in what:
        what += "; YAML allows no tab here: use spaces"
    return f"{where}not valid YAML ({what})"


def load_yaml(text: str, source: str, error_type: type[DetalError] = ConfigError) -> Any:
    """Parse ``text`` (from ``source``) as YAML without aliases; ``error_type`` on any problem."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise error_type(f"{source}: YAML file too large ({size} bytes; the limit is 1 MiB)")
    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    except _AliasFound as exc:
        raise error_type(
            f"{source}: line {exc.line}: YAML aliases (*{exc.anchor}) are not allowed; "
            "write the value out instead"
        ) from None
    except _Refused as exc:
        raise error_type(f"{source}: line {exc.line}: {exc.message}") from None
    except yaml.MarkedYAMLError as exc:
        raise error_type(f"{source}: {_where_and_what(exc)}") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise error_type(f"{source}: not valid YAML ({first})") from None
    except RecursionError:
        raise error_type(f"{source}: not valid YAML (nested too deeply)") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more than 4300 digits
        raise error_type(f"{source}: not valid YAML ({str(exc).splitlines()[0][:120]})") from None
    finally:
        loader.dispose()
