"""Every filter flag once: its option strings, its argparse type and what it means.

Which operations accept a filter is not written here: each :class:`~.registry.Operation` lists the
filters it takes, and the parser, the ``--help`` texts and the scope errors all read that list.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..graph.models import ServiceHealthClassification, ServiceUpdateCategory, ServiceUpdateSeverity
from ..legacy.models import MessageType
from . import types


@attrs.frozen
class Flag:
    """One option string group of a filter and its argparse keywords."""

    names: tuple[str, ...]
    options: Mapping[str, Any] = attrs.field(factory=dict)
    help: str | None = None  # this flag's own, where a filter has several


class Either(argparse.Action):
    """``store_const`` for flags that exclude each other on one ``dest`` (``--active``/``--resolved``).

    argparse's mutually exclusive groups would do, but not inside an argument group shared by
    several subcommands.
    """

    def __init__(
        self, option_strings: Sequence[str], dest: str, *, excludes: str, **kwargs: Any
    ) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)
        self.excludes = excludes

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        given = getattr(namespace, self.dest, None)
        if given is not None and given != self.const:
            raise argparse.ArgumentError(self, f"not allowed with {self.excludes}")
        setattr(namespace, self.dest, self.const)


@attrs.frozen
class Filter:
    """A filter: the ``dest`` it sets (``None`` when not given), its flags, its help."""

    dest: str
    flags: tuple[Flag, ...]
    help: str

    def flag_for(self, value: object) -> str:
        """The flag the user wrote for ``value`` (``--resolved`` or ``--active`` for one dest)."""
        for flag in self.flags:
            if "const" in flag.options and flag.options["const"] == value:
                return flag.names[0]
        return self.flags[0].names[0]


def _one(dest: str, name: str, help_text: str, **options: Any) -> Filter:
    return Filter(dest, (Flag((name,), options),), help_text)


# Flags default to None, not False, so that "given" is told from "not given" by the scope check.
FILTERS: Mapping[str, Filter] = {
    f.dest: f
    for f in (
        _one("select", "--select", "comma-separated fields to ask for ($select)"),
        _one(
            "since",
            "--since",
            "on or after this date or time: history's StatusTime, Graph's lastModifiedDateTime",
            type=types.when("--since"),
        ),
        _one(
            "max_items",
            "--max-items",
            "stop after this many items per tenant",
            type=types.max_items(),
            metavar="N",
        ),
        _one(
            "workload",
            "--workload",
            "a workload id such as Exchange",
            type=types.text("--workload"),
        ),
        _one("start", "--start", "StartTime on or after this", type=types.when("--start")),
        _one("end", "--end", "EndTime on or before this", type=types.when("--end")),
        _one(
            "message_type",
            "--type",
            "the message type: " + ", ".join(m.value for m in MessageType),
            type=types.enum(MessageType, "--type"),
            metavar="TYPE",
        ),
        _one("message_id", "--id", "one message id", type=types.text("--id")),
        _one(
            "expand_issues",
            "--expand-issues",
            "each service with its issues ($expand=issues)",
            action="store_true",
            default=None,
        ),
        _one(
            "service",
            "--service",
            "a service as Graph names it, e.g. 'Exchange Online' (messages: repeat for any of "
            "several)",
            type=types.text("--service"),
            action="append",  # one name per flag: an unquoted Exchange Online is an error, not two
            metavar="NAME",
        ),
        Filter(
            "is_resolved",
            (
                Flag(
                    ("--active",),
                    {"action": Either, "excludes": "--resolved", "const": False},
                    "only issues not resolved",
                ),
                Flag(
                    ("--resolved",),
                    {"action": Either, "excludes": "--active", "const": True},
                    "only resolved issues",
                ),
            ),
            "resolved or not",
        ),
        _one(
            "classification",
            "--classification",
            "incident or advisory",
            type=types.enum(ServiceHealthClassification, "--classification"),
            metavar="KIND",
        ),
        _one(
            "category",
            "--category",
            "preventOrFixIssue, planForChange or stayInformed",
            type=types.enum(ServiceUpdateCategory, "--category"),
        ),
        _one(
            "severity",
            "--severity",
            "normal, high or critical",
            type=types.enum(ServiceUpdateSeverity, "--severity"),
        ),
        _one(
            "major_change",
            "--major-change",
            "only major changes",
            action="store_true",
            default=None,
        ),
        _one(
            "filter",
            "--filter",
            "your own $filter, ANDed with the other filters",
            type=types.odata,
            metavar="ODATA",
        ),
        _one(
            "page_size",
            "--page-size",
            "items per page, sent as Prefer: odata.maxpagesize (never $top); Graph's default 100",
            type=types.graph_page_size(),
            metavar="N",
        ),
    )
}


def add_filter(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, spec: Filter, help_text: str
) -> None:
    """Add ``spec``'s flags; ``help_text`` is :data:`argparse.SUPPRESS` for a filter the command
    knows only to explain that it does not take it."""
    for flag in spec.flags:
        text = help_text
        if flag.help is not None and help_text != argparse.SUPPRESS:
            text = help_text.replace(spec.help, flag.help, 1)
        parser.add_argument(*flag.names, dest=spec.dest, help=text, **flag.options)
