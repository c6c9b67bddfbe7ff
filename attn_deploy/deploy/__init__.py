"""Deploying a user's trained model: build it from ``package.module:factory``, load a
checkpoint safely, swap layers that do not export (:func:`deployable`), export, validate at two
or more shapes, build a TensorRT engine where TensorRT is present, and run TOML recipes
(``export/*.toml``) that say all of this declaratively. Triton model repositories:
:mod:`attn_deploy.deploy.triton_repo`.
"""
from attn_deploy.deploy.layer_swaps import DeployReport, Swap, deployable
from attn_deploy.deploy.pipeline import DeployResult, deploy_model, run_recipe
from attn_deploy.deploy.recipe import Recipe, load_recipe
from attn_deploy.deploy.user_model import build_model, load_checkpoint, resolve_factory

__all__ = ["DeployReport", "DeployResult", "Recipe", "Swap", "build_model", "deploy_model",
           "deployable", "load_checkpoint", "load_recipe", "resolve_factory", "run_recipe"]
