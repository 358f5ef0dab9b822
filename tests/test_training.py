"""Every training loop learns; checkpoints restore; unsupported variants say why."""

import numpy as np
import pytest
import tensorflow as tf

from scenarios import Unsupported, devices, training
from scenarios.registry import REGISTRY

LOOPS = [v.name for v in training.VARIANTS if v.input == "best" and v.device == "/CPU:0"
         and v.strategy == "default" and not v.checkpoint_every and not v.early_stopping]


def test_the_table_has_every_loop_for_the_mlp():
    assert {training.SCENARIO.variant(n).loop for n in LOOPS if n.startswith("mlp")} == {
        "fit", "fit_spe", "eager", "function", "xla"}


@pytest.mark.parametrize("name", LOOPS)
def test_every_loop_learns(name, smoke):
    run = training.TrainRun(training.SCENARIO.variant(name), smoke)
    before = run.probe_loss()
    for _ in range(4):
        run.run_round()
    after = run.probe_loss()
    assert np.isfinite(after) and after < before, (before, after)


def test_mirrored_runs_on_two_logical_cpus(smoke):
    run = training.TrainRun(training.SCENARIO.variant("mlp-fit-best-mirrored"), smoke)
    assert run.info["replicas"] == 2
    before = run.probe_loss()
    run.run_round()
    assert run.probe_loss() < before


def test_resume_from_checkpoint_restores_weights_and_optimizer_step(smoke):
    v = training.SCENARIO.variant("mlp-function-best-ckpt")
    first = training.TrainRun(v, smoke)
    first.run_round()
    first.run_round()
    path = first.manager.save()
    steps_done = int(first.optimizer.iterations.numpy())
    assert steps_done == 2 * first.steps

    second = training.TrainRun(v, smoke)
    assert int(second.optimizer.iterations.numpy()) == 0
    second.optimizer.build(second.model.trainable_variables)  # Keras 3 creates optimizer slots lazily
    second.checkpoint.restore(path).assert_consumed()
    assert int(second.optimizer.iterations.numpy()) == steps_done
    for a, b in zip(first.model.weights, second.model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    first.close()
    second.close()


def test_gpu_variants_are_declared_unsupported_without_a_gpu():
    gpu = [v for v in REGISTRY["training"] if "gpu" in v.requires]
    assert gpu, "the table declares GPU variants"
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(Unsupported, match="needs 1 GPU, this machine has 0"):
        training.check_supported(gpu[0])


def test_precision_policy_is_restored_after_building():
    import keras

    with devices.precision("mixed_float16"):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_every_training_variant_has_its_bound_in_the_table():
    names = {v.name for v in training.VARIANTS}
    for v in training.VARIANTS:
        assert v.bound in names, v.name
