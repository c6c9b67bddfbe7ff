"""``triton-repo``: a Triton Inference Server model repository for an exported model."""
from __future__ import annotations


def cmd_triton_repo(args) -> int:
    from attn_deploy.deploy.triton_repo import check_config, model_config_proto, write_triton_repo

    notes: list[str] = []
    target = write_triton_repo(args.file, args.output, name=args.name, plan=args.plan,
                               max_batch_size=args.max_batch_size, version=args.version,
                               plugin_library=args.plugins, overwrite=args.overwrite,
                               notes=notes)
    for note in notes:
        print(f"note: {note}")
    model_file = "model.plan" if args.plan else "model.onnx"
    print(f"wrote {target}/config.pbtxt and {target}/{args.version}/{model_file}")
    if model_config_proto() is not None:
        check_config((target / "config.pbtxt").read_text())
        print("config.pbtxt parses as Triton's ModelConfig (tritonclient's model_config proto)")
    else:
        print("config.pbtxt checked structurally (install tritonclient to parse it with "
              "Triton's ModelConfig schema)")
    repo = target.parent.resolve()
    serve = f"tritonserver --model-repository={repo}"
    if args.plan:
        lib = args.plugins or "/opt/attn_deploy/lib/libattn_deploy_plugins.so"
        serve = f"LD_PRELOAD={lib} {serve}"
    print(f"serve: {serve}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("triton-repo", help="write a Triton Inference Server model repository "
                                           "(ONNX Runtime backend, or a TensorRT plan)")
    p.add_argument("file", help="ONNX file (for --plan: the ONNX file the plan was built from)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="model repository folder (must exist); the model goes to DIR/NAME")
    p.add_argument("--name", default=None, help="model name (default: the file's stem)")
    p.add_argument("--plan", default=None, metavar="ENGINE",
                   help="serve this serialized TensorRT engine (platform tensorrt_plan) "
                        "instead of the ONNX file (platform onnxruntime_onnx)")
    p.add_argument("--max-batch-size", type=int, default=0,
                   help="0 (default): full shapes, batch axis included; > 0: Triton batches "
                        "requests along axis 0, which must be dynamic on every tensor")
    p.add_argument("--version", type=int, default=1, help="model version folder (default 1)")
    p.add_argument("--plugins", default=None, metavar="LIB",
                   help="path of libattn_deploy_plugins.so in the serving container, for the "
                        "instructions (default /opt/attn_deploy/lib/libattn_deploy_plugins.so)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR/NAME if it exists")
    p.set_defaults(func=cmd_triton_repo)
