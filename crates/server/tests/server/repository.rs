//! The model repository extension: a model loaded over HTTP into a running server serves its
//! first infer; a refusal changes nothing and says why.

use crate::common::*;
use lalarand_alloc::admission::{AdmissionOptions, Proven};
use lalarand_model::examples::chain_profile;
use lalarand_model::{ExecutionPlan, LayerProfile};
use lalarand_runtime::serve::modes::ModeServer;
use lalarand_runtime::serve::ServeConfig;
use lalarand_runtime::{BusyTime, BusyWait};
use lalarand_server::{BusyRepository, Catalog, FrontEnd, Listen, Options};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The busy system behind a front end with the repository extension on.
fn start_loadable() -> (Arc<ModeServer<BusyWait>>, FrontEnd, String) {
    let (system, alloc) = busy_system();
    let plan = ExecutionPlan::new(&system, &alloc).unwrap();
    let exec = BusyWait::from_plan(&plan, &system.platform, BusyTime::Wcet);
    let config = ServeConfig { realtime: false, ..ServeConfig::default() };
    let proven = Proven::new(system, alloc).unwrap();
    let server = Arc::new(ModeServer::start(proven, exec, config, AdmissionOptions::default()).unwrap());
    let current = server.current();
    let catalog = Catalog::of_server(&current, vec![Catalog::busy_outputs(); 2]);
    drop(current);
    let options = Options::local(vec![
        Listen::parse("http://127.0.0.1:0").unwrap(),
        Listen::parse("grpc://127.0.0.1:0").unwrap(),
    ]);
    let repo = Arc::new(BusyRepository { server: server.clone() });
    let front = FrontEnd::start_with_repository(server.clone(), catalog, options, Some(repo)).unwrap();
    let addr = front.endpoints()[0].trim_start_matches("http://").to_string();
    assert!(front.endpoints()[1].starts_with("grpc://"));
    (server, front, addr)
}

fn profile(name: &str, ms: f64) -> String {
    let t = (ms * 1e6) as u64;
    chain_profile(name, &[LayerProfile::gpu_cpu("l0", t, t)]).to_json()
}

#[test]
fn a_model_loaded_over_http_serves_its_first_infer_and_unloads() {
    let _turn = serial();
    let (server, front, a) = start_loadable();
    let load = json!({"parameters": {"profile": profile("extra", 1.0), "period_ms": 50, "priority": "rate-monotonic"}});
    let r = http_post_json(&a, "/v2/repository/models/extra/load", &load);
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert!(report["bounds_ns"]["extra"].as_u64().unwrap() >= MS, "{report}");
    assert!(report["to_first_release_ns"].as_u64().unwrap() >= report["decision_ns"].as_u64().unwrap(), "{report}");
    assert_eq!(http_get(&a, "/v2/models/extra/ready").status, 200);
    assert_eq!(http_get(&a, "/v2/models/extra").json()["parameters"]["period_ns"], 50 * MS);
    let index = http_post_json(&a, "/v2/repository/index", &json!({})).json();
    assert_eq!(index.as_array().unwrap().len(), 3, "{index}");

    let infer = json!({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]});
    let r = http_post_json(&a, "/v2/models/extra/infer", &infer);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["outputs"][0]["data"], json!([1.0, 2.0, 3.0]));
    // The running models still serve.
    assert_eq!(http_post_json(&a, "/v2/models/slow/infer", &infer).status, 200);

    let r = http_post_json(&a, "/v2/repository/models/extra/unload", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(http_post_json(&a, "/v2/models/extra/infer", &infer).status, 404);

    // tritonclient's load_model(name, config=TEXT): the parameters as one JSON text.
    let config = json!({"profile": profile("other", 1.0), "period_ms": 60}).to_string();
    let r = http_post_json(&a, "/v2/repository/models/other/load", &json!({"parameters": {"config": config}}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(http_post_json(&a, "/v2/models/other/infer", &infer).status, 200);
    assert_eq!(server.current().task_names(), ["fast", "slow", "other"]);
    front.shutdown(Duration::from_secs(1));
}

#[test]
fn bad_loads_are_refused_with_the_reason_and_change_nothing() {
    let _turn = serial();
    let (server, front, a) = start_loadable();
    let before = server.proven();
    let post = |path: &str, body: serde_json::Value| http_post_json(&a, path, &body);

    let r = post(
        "/v2/repository/models/fast/load",
        json!({"parameters": {"profile": profile("fast", 1.0), "period_ms": 50}}),
    );
    assert_eq!(r.status, 409, "name taken: {}", r.text());
    let r = post("/v2/repository/models/x/load", json!({"parameters": {"profile": profile("x", 1.0)}}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("period_ms"), "{}", r.text());
    let r = post("/v2/repository/models/x/load", json!({"parameters": {"profile": "{", "period_ms": 5}}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("parameters.profile"), "{}", r.text());
    // fast leaves 3 ms of every 4: a 4 ms layer every 5 ms cannot fit.
    let r = post("/v2/repository/models/x/load", json!({"parameters": {"profile": profile("x", 4.0), "period_ms": 5}}));
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("would miss"), "{}", r.text());
    let r = post("/v2/repository/models/nobody/unload", json!({}));
    assert_eq!(r.status, 404, "{}", r.text());
    let r = post(
        "/v2/repository/models/x/load",
        json!({"parameters": {"profile": profile("x", 1.0), "period_ms": 50, "model_path": "/nonexistent.onnx"}}),
    );
    assert_eq!(r.status, 400, "{}", r.text());

    assert_eq!(server.proven(), before, "nothing changed");
    front.shutdown(Duration::from_secs(1));
}

#[test]
fn without_the_extension_a_load_is_refused() {
    let _turn = serial();
    let running = start_busy(lalarand_runtime::serve::EarlyPolicy::Wait);
    let r = http_post_json(&running.http_addr(), "/v2/repository/models/x/load", &json!({}));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("--allow-load"), "{}", r.text());
}

#[test]
fn grpc_repository_load_index_and_unload() {
    use lalarand_server::proto::model_repository_parameter::ParameterChoice as P;
    use lalarand_server::proto::*;
    let _turn = serial();
    let (server, front, a) = start_loadable();
    let url = front.endpoints()[1].replace("grpc://", "http://");
    let param = |p: P| ModelRepositoryParameter { parameter_choice: Some(p) };
    rt().block_on(async {
        let mut c = grpc(&url).await;
        let parameters = [
            ("profile".to_string(), param(P::StringParam(profile("extra", 1.0)))),
            ("period_ms".to_string(), param(P::Int64Param(50))),
        ]
        .into_iter()
        .collect();
        let load =
            RepositoryModelLoadRequest { repository_name: String::new(), model_name: "extra".into(), parameters };
        c.repository_model_load(load.clone()).await.unwrap();
        let e = c.repository_model_load(load).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e}");
        let index = c.repository_index(RepositoryIndexRequest::default()).await.unwrap().into_inner();
        let names: Vec<&str> = index.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["fast", "slow", "extra"]);
        let infer = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [7]}]});
        assert_eq!(http_post_json(&a, "/v2/models/extra/infer", &infer).status, 200);
        let unload = RepositoryModelUnloadRequest { model_name: "extra".into(), ..Default::default() };
        c.repository_model_unload(unload.clone()).await.unwrap();
        let e = c.repository_model_unload(unload).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    });
    assert_eq!(server.current().task_names(), ["fast", "slow"]);
    front.shutdown(Duration::from_secs(1));
}

/// The value of the metric line starting with `series` (e.g. `lalarand_jobs_total{task="fast"}`).
fn metric(text: &str, series: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in {text}"));
    line[series.len()..].trim().parse().unwrap()
}

#[test]
fn counters_continue_across_loads_and_unloads() {
    let _turn = serial();
    let (_server, front, a) = start_loadable();
    let infer = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]});
    for _ in 0..3 {
        assert_eq!(http_post_json(&a, "/v2/models/fast/infer", &infer).status, 200);
    }
    let scrape = || http_get(&a, "/metrics").text();
    let fast_jobs = |m: &str| metric(m, "lalarand_jobs_total{task=\"fast\"}");
    let before = scrape();
    assert_eq!(fast_jobs(&before), 3.0);
    let load = json!({"parameters": {"profile": profile("extra", 1.0), "period_ms": 50}});
    assert_eq!(http_post_json(&a, "/v2/repository/models/extra/load", &load).status, 200);
    let after = scrape();
    assert_eq!(fast_jobs(&after), 3.0, "a Prometheus counter never goes backwards");
    for series in ["lalarand_released_total{task=\"fast\"}", "lalarand_response_seconds_count{task=\"fast\"}"] {
        assert_eq!(metric(&after, series), metric(&before, series), "{series}");
    }
    let stats = http_get(&a, "/v2/models/fast/stats").json();
    assert_eq!(stats["model_stats"][0]["inference_count"], 3, "{stats}");
    assert!(stats["model_stats"][0]["last_inference"].as_u64().unwrap() > 0, "{stats}");

    assert_eq!(http_post_json(&a, "/v2/models/extra/infer", &infer).status, 200);
    let stats = http_get(&a, "/v2/models/extra/stats").json();
    assert!(stats["model_stats"][0]["last_inference"].as_u64().unwrap() > 0, "a loaded model's too: {stats}");
    assert_eq!(http_post_json(&a, "/v2/repository/models/extra/unload", &json!({})).status, 200);
    assert_eq!(http_post_json(&a, "/v2/repository/models/extra/load", &load).status, 200);
    let again = scrape();
    assert_eq!(metric(&again, "lalarand_jobs_total{task=\"extra\"}"), 1.0, "loaded again, it continues");
    assert_eq!(fast_jobs(&again), 3.0);
    front.shutdown(Duration::from_secs(1));
}
