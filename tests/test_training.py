"""Every training loop learns; checkpoints restore; a user's model runs the same matrix; bad models say why."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfperf
from tfperf import Unsupported
from tfperf.api.base import ScenarioError
from tfperf.api.training import TrainVariant
from tfperf.builtins import models as builtin
from tfperf.runtime import devices
from tfperf.runtime.build import runnable

mlp = builtin.mlp
LOOPS = [v.name for v in mlp.variants if v.input == "best" and v.device == "/CPU:0" and v.strategy == "default"
         and not v.checkpoint_every and not v.early_stopping]


def test_the_table_has_every_loop_for_the_mlp():
    assert {mlp.variant(n).loop for n in LOOPS} == {"fit", "fit_spe", "eager", "function", "xla"}


@pytest.mark.parametrize("name", LOOPS)
def test_every_loop_learns(name, smoke):
    run = runnable(mlp, mlp.variant(name), smoke)
    before = run.probe_loss()
    for _ in range(4):
        run.run_round()
    after = run.probe_loss()
    assert np.isfinite(after) and after < before, (before, after)


@pytest.mark.parametrize("name", ["fit-best", "function-best"])
def test_more_epochs_rebuild_nothing_so_no_warm_up_round_is_owed(name, smoke):
    run = runnable(mlp, mlp.variant(name), smoke)
    one = run.run_round()
    dataset = run.dataset
    traced = (run.model.train_function if name.startswith("fit") else run._step)
    count = None if name.startswith("fit") else run._step.experimental_get_tracing_count()
    run.scale(3)
    assert not run.warm_after_scale and run.dataset is dataset
    assert run.run_round() == run.examples_per_round == 3 * one
    if name.startswith("fit"):
        assert run.model.train_function is traced
    else:
        assert run._step is traced and run._step.experimental_get_tracing_count() == count


def test_mirrored_runs_on_two_logical_cpus(smoke):
    run = runnable(mlp, mlp.variant("fit-best-mirrored"), smoke)
    assert run.info["replicas"] == 2
    before = run.probe_loss()
    run.run_round()
    assert run.probe_loss() < before


def test_resume_from_checkpoint_restores_weights_and_optimizer_step(smoke):
    v = mlp.variant("function-best-ckpt")
    first = runnable(mlp, v, smoke)
    first.run_round()
    first.run_round()
    path = first.manager.save()
    steps_done = int(first.optimizer.iterations.numpy())
    assert steps_done == 2 * first.steps

    second = runnable(mlp, v, smoke)
    assert int(second.optimizer.iterations.numpy()) == 0
    second.optimizer.build(second.model.trainable_variables)  # Keras 3 creates optimizer slots lazily
    second.checkpoint.restore(path).assert_consumed()
    assert int(second.optimizer.iterations.numpy()) == steps_done
    for a, b in zip(first.model.weights, second.model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    first.close()
    second.close()


def test_gpu_variants_are_declared_unsupported_without_a_gpu():
    gpu = [v for v in mlp.variants if "gpu" in v.requires]
    assert gpu, "the table declares GPU variants"
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(Unsupported, match="needs 1 GPU, this machine has 0"):
        devices.check(gpu[0].requires)


def test_precision_policy_is_restored_after_building():
    with devices.precision("mixed_float16"):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_every_training_variant_has_its_bound_in_the_table():
    for sc in (builtin.mlp, builtin.cnn):
        names = {v.name for v in sc.variants}
        for v in sc.variants:
            assert isinstance(v, TrainVariant) and v.bound in names, v.name


def _data():
    x = np.random.default_rng(0).normal(size=(256, 6)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int64")
    return tfperf.Stages(source=lambda: tf.data.Dataset.from_tensor_slices((x, y)), map=lambda a, b: (a * 1.0, b),
                         batch_size=32)


def _compiled():
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


def test_a_user_model_learns_in_every_loop(smoke):
    sc = tfperf.model("user", _compiled, tfperf.pipeline("user_in", _data()), steps=4, strategies=False,
                      extras=False)
    for v in sc.variants:
        if v.requires:
            continue
        run = runnable(sc, v, smoke)
        before = run.probe_loss()
        run.run_round()
        run.run_round()
        assert run.probe_loss() < before, v.name
        assert run.info["input_variant"] in ("user_in/naive", "user_in/parallel_prefetch",
                                             "memory (one batch on the device)")


def test_a_model_with_loss_and_optimizer_beside_it_and_a_plain_dataset_factory(smoke):
    def build():
        m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
        return m, keras.losses.SparseCategoricalCrossentropy(from_logits=True), keras.optimizers.SGD(0.1)

    x = np.ones((64, 6), "float32")
    sc = tfperf.model("pair", build, lambda: tf.data.Dataset.from_tensor_slices((x, np.zeros(64, "int64"))).batch(16),
                      loops=("fit", "function"), strategies=False, extras=False, gpu=())
    assert sc.data is not None and sc.data.kind == "dataset"
    run = runnable(sc, sc.variant("function-best"), smoke)
    assert run.run_round() == run.examples_per_round > 0


@pytest.mark.parametrize("build, data_fn, message", [
    (lambda: "not a model", None, "model factory .* returned str, expected a compiled keras.Model"),
    (lambda: keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)]), None, "is not compiled"),
    (lambda: (_ for _ in ()).throw(RuntimeError("no GPU memory")), None, "raised RuntimeError: no GPU memory"),
    (_compiled, lambda: tf.data.Dataset.from_tensor_slices((np.ones((64, 5), "float32"), np.zeros(64, "int64"))
                                                           ).batch(8), "do not fit the model"),
    (_compiled, lambda: tf.data.Dataset.range(10).batch(2), "a model trains on \\(features, labels\\) batches"),
])
def test_a_bad_model_or_data_says_which_factory_and_why(smoke, build, data_fn, message):
    sc = tfperf.model("broken", build, data_fn or tfperf.pipeline("broken_in", _data()), loops=("fit",),
                      strategies=False, extras=False, gpu=())
    with pytest.raises(ScenarioError, match=message) as info:
        runnable(sc, sc.variant("fit-best"), smoke)
    assert str(info.value).startswith("scenario broken:") and "\n" not in str(info.value)


def test_the_fit_bound_reads_one_batch_without_autotune(smoke):
    """The compute-only bound of `fit` holds no input cost: one on-device batch, repeated, and no tf.data autotune
    thread (whose teardown after each epoch can stall, see tfperf.runtime.base.Teardowns); the piped variants keep TF's default."""
    bound = runnable(mlp, mlp.variant("fit-memory"), smoke)
    assert bound.dataset.options().autotune.enabled is False
    assert bound.run_round() == bound.examples_per_round > 0
    piped = runnable(mlp, mlp.variant("fit-best"), smoke)
    assert piped.dataset.options().autotune.enabled is not False
