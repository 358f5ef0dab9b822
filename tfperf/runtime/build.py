"""From a declaration to something to time: :func:`open_block` makes the live state of a scenario's block, and
:func:`runnable` builds one of its variants inside it. The only place that knows which scenario kind is built by
which runtime module."""

from __future__ import annotations

from collections.abc import Sequence

from tfperf.api.ab import ABScenario
from tfperf.api.base import Scenario, ScenarioError, Size, Variant
from tfperf.api.distributed import MultiWorkerScenario, ServiceScenario
from tfperf.api.pipelines import PipelineScenario
from tfperf.api.training import ModelScenario

from .base import Block, BlockContext, Runnable
from .datasets import PipelineData, data_of
from .multiworker import MultiWorkerRun
from .pipelines import PipelineRun
from .service import ServiceBlock, ServiceRun
from .training import TrainRun


def open_block(scenario: Scenario, variants: Sequence[Variant] = (), context: BlockContext | None = None) -> Block:
    """The live state of a block of `scenario`'s `variants`: a service block starts their clusters here, all at
    once. Close it (or use it as a context manager) when the block ends, whatever happened."""
    if isinstance(scenario, ServiceScenario):
        return ServiceBlock(scenario, variants, context)
    return Block(context)


def _data(block: Block, scenario: PipelineScenario) -> PipelineData:
    # by object, not only by name: the two sides of an A/B hold scenarios of the same name, each with its own data
    return block.remember(("data", scenario.name, id(scenario)), lambda: data_of(scenario))


def runnable(scenario: Scenario, v: Variant, size: Size, block: Block | None = None) -> Runnable:
    """Build variant `v` of `scenario` at `size`, inside `block` (default: a block of its own, for a script or a
    test; a service variant's cluster is then its own block's to stop)."""
    block = block if block is not None else open_block(scenario, (v,))
    if isinstance(scenario, ABScenario):  # one side's own variant of its own scenario, in the shared block
        side, own = scenario.unwrap(v)
        return runnable(side, own, size, block)
    if isinstance(scenario, PipelineScenario):
        return PipelineRun(_data(block, scenario), v, size)
    if isinstance(scenario, ModelScenario):
        assert scenario.data is not None
        return TrainRun(scenario, v, size, _data(block, scenario.data))  # type: ignore[arg-type]
    if isinstance(scenario, ServiceScenario):
        assert isinstance(block, ServiceBlock)
        return ServiceRun(scenario, v, size, block)  # type: ignore[arg-type]
    if isinstance(scenario, MultiWorkerScenario):
        return MultiWorkerRun(scenario, v, size, block.context)  # type: ignore[arg-type]
    if scenario.build is not None:
        built = scenario.build(v, size)
        if not isinstance(built, Runnable):
            raise ScenarioError(f"scenario {scenario.name}: build returned {type(built).__name__}, expected a "
                                "subclass of tfperf.Runnable")
        return built
    raise ScenarioError(f"scenario {scenario.name}: nothing builds its variants (give build=)")
