"""``trt-check``, ``build-engine`` and ``plugins-path``: the TensorRT commands.

``trt-check`` needs only onnx; ``build-engine`` needs TensorRT and a GPU and says so when they
are absent; ``plugins-path`` prints where the plugin library is (for trtexec and Polygraphy).
"""
from __future__ import annotations

import json
import sys


def cmd_trt_check(args) -> int:
    from attn_deploy.trt_check.model_check import check_model

    results = [check_model(path, versions=args.tensorrt, plugins_loaded=not args.without_plugins)
               for path in args.files]
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        for r in results:
            print(f"{r.path}: {'PASS' if r else 'FAIL'}")
            print("\n".join("  " + line for line in r.summary(verbose=args.verbose).splitlines()))
    return 0 if all(results) else 1


def cmd_build_engine(args) -> int:
    from attn_deploy.backends.tensorrt.engine_builder import build_engine
    from attn_deploy.backends.tensorrt.profiles import describe_profile
    from attn_deploy.cli.folder_args import output_folder
    from attn_deploy.shapes import parse_shapes

    def shapes(items):  # repeated --min x:1x64x8x8 --min y:1x8, or one x:..,y:..
        return {n: s for item in items or [] for n, s in parse_shapes(item).items()}

    if args.cache_dir is not None:
        output_folder(args.cache_dir, "build-engine --cache-dir")
    build = build_engine(args.file, precision="fp16" if args.fp16 else "fp32",
                         min_shapes=shapes(args.min), opt_shapes=shapes(args.opt),
                         max_shapes=shapes(args.max), workspace_mb=args.workspace,
                         cache_dir=args.cache_dir, plugin_library=args.plugins,
                         use_cache=not args.no_cache)
    for note in build.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.output:
        from attn_deploy.atomic_write import atomic_write_bytes
        atomic_write_bytes(args.output, build.path.read_bytes())
    state = "cached" if build.cached else f"built in {build.seconds:.1f} s"
    print(f"{args.output or build.path}  ({build.precision}, TensorRT {build.tensorrt}, {state})")
    print(f"profile: {describe_profile(build.profile)}")
    if build.plugin_library:
        print(f"plugins: {build.plugin_library}")
    return 0


def cmd_plugins_path(args) -> int:
    from attn_deploy.backends.tensorrt.plugin_library import (BUILD_HINT, STATIC_LIBRARY_NAME,
                                                              plugin_library_path,
                                                              static_companion)

    path = plugin_library_path(required=False)
    if path is None:
        print(f"libattn_deploy_plugins.so is not built; {BUILD_HINT}", file=sys.stderr)
        return 1
    if args.static:
        companion = static_companion(path)
        if companion is None:
            print(f"{STATIC_LIBRARY_NAME} is not beside {path}; rebuild plugins/ with TensorRT "
                  "headers (it is built with the plugin library)", file=sys.stderr)
            return 1
        path = companion
    print(path)
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "trt-check", help="static TensorRT compatibility check of ONNX files (no TensorRT needed)",
        description="Check every node against TensorRT's ONNX parser support (onnx-tensorrt's "
                    "operator list) for each target TensorRT version, as TensorRT's parser reads "
                    "the file itself (trtexec, Polygraphy): each attn_deploy node is reported as "
                    "going to its plugin or to its model-local function, and why. (attn-deploy "
                    "build-engine binds every attn_deploy node to its plugin whatever the file.) "
                    "Exit 0 only when every file passes.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--tensorrt", action="append", metavar="VERSION",
                   help="target TensorRT version, 10.0 ... 11.x, e.g. 10.3 (JetPack 6), 10.15, "
                        "11.1 (repeatable; default: 10.3 and 11.1)")
    p.add_argument("--without-plugins", action="store_true",
                   help="judge the file as parsed without libattn_deploy_plugins.so loaded")
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also print notes (restrictions not checkable statically)")
    p.set_defaults(func=cmd_trt_check)

    p = subparsers.add_parser(
        "build-engine", help="build a TensorRT engine (cached) from an ONNX file",
        description="Build a TensorRT engine with the attn_deploy plugins and one optimization "
                    "profile (from the block spec in the model's metadata, or --min/--opt/--max). "
                    "Engines are cached by model, TensorRT version, GPU, precision and profile.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--fp16", action="store_true",
                   help="float16 engine (TensorRT 10: builder flag; 11: float16 copy of the model)")
    for kind in ("min", "opt", "max"):
        p.add_argument(f"--{kind}", action="append", metavar="NAME:DxDx..[,..]",
                       help=f"{kind} shape of inputs, trtexec syntax, e.g. x:1x64x32x32 "
                            "(repeatable)")
    p.add_argument("--workspace", type=int, metavar="MB", help="builder workspace (default 4096)")
    p.add_argument("--plugins", metavar="LIB", help="plugin library (default: found by "
                                                    "plugins-path)")
    p.add_argument("--cache-dir", metavar="DIR", help="engine cache folder "
                                                      "(default ~/.cache/attn_deploy/engines)")
    p.add_argument("--no-cache", action="store_true", help="rebuild even if cached")
    p.add_argument("--output", "-o", metavar="PATH", help="also write the engine here")
    p.set_defaults(func=cmd_build_engine)

    p = subparsers.add_parser(
        "plugins-path", help="print the path of libattn_deploy_plugins.so",
        description="Print the plugin library's path: libattn_deploy_plugins.so for TensorRT's "
                    "loader (trtexec --dynamicPlugins, IPluginRegistry.load_library), or with "
                    "--static its companion that registers when loaded (trtexec "
                    "--staticPlugins, polygraphy --plugins). Exit 1 (with build instructions) "
                    "if not built.")
    p.add_argument("--static", action="store_true",
                   help="print libattn_deploy_plugins_static.so (registers at load time)")
    p.set_defaults(func=cmd_plugins_path)
