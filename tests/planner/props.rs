//! Property tests of the planner over random Applications and random current states: missing,
//! extra and drifted children, server-defaulted fields, foreign objects.
//!
//! Properties: applying the plan with a model applier reaches the desired state and a fixed
//! point; unmanaged objects are never touched; the output does not depend on input order and is
//! the same bytes run after run; invalid Applications never get children; a planner that keeps
//! what it derived (over a random history of changes, with actions pending or applied) plans
//! exactly what a fresh planner plans.

use logbook::model::{Application, SHARED_INGRESS};
use logbook::reconcile::{ApplicationReconciler, Planner, PlannerConfig, covers, validate};
use logbook::record::{Action, ObjKey, Verb};
use logbook::world::{Observed, World};
use logbook_testkit::{AppTest, model_apply, observed, server_defaults};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
struct AppCase {
    ns: &'static str,
    name: String,
    image: &'static str,
    replicas: i32,
    port: i32,
    host: Option<&'static str>,
    created: Option<i64>,
    env_two_sources: bool,
    env: Vec<(&'static str, &'static str)>,
    child: ChildState,
}

#[derive(Clone, Copy, Debug)]
enum ChildState {
    Missing,
    Matching,
    DriftedImage,
    DriftedReplicas,
    ExtraEnv,
}

#[derive(Clone, Debug)]
enum Stray {
    /// A managed Deployment whose Application does not exist.
    Orphan(&'static str, String),
    /// An object without the managed-by label, possibly named like an Application.
    Foreign(&'static str, &'static str, String),
    /// A managed shared Ingress in a namespace without hosts.
    StaleIngress(&'static str),
    /// A managed Deployment that names an Application as its instance but is not its child.
    Extra(&'static str, &'static str),
}

fn app_case() -> impl Strategy<Value = AppCase> {
    (
        prop::sample::select(vec!["a", "b", "c"]),
        prop::sample::select(vec!["web", "api", "shop", "blog", "db", "Bad.Name"]),
        prop::sample::select(vec!["nginx:1.27", "nginx:1.28", "ghcr.io/acme/api:2"]),
        0..4i32,
        prop::sample::select(vec![80, 8080, 9000]),
        prop::option::of(prop::sample::select(vec![
            "x.example.com",
            "y.example.com",
            "z.example.com",
        ])),
        prop::option::of(prop::sample::select(vec![1_000i64, 2_000, 3_000])),
        prop::bool::weighted(0.1),
        prop::collection::vec(
            (
                prop::sample::select(vec!["A", "B", "C"]),
                prop::sample::select(vec!["1", "2"]),
            ),
            0..3,
        ),
        prop::sample::select(vec![
            ChildState::Missing,
            ChildState::Matching,
            ChildState::DriftedImage,
            ChildState::DriftedReplicas,
            ChildState::ExtraEnv,
        ]),
    )
        .prop_map(
            |(ns, name, image, replicas, port, host, created, env_two_sources, env, child)| {
                AppCase {
                    ns,
                    name: name.to_string(),
                    image,
                    replicas,
                    port,
                    host,
                    created,
                    env_two_sources,
                    env,
                    child,
                }
            },
        )
}

fn stray() -> impl Strategy<Value = Stray> {
    prop_oneof![
        (
            prop::sample::select(vec!["a", "b", "c"]),
            prop::sample::select(vec!["gone", "web", "old"])
        )
            .prop_map(|(ns, n)| Stray::Orphan(ns, n.to_string())),
        (
            prop::sample::select(vec!["a", "b", "c"]),
            prop::sample::select(vec!["Deployment", "Service", "Ingress"]),
            prop::sample::select(vec!["web", "api", "logbook", "other"])
        )
            .prop_map(|(ns, kind, n)| Stray::Foreign(ns, kind, n.to_string())),
        prop::sample::select(vec!["a", "b", "c"]).prop_map(Stray::StaleIngress),
        (
            prop::sample::select(vec!["a", "b", "c"]),
            prop::sample::select(vec!["web", "api", "shop"])
        )
            .prop_map(|(ns, app)| Stray::Extra(ns, app)),
    ]
}

fn build_app(c: &AppCase) -> Application {
    let mut b = Application::test(c.ns, &c.name)
        .image(c.image)
        .replicas(c.replicas)
        .port(c.port);
    if let Some(h) = c.host {
        b = b.host(h);
    }
    if let Some(t) = c.created {
        b = b.created(t);
    }
    let mut seen = BTreeSet::new();
    for (k, v) in &c.env {
        if seen.insert(*k) {
            b = b.env(k, v);
        }
    }
    let mut app = b.build();
    if c.env_two_sources {
        app.spec.env.push(logbook::model::EnvVar {
            name: "TWO".into(),
            value: Some("v".into()),
            secret_key_ref: Some(logbook::model::KeyRef {
                name: "s".into(),
                key: "k".into(),
            }),
            config_map_key_ref: None,
        });
    }
    app
}

fn to_observed(mut v: Value, uid: &str, rv: u64) -> (ObjKey, Observed) {
    server_defaults(&mut v, uid, rv);
    Observed::from_value(v).expect("generated objects are well formed")
}

/// The world as generated, entries in the given order.
fn build_entries(apps: &[AppCase], strays: &[Stray]) -> Vec<(ObjKey, Observed)> {
    let r = ApplicationReconciler::new(PlannerConfig::default());
    let mut out = Vec::new();
    let mut rv = 10;
    for c in apps {
        let app = build_app(c);
        let (k, o) = observed(&app);
        let (ns, name) = (c.ns, c.name.as_str());
        out.push((k, o));
        let mut dep = r.desired_deployment(ns, name, &app);
        let svc = r.desired_service(ns, name, &app);
        match c.child {
            ChildState::Missing => continue,
            ChildState::Matching => {}
            ChildState::DriftedImage => {
                dep["spec"]["template"]["spec"]["containers"][0]["image"] = json!("hand:edit")
            }
            ChildState::DriftedReplicas => dep["spec"]["replicas"] = json!(c.replicas + 5),
            ChildState::ExtraEnv => {
                dep["spec"]["template"]["spec"]["containers"][0]["env"] =
                    json!([{"name": "HAND", "value": "x"}])
            }
        }
        rv += 1;
        out.push(to_observed(dep, &format!("uid-dep-{ns}-{name}"), rv));
        rv += 1;
        out.push(to_observed(svc, &format!("uid-svc-{ns}-{name}"), rv));
    }
    for s in strays {
        rv += 1;
        let v = match s {
            Stray::Orphan(ns, name) => json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "labels": {
                    "app.kubernetes.io/managed-by": "logbook", "app.kubernetes.io/instance": name}},
                "spec": {"replicas": 1}}),
            Stray::Foreign(ns, kind, name) => {
                json!({"apiVersion": if *kind == "Deployment" {"apps/v1"} else if *kind == "Ingress" {"networking.k8s.io/v1"} else {"v1"},
                "kind": kind, "metadata": {"name": name, "namespace": ns, "labels": {"team": "other"}},
                "spec": {"replicas": 9}})
            }
            Stray::Extra(ns, app) => json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("{app}-old"), "namespace": ns, "labels": {
                    "app.kubernetes.io/managed-by": "logbook", "app.kubernetes.io/instance": app}},
                "spec": {"replicas": 1}}),
            Stray::StaleIngress(ns) => {
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": SHARED_INGRESS, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "logbook"}},
                "spec": {"rules": [{"host": "stale.example.com"}]}})
            }
        };
        out.push(to_observed(v, &format!("uid-stray-{rv}"), rv));
    }
    // later entries for the same key replace earlier ones; keep the last, as a watch would
    let mut dedup: Vec<(ObjKey, Observed)> = Vec::new();
    for (k, o) in out {
        dedup.retain(|(dk, _)| *dk != k);
        dedup.push((k, o));
    }
    dedup
}

fn world_from(entries: &[(ObjKey, Observed)]) -> World {
    let mut w = World::new();
    for (k, o) in entries {
        w.observe(k.clone(), o.clone())
            .expect("generated objects are valid");
    }
    w
}

fn planner() -> Planner {
    Planner::new(PlannerConfig::default())
}

fn foreign_keys(world: &World) -> BTreeSet<ObjKey> {
    world
        .objects()
        .filter(|(k, o)| k.kind != "Application" && !o.is_managed())
        .map(|(k, _)| k.clone())
        .collect()
}

fn bytes(actions: &[Action]) -> Vec<u8> {
    serde_json::to_vec(actions).expect("actions serialize")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn plan_reaches_the_desired_state_and_a_fixed_point(
        apps in prop::collection::vec(app_case(), 0..8),
        strays in prop::collection::vec(stray(), 0..4),
    ) {
        let entries = build_entries(&apps, &strays);
        let mut world = world_from(&entries);
        let foreign = foreign_keys(&world);
        let foreign_before: Vec<Observed> = foreign.iter().filter_map(|k| world.object(k).cloned()).collect();
        let p = planner();

        let first = p.plan_all(&world);
        for a in &first {
            prop_assert!(!foreign.contains(&a.target), "touched a foreign object: {a:?}");
        }
        let rv = model_apply(&mut world, &first, 1_000);
        // children exist now; the only thing left may be the status that reports them
        let second = p.plan_all(&world);
        prop_assert!(second.iter().all(|a| a.verb == Verb::Status), "not converged after one round: {second:#?}");
        model_apply(&mut world, &second, rv);
        let third = p.plan_all(&world);
        prop_assert!(third.is_empty(), "no fixed point: {third:#?}");

        // desired state: every valid Application's children cover what it asks for
        let r = ApplicationReconciler::new(PlannerConfig::default());
        for (key, app) in world.apps() {
            let (ns, name) = (key.namespace.as_str(), key.name.as_str());
            let dep_key = ObjKey::new("Deployment", ns, name);
            let blocked = foreign.contains(&dep_key) || foreign.contains(&ObjKey::new("Service", ns, name));
            if validate(&world, ns, name, app).is_ok() && !blocked {
                let dep = world.object(&dep_key).expect("deployment exists");
                prop_assert!(covers(dep.object(), &r.desired_deployment(ns, name, app)).is_ok());
            }
            let invalid_status = world.object(key).and_then(|o| o.object()["status"]["conditions"].as_array().cloned())
                .and_then(|c| c.into_iter().find(|c| c["type"] == "Invalid")).map(|c| c["status"] == "True");
            prop_assert_eq!(invalid_status, Some(validate(&world, ns, name, app).is_err()));
        }
        // foreign objects are exactly as they were
        let foreign_after: Vec<Observed> = foreign.iter().filter_map(|k| world.object(k).cloned()).collect();
        prop_assert_eq!(foreign_before, foreign_after);
    }

    #[test]
    fn invalid_applications_never_get_children(apps in prop::collection::vec(app_case(), 1..8)) {
        let world = world_from(&build_entries(&apps, &[]));
        for a in planner().plan_all(&world) {
            if let (Some(app), Verb::Create | Verb::Apply) = (&a.app, a.verb) {
                let (ns, name) = app.split_once('/').expect("app is ns/name");
                let key = ObjKey::new("Application", ns, name);
                let spec = world.app(&key).expect("the app exists");
                prop_assert!(validate(&world, ns, name, spec).is_ok(), "child for invalid {app}: {a:?}");
            }
        }
    }

    #[test]
    fn output_does_not_depend_on_input_order_and_is_stable(
        apps in prop::collection::vec(app_case(), 0..8),
        strays in prop::collection::vec(stray(), 0..4),
        seed in any::<u64>(),
    ) {
        let entries = build_entries(&apps, &strays);
        let mut shuffled = entries.clone();
        // a seeded Fisher-Yates shuffle
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let a = bytes(&planner().plan_all(&world_from(&entries)));
        let b = bytes(&planner().plan_all(&world_from(&shuffled)));
        let c = bytes(&planner().plan_all(&world_from(&entries)));
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
    }

    #[test]
    fn incremental_plans_agree_with_the_full_plan(
        apps in prop::collection::vec(app_case(), 1..8),
        pick in any::<prop::sample::Index>(),
        new_host in prop::option::of(prop::sample::select(vec!["x.example.com", "w.example.com"])),
    ) {
        let entries = build_entries(&apps, &[]);
        let mut world = world_from(&entries);
        let p = planner();
        let first = p.plan_all(&world);
        let rv = model_apply(&mut world, &first, 1_000);
        let second = p.plan_all(&world);
        model_apply(&mut world, &second, rv);
        prop_assert!(p.plan_all(&world).is_empty());
        // change one Application's host: the incremental plan over the touched scopes, before
        // and after, must equal the full plan
        let c = &apps[pick.index(apps.len())];
        let key = ObjKey::new("Application", c.ns, &c.name);
        let before = world.clone();
        let mut app = world.app(&key).expect("exists").clone();
        app.spec.host = new_host.map(str::to_string);
        app.metadata.resource_version = Some("5000".into());
        let (k, o) = observed(&app);
        world.observe(k, o).expect("valid");
        let mut scopes = p.scopes_for(&before, [&key]);
        scopes.extend(p.scopes_for(&world, [&key]));
        let mut incremental = p.plan_scopes(&world, &scopes);
        let mut full = p.plan_all(&world);
        incremental.sort_by(|a, b| a.id.cmp(&b.id));
        full.sort_by(|a, b| a.id.cmp(&b.id));
        prop_assert_eq!(incremental, full);
    }

    #[test]
    fn a_planner_that_keeps_what_it_derived_plans_as_a_fresh_one(
        steps in prop::collection::vec(step(), 1..24),
        coalesce in any::<bool>(),
    ) {
        let config = PlannerConfig { coalesce_shared_writes: coalesce, ..PlannerConfig::default() };
        let warm = Planner::new(config.clone());
        let mut world = World::new();
        let mut rv = 100;
        for step in steps {
            let before = world.clone();
            let mut touched = Vec::new();
            match step {
                Step::Upsert(c) => {
                    // the Application, and its children as the case has them (missing,
                    // matching, or edited by hand)
                    for (k, o) in build_entries(&[c], &[]) {
                        touched.push(k.clone());
                        world.observe(k, o).expect("valid");
                    }
                }
                Step::Stray(stray) => {
                    for (k, o) in build_entries(&[], &[stray]) {
                        touched.push(k.clone());
                        world.observe(k, o).expect("valid");
                    }
                }
                Step::Delete(pick) => {
                    let keys: Vec<ObjKey> = world.apps().map(|(k, _)| k.clone()).collect();
                    if !keys.is_empty() {
                        let k = keys[pick.index(keys.len())].clone();
                        world.forget(&k);
                        touched.push(k);
                    }
                }
                Step::Apply => {
                    let actions = warm.plan_all(&world);
                    touched.extend(actions.iter().map(|a| a.target.clone()));
                    rv = model_apply(&mut world, &actions, rv);
                }
                Step::Pend => {
                    for a in warm.plan_all(&world) {
                        rv += 1;
                        world.set_issued(&a.target, rv, &a.id);
                        world.set_pending(a);
                    }
                }
                Step::Lose => {
                    let pending: Vec<(ObjKey, String)> =
                        world.pending_actions().map(|a| (a.target.clone(), a.id.clone())).collect();
                    for (target, id) in pending {
                        world.clear_pending(&target, &id);
                    }
                }
            }
            let fresh = Planner::new(config.clone());
            prop_assert_eq!(bytes(&warm.plan_all(&world)), bytes(&fresh.plan_all(&world)));
            let mut scopes = warm.scopes_for(&before, touched.iter());
            scopes.extend(warm.scopes_for(&world, touched.iter()));
            let fresh = Planner::new(config.clone());
            prop_assert_eq!(
                bytes(&warm.plan_scopes(&world, &scopes)),
                bytes(&fresh.plan_scopes(&world, &scopes))
            );
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// An Application appears or changes, with its children in some state.
    Upsert(AppCase),
    /// An orphan, a foreign object, or a stale shared Ingress appears.
    Stray(Stray),
    /// One of the Applications goes away.
    Delete(prop::sample::Index),
    /// The plan is applied (model server-side apply).
    Apply,
    /// The plan is on its way: its actions are issued and pending.
    Pend,
    /// Every pending action is answered without a change (e.g. failed).
    Lose,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => app_case().prop_map(Step::Upsert),
        1 => stray().prop_map(Step::Stray),
        1 => any::<prop::sample::Index>().prop_map(Step::Delete),
        2 => Just(Step::Apply),
        1 => Just(Step::Pend),
        1 => Just(Step::Lose),
    ]
}
