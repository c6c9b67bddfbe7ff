"""Deploying a user's trained model: build it from ``package.module:factory``, load its
checkpoint without running code from it (:mod:`attn_deploy.deploy.checkpoint`: mmengine,
Lightning, plain, EMA), swap layers that do not export (:func:`deployable`), export, validate at
two or more shapes, build a TensorRT engine where TensorRT is present, and run TOML recipes
(``export/*.toml``) that say all of this declaratively. Reference networks for the recipes:
:mod:`attn_deploy.deploy.reference_networks`. Triton model repositories:
:mod:`attn_deploy.deploy.triton_repo`.
"""
_LAZY = {
    "CheckpointOptions": "checkpoint", "CheckpointReport": "checkpoint",
    "load_checkpoint": "checkpoint",
    "DeployReport": "layer_swaps", "Swap": "layer_swaps", "deployable": "layer_swaps",
    "DeployResult": "pipeline", "deploy_model": "pipeline", "run_recipe": "pipeline",
    "Recipe": "recipe", "load_recipe": "recipe",
    "build_model": "user_model", "resolve_factory": "user_model",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    # Most of deploy/ needs torch; triton_repo (the runtime side) does not, so nothing is loaded
    # until asked for.
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
