"""The timing core from Python: loading, building in code, analyze, allocate and simulate,
checked against the `lalarand` command line on the files in examples/."""

import pytest

import lalarand

# (platform, task set, allocation) of every example system in the workspace.
SYSTEMS = [
    ("platform.toml", "taskset.toml", "allocation.toml"),
    ("platform.toml", "taskset-light.toml", "allocation-light.toml"),
    ("platform-two-cpu.toml", "taskset.toml", "allocation-two-cpu.toml"),
    ("mnist/platform.toml", "mnist/taskset.toml", "mnist/allocation-budget-0.5.toml"),
    ("e2e/platform.toml", "e2e/taskset.toml", "e2e/allocation.toml"),
]


def same_as_cli(obj, expected, where="report"):
    """Every field the CLI's JSON has, the Python object has with the same value."""
    for key, want in expected.items():
        got = getattr(obj, key)
        if isinstance(want, list) and want and isinstance(want[0], dict):
            assert len(got) == len(want), f"{where}.{key}"
            for i, (g, w) in enumerate(zip(got, want)):
                same_as_cli(g, w, f"{where}.{key}[{i}]")
        elif isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12), f"{where}.{key}"
        else:
            assert got == want, f"{where}.{key}"


@pytest.mark.parametrize("platform,tasks,allocation", SYSTEMS)
def test_analyze_matches_the_cli(examples, cli, platform, tasks, allocation):
    system = lalarand.System.load(examples / tasks, platform=examples / platform)
    analysis = system.analyze(system.load_allocation(examples / allocation))
    code, expected = cli(
        "analyze",
        "--platform", examples / platform,
        "--tasks", examples / tasks,
        "--allocation", examples / allocation,
    )
    same_as_cli(analysis, expected)
    assert analysis.schedulable == (code == 0)


def test_light_set_needs_layer_level_allocation(examples):
    """The README's example: gpu-only proves 3 of 4 tasks, the light allocation proves all."""
    system = lalarand.System.load(examples / "taskset-light.toml", platform=examples / "platform.toml")
    gpu_only = system.allocate("gpu-only")
    assert not gpu_only.schedulable
    assert sum(t.schedulable for t in gpu_only.analysis.tasks) == 3
    proven = system.analyze(system.load_allocation(examples / "allocation-light.toml"))
    assert proven.schedulable
    assert all(t.bound_ns <= t.deadline_ns for t in proven.tasks)
    digits = proven.task("digits")
    assert digits.slack_ns == digits.deadline_ns - digits.bound_ns


@pytest.mark.parametrize("policy", lalarand.policies())
def test_allocate_matches_the_cli(examples, cli, tmp_path, policy):
    system = lalarand.System.load(examples / "taskset-light.toml", platform=examples / "platform.toml")
    result = system.allocate(policy, budget=1.0)
    code, expected = cli(
        "allocate",
        "--platform", examples / "platform.toml",
        "--tasks", examples / "taskset-light.toml",
        "--policy", policy,
        "--budget", "1.0",
        "--out", tmp_path / "a.toml",
    )
    assert result.policy == expected["policy"] == policy
    assert result.evaluations == expected["evaluations"]
    assert result.complete == expected["complete"]
    same_as_cli(result.analysis, expected["report"])
    assert result.schedulable == (code == 0)
    # The same allocation file as the CLI's, and it loads back to the same analysis.
    assert result.allocation.to_toml(policy) == (tmp_path / "a.toml").read_text()
    result.allocation.save(tmp_path / "b.toml", policy)
    again = system.analyze(system.load_allocation(tmp_path / "b.toml"))
    assert [t.bound_ns for t in again.tasks] == [t.bound_ns for t in result.analysis.tasks]


def test_policies_are_the_librarys():
    names = lalarand.policies()
    assert "lalarand" in names and "gpu-only" in names and len(names) == len(set(names))


@pytest.mark.parametrize("execution,cli_exec", [("wcet", "wcet"), ("uniform", "uniform:0.5"), ("two-point", "two-point:0.5:0.5")])
def test_simulate_matches_the_cli(examples, cli, execution, cli_exec):
    system = lalarand.System.load(examples / "taskset-light.toml", platform=examples / "platform.toml")
    alloc = system.load_allocation(examples / "allocation-light.toml")
    sim = system.simulate(alloc, execution=execution, min_fraction=0.5, wcet_probability=0.5, seed=7, horizon_ms=500)
    code, expected = cli(
        "simulate",
        "--platform", examples / "platform.toml",
        "--tasks", examples / "taskset-light.toml",
        "--allocation", examples / "allocation-light.toml",
        "--exec", cli_exec,
        "--seed", "7",
        "--horizon-ms", "500",
    )
    expected.pop("gantt")
    same_as_cli(sim, expected)
    assert code == 0 and sim.misses == 0
    assert all(t.max_response_ns <= t.bound_ns for t in sim.tasks)


def test_system_built_in_code_equals_the_files(examples, tmp_path):
    platform = lalarand.Platform([
        lalarand.Resource("gpu", "gpu", device=0),
        lalarand.Resource("cpu", "cpu", threads=1),
    ])
    assert platform.to_toml() == lalarand.Platform.load(examples / "platform.toml").to_toml()
    loaded = lalarand.System.load(examples / "taskset-light.toml", platform=examples / "platform.toml")
    tasks = []
    for info in loaded.tasks:
        profile = lalarand.Profile.load(examples / "profiles" / f"{info.model}.json")
        tasks.append(lalarand.Task(info.name, profile, info.period_ns / 1e6, deadline_ms=info.deadline_ns / 1e6))
    built = lalarand.System(platform, tasks)
    assert [(t.name, t.priority, t.period_ns, t.deadline_ns, t.layers) for t in built.tasks] == [
        (t.name, t.priority, t.period_ns, t.deadline_ns, t.layers) for t in loaded.tasks
    ]
    # An allocation written as a dict proves what the same file proves.
    from_file = loaded.load_allocation(examples / "allocation-light.toml")
    from_dict = built.allocation(from_file.layers)
    assert from_dict.layers == from_file.layers
    assert [t.bound_ns for t in built.analyze(from_dict).tasks] == [t.bound_ns for t in loaded.analyze(from_file).tasks]


def test_chain_profile_and_explicit_priorities():
    dnn = lalarand.Profile.chain("det", [("conv", 1.0, 3.0), ("head", 0.5, 1.0)])
    assert dnn.model == "det" and dnn.layers == ["conv", "head"]
    assert lalarand.Profile.from_json(dnn.to_json()).layers == dnn.layers
    system = lalarand.System(
        lalarand.Platform.default(),
        [lalarand.Task("slow", dnn, 20.0, priority=0), lalarand.Task("fast", dnn, 10.0, priority=1)],
        priority="explicit",
    )
    assert [t.priority for t in system.tasks] == [0, 1]
    result = system.allocate("lalarand")
    assert result.schedulable and result.complete
    assert set(result.allocation.layers) == {"slow", "fast"}


def test_bad_input_names_the_field_and_the_fix(examples, tmp_path):
    dnn = lalarand.Profile.chain("det", [("conv", 1.0, 3.0)])
    # Values built in code are checked by their constructor (ValueError naming the keyword).
    with pytest.raises(ValueError, match=r"Task\(\"cam\", period_ms=10\): deadline_ms: deadline 30 ms exceeds period 10 ms; fix: "):
        lalarand.Task("cam", dnn, 10.0, deadline_ms=30.0)
    with pytest.raises(lalarand.FormatError, match="duplicate task name"):
        lalarand.System(lalarand.Platform.default(), [lalarand.Task("a", dnn, 10.0), lalarand.Task("a", dnn, 10.0)])
    with pytest.raises(ValueError, match=r"unknown variant `npu`"):
        lalarand.Resource("npu", "npu")
    with pytest.raises(lalarand.FormatError, match="cannot read"):
        lalarand.System.load(tmp_path / "missing.toml")
    bad = tmp_path / "taskset.toml"
    bad.write_text('[[task]]\nname = "x"\nprofile = "profiles/none.json"\nperiod_ms = 10\n')
    with pytest.raises(lalarand.FormatError, match=r"task\[0\]\.profile: profile .* does not exist"):
        lalarand.System.load(bad)
    system = lalarand.System.load(examples / "taskset-light.toml", platform=examples / "platform.toml")
    with pytest.raises(ValueError, match='unknown policy "fastest"; known: gpu-only'):
        system.allocate("fastest")
    with pytest.raises(ValueError, match="budget"):
        system.allocate("lalarand", budget=-1.0)
    with pytest.raises(ValueError, match="execution"):
        system.simulate(system.load_allocation(examples / "allocation-light.toml"), execution="fast")
    with pytest.raises(lalarand.FormatError):
        system.allocation({"digits": ["gpu@gpu"]})
    other = lalarand.System.load(examples / "taskset.toml", platform=examples / "platform.toml")
    with pytest.raises(lalarand.FormatError, match="another system"):
        other.analyze(system.load_allocation(examples / "allocation-light.toml"))
    with pytest.raises(KeyError, match="no task"):
        system.analyze(system.load_allocation(examples / "allocation-light.toml")).task("nope")
    assert issubclass(lalarand.FormatError, lalarand.LalarandError)


def test_help_is_useful():
    assert "allocation policy" in lalarand.__doc__
    assert "response-time analysis" in lalarand.System.analyze.__doc__
    assert lalarand.System.__init__.__doc__ or lalarand.System.__doc__


# Two layers, int8 the only mode fast enough for a 5 ms period, int8 cost unknown (`null`).
UNKNOWN_COSTS = """{"format":"lalarand-profile/1","model":"m","layers":[
  {"name":"a","modes":{"gpu":{"wcet_us":9000},"cpu-fp32":{"wcet_us":9000},"cpu-int8":{"wcet_us":1000}},"int8_accuracy_cost":null},
  {"name":"b","modes":{"gpu":{"wcet_us":9000},"cpu-fp32":{"wcet_us":9000},"cpu-int8":{"wcet_us":1000}},"int8_accuracy_cost":null}]}"""


def test_unknown_int8_costs_get_int8_only_at_an_assumed_cost(tmp_path):
    """An unknown int8 cost is not a free one: int8 only with assume_int8_cost, as the CLI's
    --assume-int8-cost; calibration= names a task that does not exist."""
    (tmp_path / "m.json").write_text(UNKNOWN_COSTS)
    (tmp_path / "tasks.toml").write_text('[[task]]\nname = "t"\nprofile = "m.json"\nperiod_ms = 5.0\n')
    system = lalarand.System.load(tmp_path / "tasks.toml")
    refused = system.allocate("lalarand")
    assert refused.analysis.int8_layers == 0 and not refused.schedulable
    assert refused.end_to_end is None
    assumed = system.allocate("lalarand", assume_int8_cost=0.25)
    assert assumed.analysis.int8_layers == 2 and assumed.schedulable
    with pytest.raises(ValueError, match="assume_int8_cost"):
        system.allocate("lalarand", assume_int8_cost=-1.0)
    with pytest.raises(ValueError, match=r"calibration=.*\"nosuch\" is no task"):
        system.allocate("lalarand", calibration={"nosuch": tmp_path / "in.f32"})
