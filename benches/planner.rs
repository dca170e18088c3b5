//! Planner benchmarks: a full plan of 10,000 Applications with 30% drift (by a planner that
//! already planned this world, as the controller's does, and by a fresh one), the incremental
//! plan after one Application changed in a world of 10,000, and the same in a single namespace
//! of 10, 100, 1,000 and 10,000 Applications (one shared Ingress holding all their rules).
//!
//! The worlds give each Application a host, and children present and server-defaulted as an API
//! server would leave them.

use criterion::{Criterion, criterion_group, criterion_main};
use logbook::model::Application;
use logbook::reconcile::{Planner, PlannerConfig};
use logbook::record::ObjKey;
use logbook::world::{Observed, World};
use logbook_testkit::AppTest;
use logbook_testkit::model_apply;
use serde_json::json;
use std::hint::black_box;

const APPS: usize = 10_000;
const NAMESPACES: usize = 100;

fn app(i: usize, image: &str) -> (ObjKey, Observed) {
    app_in(&format!("ns{}", i % NAMESPACES), i, image)
}

/// Application `i` of namespace `ns`: 2 replicas, a host, an env var, created in order.
fn app_in(ns: &str, i: usize, image: &str) -> (ObjKey, Observed) {
    Application::test(ns, &format!("app{i}"))
        .image(image)
        .replicas(2)
        .host(&format!("app{i}.example.com"))
        .env("MODE", "production")
        .created(1_700_000_000 + i as i64)
        .observed()
}

/// A converged world of `APPS` Applications over `NAMESPACES` namespaces.
fn converged(planner: &Planner) -> World {
    converged_with(planner, (0..APPS).map(|i| app(i, "nginx:1.27")))
}

/// The converged world of `apps`.
fn converged_with(planner: &Planner, apps: impl Iterator<Item = (ObjKey, Observed)>) -> World {
    let mut world = World::new();
    for (k, o) in apps {
        world.observe(k, o).expect("valid app");
    }
    let mut rv = 1_000_000;
    for _ in 0..3 {
        let actions = planner.plan_all(&world);
        if actions.is_empty() {
            break;
        }
        rv = model_apply(&mut world, &actions, rv);
    }
    assert!(
        planner.plan_all(&world).is_empty(),
        "bench world must start converged"
    );
    world
}

fn bench_planner(c: &mut Criterion) {
    let planner = Planner::new(PlannerConfig::default());
    let mut world = converged(&planner);

    // 30% drift: a hand-edited image on every third-ish Deployment
    let mut drifted = world.clone();
    for i in (0..APPS).filter(|i| i % 10 < 3) {
        let key = ObjKey::new(
            "Deployment",
            &format!("ns{}", i % NAMESPACES),
            &format!("app{i}"),
        );
        let mut obj = drifted
            .object(&key)
            .expect("deployment exists")
            .object()
            .clone();
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = json!("hand:edit");
        let (k, o) = Observed::from_value(obj).expect("valid");
        drifted.observe(k, o).expect("valid");
    }
    let n = planner.plan_all(&drifted).len();
    assert_eq!(n, APPS * 3 / 10, "one apply per drifted Deployment");

    let mut group = c.benchmark_group("planner");
    group.sample_size(20);
    group.bench_function("full_plan_10k_apps_30pct_drift", |b| {
        b.iter(|| black_box(planner.plan_all(black_box(&drifted))))
    });
    group.sample_size(10);
    group.bench_function("full_plan_10k_apps_30pct_drift_fresh_planner", |b| {
        b.iter(|| {
            let fresh = Planner::new(PlannerConfig::default());
            black_box(fresh.plan_all(black_box(&drifted)))
        })
    });

    // one Application changes (its image flips between two versions): fold it in, find the
    // touched scopes (before and after), plan them
    let versions = [app(4242, "nginx:1.28"), app(4242, "nginx:1.27")];
    let key = versions[0].0.clone();
    let mut flip = 0usize;
    group.sample_size(100);
    group.bench_function("incremental_plan_one_app_changed_in_10k", |b| {
        b.iter(|| {
            let (k, o) = versions[flip % 2].clone();
            flip += 1;
            let mut scopes = planner.scopes_for(&world, [&key]);
            world.observe(k, o).expect("valid");
            scopes.extend(planner.scopes_for(&world, [&key]));
            black_box(planner.plan_scopes(&world, &scopes))
        })
    });
    group.finish();
}

/// Application `i` of the single namespace `one`.
fn app_in_one_ns(i: usize, image: &str) -> (ObjKey, Observed) {
    app_in("one", i, image)
}

/// Plan after one Application's image changed, in one namespace of n Applications: a plan
/// should cost what changed, not what the namespace holds.
fn bench_one_namespace(c: &mut Criterion) {
    let mut group = c.benchmark_group("planner_one_namespace");
    group.sample_size(50);
    for n in [10usize, 100, 1_000, 10_000] {
        let planner = Planner::new(PlannerConfig::default());
        let mut world = converged_with(&planner, (0..n).map(|i| app_in_one_ns(i, "nginx:1.27")));
        let changed = n / 2;
        let versions = [
            app_in_one_ns(changed, "nginx:1.28"),
            app_in_one_ns(changed, "nginx:1.27"),
        ];
        let key = versions[0].0.clone();
        let mut flip = 0usize;
        group.bench_function(format!("plan_one_app_changed_of_{n}"), |b| {
            b.iter(|| {
                let (k, o) = versions[flip % 2].clone();
                flip += 1;
                let mut scopes = planner.scopes_for(&world, [&key]);
                world.observe(k, o).expect("valid");
                scopes.extend(planner.scopes_for(&world, [&key]));
                let actions = planner.plan_scopes(&world, &scopes);
                assert!(
                    actions.iter().all(|a| a.target.kind != "Ingress") && !actions.is_empty(),
                    "the Deployment and the status, not the Ingress: {actions:?}"
                );
                black_box(actions)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_planner, bench_one_namespace);
criterion_main!(benches);
