"""lalarand: real-time guarantees for layer-by-layer DNN inference on CPUs and GPUs.

Describe a platform (resources), a task set (periodic or sporadic DNN tasks) and each DNN's
per-layer profile; an allocation policy picks a mode (gpu, cpu-fp32, cpu-int8) and a resource
for every layer; the response-time analysis proves every deadline; the simulator runs the same
plan; the server runs it for real, with numpy arrays in and out.

Load the files the ``lalarand`` command line writes, or build a system in code::

    import lalarand
    system = lalarand.System.load("examples/taskset-light.toml", platform="examples/platform.toml")
    result = system.allocate("lalarand", budget=1.0)
    print(result.schedulable, [(t.name, t.bound_ns) for t in result.analysis.tasks])
    sim = system.simulate(result.allocation, execution="uniform", min_fraction=0.5, seed=1)

Serve it: sporadic tasks take ``submit``/``infer`` with numpy arrays, periodic ones a callable
(or a latest-value ``SLOT``); every result carries its outputs and its timing next to the
proven bound::

    with lalarand.serve(system, allocation, {"digits": "mnist_resnet.onnx"},
                        periodic={"camera": lambda job: next_frame()}) as server:
        result = server.infer("digits", image)      # float32 array of the model's input shape
        print(result.output, result.response_ns, result.bound_ns, result.met)
        print(server.stats())

Start from an ONNX model: ``lalarand.profile(model, modes=[...], dataset=...)`` returns its
``Profile``; ``lalarand.verify(model)`` and ``lalarand.accuracy(model, dataset)`` check it;
``lalarand.zoo(architecture, out)`` writes a standard one;
``lalarand.run_stages(model, profile, inputs, modes)`` runs its stages in the modes given
(an allocation's) on numpy inputs, for accuracy measured with your own metric. pip also installs the ``lalarand``
command. Waits are Python's: Ctrl-C interrupts them, ``submit`` returns a future you can
``await``, result streams are iterable.

``lalarand.policies()`` lists the allocation policies. Every error is a ``LalarandError``
whose message is the library's: what is wrong, where (file and field), and the fix.

This package is a thin binding of the Rust library (``crates/python`` of the lalarand
workspace); docs/analysis.md and docs/runtime.md there describe what it computes.
"""

from ._lalarand import *  # noqa: F401,F403
from ._lalarand import __all__ as _native_all, __version__  # noqa: F401
from ._commands import accuracy, verify  # noqa: F401

__all__ = [name for name in _native_all if not name.startswith("_")] + ["accuracy", "verify"]
