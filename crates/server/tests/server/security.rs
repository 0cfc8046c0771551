use crate::common::*;
use lalarand_runtime::serve::EarlyPolicy;
use lalarand_runtime::{BusyTime, BusyWait};
use lalarand_server::auth::Auth;
use lalarand_server::proto::*;
use lalarand_server::{Catalog, FrontEnd, Listen, Options};
use serde_json::json;
use std::sync::Arc;

const TOKEN: &str = "0123456789abcdef0123";

#[test]
fn other_machines_addresses_need_allow_remote_and_a_token() {
    let _turn = serial();
    let (system, alloc) = busy_system();
    let plan = lalarand_model::ExecutionPlan::new(&system, &alloc).unwrap();
    let exec = BusyWait::from_plan(&plan, &system.platform, BusyTime::Wcet);
    let server = Arc::new(lalarand_runtime::serve::Server::builder(&system, &alloc, exec).start().unwrap());
    let catalog = || Catalog::of_server(&server, vec![Catalog::busy_outputs(); 2]);
    let remote = || vec![Listen::parse("http://0.0.0.0:0").unwrap()];
    let e = FrontEnd::start(server.clone(), catalog(), Options::local(remote())).unwrap_err().to_string();
    assert!(e.contains("--allow-remote") && e.contains("0.0.0.0"), "{e}");
    let o = Options { allow_remote: true, ..Options::local(remote()) };
    let e = FrontEnd::start(server.clone(), catalog(), o).unwrap_err().to_string();
    assert!(e.contains("--token-file"), "{e}");
    let o = Options { allow_remote: true, auth: Auth::with_token(TOKEN), ..Options::local(remote()) };
    let front = FrontEnd::start(server.clone(), catalog(), o).unwrap();
    let port = front.endpoints()[0].rsplit(':').next().unwrap().to_string();
    let r = http_get(&format!("127.0.0.1:{port}"), "/v2/health/live");
    assert_eq!(r.status, 401);
    front.shutdown(std::time::Duration::from_secs(1));
    // A short token file is refused, naming the file.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("token");
    std::fs::write(&f, "short\n").unwrap();
    let e = Auth::from_file(&f).unwrap_err().to_string();
    assert!(e.contains("--token-file") && e.contains("16 characters"), "{e}");
    std::fs::write(&f, format!("{TOKEN}\n")).unwrap();
    assert!(Auth::from_file(&f).unwrap().requires_token());
}

#[test]
fn requests_without_the_token_are_refused_and_counted() {
    let _turn = serial();
    let (system, alloc) = busy_system();
    let plan = lalarand_model::ExecutionPlan::new(&system, &alloc).unwrap();
    let exec = BusyWait::from_plan(&plan, &system.platform, BusyTime::Wcet);
    let running = start_with(&system, &alloc, exec, vec![Catalog::busy_outputs(); 2], EarlyPolicy::Wait, |o| {
        o.auth = Auth::with_token(TOKEN)
    });
    let a = running.http_addr();
    let body = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}).to_string();
    let post = |auth: Option<String>| {
        let h: Vec<(&str, String)> = auth.into_iter().map(|v| ("Authorization", v)).collect();
        http_raw(&a, "POST", "/v2/models/fast/infer", &h, body.as_bytes(), None)
    };
    assert_eq!(post(None).status, 401);
    assert_eq!(post(Some(format!("Bearer {TOKEN}x"))).status, 401);
    assert_eq!(post(Some(TOKEN.into())).status, 401);
    let ok = post(Some(format!("Bearer {TOKEN}")));
    assert_eq!(ok.status, 200, "{}", ok.text());
    rt().block_on(async {
        let mut c = grpc(&running.grpc_url()).await;
        let e = c.server_live(ServerLiveRequest {}).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        let mut req = tonic::Request::new(ServerLiveRequest {});
        req.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        assert!(c.server_live(req).await.unwrap().into_inner().live);
    });
    let h = [("Authorization", format!("Bearer {TOKEN}"))];
    let m = http_raw(&a, "GET", "/metrics", &h, b"", None).text();
    assert!(m.contains("lalarand_unauthenticated_requests_total 4"), "{m}");
    assert_eq!(running.server.stats().tasks[0].released, 1, "no refused request became a job");
}
