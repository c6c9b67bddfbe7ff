"""Which implementation TensorRT's ONNX parser gives an attn_deploy node: the plugin or the node's
model-local function, per TensorRT version, file flavor and whether the plugin library is loaded.

What the parser does (onnx-tensorrt's ModelImporter and FallbackPluginImporter, and TensorRT's
release notes):

- A node is looked up as a plugin by its op type, the ``plugin_version`` attribute (default "1")
  and the ``plugin_namespace`` attribute (default ""). From 10.10 a node without that attribute
  is looked up in the namespace named by its domain. attn_deploy's creators are registered in
  namespace ``attn_deploy`` (= the nodes' domain).
- 10.0 to 10.6: a node whose op type names a model-local function is imported as that function;
  only a node without one goes to the plugin lookup.
- 10.7 to 10.14: the parser prefers a registered plugin over a local function.
- 10.15 and 11: a node with a local function goes to the plugin only when it carries the
  ``plugin_namespace`` attribute; otherwise its function is imported.

``attn-deploy build-engine`` (and the ``tensorrt`` runner) does not depend on any of this: with the
plugin library loaded it binds every attn_deploy node to its plugin in memory (functions removed,
``plugin_namespace`` set, as the ``tensorrt`` flavor does), for every TensorRT version.
"""
from __future__ import annotations

from dataclasses import dataclass

from attn_deploy.op_contract import DOMAIN, PLUGIN_NAMESPACE

PLUGIN_BEFORE_FUNCTION_SINCE = (10, 7)
NAMESPACE_FROM_DOMAIN_SINCE = (10, 10)
FUNCTION_UNLESS_NAMESPACE_SINCE = (10, 15)


@dataclass(frozen=True)
class Binding:
    """``via`` is "plugin", "function" or "" (nothing TensorRT can import); ``why`` says why."""

    via: str
    why: str


def parse_version(text: str) -> tuple[int, int]:
    """'10.3' or '10.3.0.26' -> (10, 3)."""
    parts = str(text).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"TensorRT version: expected MAJOR.MINOR, got {text!r}") from None


def lookup_namespace(version: tuple[int, int], namespace_attr: str | None, domain: str) -> str:
    """The namespace the parser looks the plugin up in."""
    if namespace_attr is not None:
        return namespace_attr
    return domain if version >= NAMESPACE_FROM_DOMAIN_SINCE else ""


def parser_binding(version: tuple[int, int], *, has_function: bool, namespace_attr: str | None,
                   domain: str = DOMAIN, library_loaded: bool = True) -> Binding:
    """What TensorRT ``version``'s ONNX parser imports for one attn_deploy node of a file."""
    name = ".".join(map(str, version))
    namespace = lookup_namespace(version, namespace_attr, domain)
    if not library_loaded:
        found, missing = False, "the plugin library is not loaded"
    elif namespace != PLUGIN_NAMESPACE:
        found = False
        missing = (f"TensorRT {name} looks the plugin up in namespace {namespace!r} (the node has "
                   f"no plugin_namespace attribute{'' if version >= NAMESPACE_FROM_DOMAIN_SINCE else ' and TensorRT before 10.10 ignores the domain'}), "
                   f"not {PLUGIN_NAMESPACE!r}")
    else:
        found, missing = True, ""
    if not has_function:
        if found:
            return Binding("plugin", "no local function; the plugin is registered")
        return Binding("", f"no local function and no plugin: {missing}")
    if version < PLUGIN_BEFORE_FUNCTION_SINCE:
        return Binding("function", f"TensorRT {name} imports a node with a model-local function "
                                   "as that function (plugins come first from 10.7)")
    if version < FUNCTION_UNLESS_NAMESPACE_SINCE:
        if found:
            return Binding("plugin", f"TensorRT {name} prefers a registered plugin over the "
                                     "local function")
        return Binding("function", f"local function imported: {missing}")
    if namespace_attr is None:
        return Binding("function", f"TensorRT {name} uses the plugin for a node with a local "
                                   "function only when the node has a plugin_namespace attribute")
    if found:
        return Binding("plugin", "plugin_namespace set and the plugin is registered")
    return Binding("function", f"local function imported: {missing}")


# Representative versions of each span where the parser's behaviour differs.
VERSION_SPANS = (("10.0-10.6 (JetPack 6: 10.3)", (10, 3)), ("10.7-10.9", (10, 7)),
                 ("10.10-10.14", (10, 10)), ("10.15 and 11.x", (10, 15)))
FLAVOR_NODES = {"default": dict(has_function=True, namespace_attr=None),
                "tensorrt": dict(has_function=False, namespace_attr=PLUGIN_NAMESPACE)}


def binding_table() -> str:
    """Markdown: flavor x TensorRT version x plugin library loaded -> what runs an attn_deploy
    node when TensorRT parses the file itself, and with ``attn-deploy build-engine``."""
    names = {"plugin": "plugin", "function": "local function", "": "parse error"}
    rows = ["| file flavor | TensorRT | library loaded: trtexec / Polygraphy | library loaded: "
            "attn-deploy build-engine | library not loaded |", "|---|---|---|---|---|"]
    for flavor, node in FLAVOR_NODES.items():
        for label, version in VERSION_SPANS:
            loaded = parser_binding(version, library_loaded=True, **node).via
            absent = parser_binding(version, library_loaded=False, **node).via
            rows.append(f"| {flavor} | {label} | {names[loaded]} | plugin | {names[absent]} |")
    rows.append("| plain | any | standard ONNX ops | standard ONNX ops | standard ONNX ops |")
    return "\n".join(rows)
