"""A griffe extension that lets mkdocstrings render the package's reST-flavoured docstrings.

The docstrings use Sphinx cross-reference roles (``:class:`~resumable_chat.s2.HttpBasin```)
and ``>>>`` examples; mkdocstrings renders Markdown. This extension, loaded from mkdocs.yml,
rewrites each docstring before it is parsed:

- a role becomes an optional autorefs link around a code span: a link when the target is
  rendered somewhere in the site, plain code otherwise (never a build warning). ``~`` keeps the
  last component as the title, as in Sphinx; a name without a package is looked up relative to
  the docstring's module (``.sibling`` relative to its package);
- a ``>>>`` example (up to the next blank line) becomes a fenced ``pycon`` block;
- an attribute without a docstring gets the Sphinx ``#:`` comment lines right above it.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")


def _target(name: str, obj: griffe.Object) -> str:
    """The full dotted path of a role's target written in ``obj``'s docstring."""
    if name.startswith("resumable_chat"):
        return name
    if name.startswith("."):  # relative to the docstring's package
        module = obj.module
        package = module.path if module.is_init_module else module.path.rsplit(".", 1)[0]
        return package + name
    head, _, rest = name.partition(".")
    scope = obj if obj.is_class or obj.is_module else obj.parent
    while scope is not None:  # a sibling member (``:meth:`aclose```), then outer scopes
        if head in scope.members:
            return ".".join(filter(None, (scope.members[head].path, rest)))
        scope = scope.parent
    try:
        return ".".join(filter(None, (obj.resolve(head), rest)))
    except griffe.NameResolutionError:
        return f"{obj.module.path}.{name}"


def _link(match: re.Match[str], obj: griffe.Object) -> str:
    short, name = match.group(1), match.group(2).strip()
    title = name.lstrip(".").rsplit(".", 1)[-1] if short else name.lstrip(".")
    target = html.escape(_target(name, obj), quote=True)
    return f'<autoref identifier="{target}" optional><code>{html.escape(title)}</code></autoref>'


def _fence_doctests(text: str) -> str:
    out: list[str] = []
    indent: str | None = None  # the open block's indentation
    for line in text.splitlines():
        prompt = _PROMPT.match(line)
        if prompt and indent is None:
            indent = prompt.group(1)
            out += ["", f"{indent}```pycon"]
        elif indent is not None and not line.strip():  # a blank line ends the example
            out += [f"{indent}```", ""]
            indent = None
        out.append(line)
    if indent is not None:
        out.append(f"{indent}```")
    return "\n".join(out)


def _doc_comment(lines: list[str], lineno: int) -> str:
    """The ``#:`` comment lines right above line ``lineno`` (1-based), without the markers."""
    found: list[str] = []
    index = lineno - 2
    if index >= len(lines):  # a stub's line number (e.g. protoc's .pyi) past the .py source
        return ""
    while index >= 0 and lines[index].lstrip().startswith("#:"):
        found.insert(0, lines[index].lstrip()[2:].strip())
        index -= 1
    return "\n".join(found)


def rewrite(text: str, obj: griffe.Object) -> str:
    """``text`` with roles turned into optional links and doctests into fenced blocks."""
    if ">>>" in text:
        text = _fence_doctests(text)
    return _ROLE.sub(lambda m: _link(m, obj), text)


def _objects(obj: griffe.Object) -> list[griffe.Object]:
    """``obj`` and every object defined under it (aliases, i.e. imports, left out)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found += _objects(member)  # type: ignore[arg-type]
    return found


class SphinxRolesToMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Called by griffe once the package is loaded; edits docstrings in place."""
        for obj in _objects(pkg):
            if obj.docstring is None and obj.is_attribute and obj.lineno is not None:
                comment = _doc_comment(obj.module.lines, obj.lineno)
                if comment:
                    obj.docstring = griffe.Docstring(comment, parent=obj)
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj.docstring.value, obj)
