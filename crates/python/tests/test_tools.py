

PROFILE_CHILD = """
import sys, lalarand
print("ready", flush=True)
try:
    lalarand.profile(sys.argv[1], sys.argv[2], modes=["cpu-fp32"], runs=1_000_000, warmup=0, min_cold_runs=1,
                     warm_cache=True)
    print("not interrupted", flush=True)
except KeyboardInterrupt as e:
    print("interrupted", e, flush=True)
"""


def test_ctrl_c_stops_profile_between_stages(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", PROFILE_CHILD, str(MNIST), str(tmp_path / "p.json")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(3.0)  # loading the model and the runtime, then well into the first stages
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert out.startswith("interrupted profile("), out + err
    assert "p.partial.json" in out and not (tmp_path / "p.json").exists()
