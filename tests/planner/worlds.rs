//! The planner on hand-written worlds: what each situation must produce, and what it must not.

use logbook::model::{Application, SHARED_INGRESS};
use logbook::reconcile::{Planner, PlannerConfig};
use logbook::record::{Action, ObjKey, Verb};
use logbook::world::{Observed, World};
use logbook_testkit::{AppTest, model_apply, observed, world_of};
use serde_json::{Value, json};

fn plan(world: &World) -> Vec<Action> {
    Planner::new(PlannerConfig::default()).plan_all(world)
}

fn targets(actions: &[Action], verb: Verb) -> Vec<String> {
    actions
        .iter()
        .filter(|a| a.verb == verb)
        .map(|a| a.target.to_string())
        .collect()
}

/// Plans and applies until nothing is left (at most `rounds` times); returns the final world.
fn converge(mut world: World, rounds: usize) -> World {
    let mut rv = 100;
    for _ in 0..rounds {
        let actions = plan(&world);
        if actions.is_empty() {
            return world;
        }
        rv = model_apply(&mut world, &actions, rv);
    }
    let left = plan(&world);
    assert!(
        left.is_empty(),
        "no fixed point after {rounds} rounds: {left:#?}"
    );
    world
}

fn status_of(world: &World, ns: &str, name: &str) -> Value {
    world
        .object(&ObjKey::new("Application", ns, name))
        .map(|o| o.object()["status"].clone())
        .unwrap_or(Value::Null)
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

#[test]
fn an_application_becomes_deployment_service_ingress_and_status() {
    let world = world_of([Application::test("shop", "web")
        .host("shop.example.com")
        .observed()]);
    let actions = plan(&world);
    assert_eq!(
        targets(&actions, Verb::Create),
        [
            "Deployment/shop/web",
            "Service/shop/web",
            "Ingress/shop/logbook"
        ]
    );
    assert_eq!(targets(&actions, Verb::Status), ["Application/shop/web"]);
    let dep = actions[0].object.as_ref().unwrap();
    assert_eq!(
        dep["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "logbook"
    );
    assert_eq!(dep["metadata"]["ownerReferences"][0]["uid"], "uid-shop-web");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    let ing = actions
        .iter()
        .find(|a| a.target.kind == "Ingress")
        .unwrap()
        .object
        .as_ref()
        .unwrap();
    assert!(
        ing["metadata"].get("ownerReferences").is_none(),
        "the shared Ingress must carry no owner"
    );
    assert_eq!(ing["spec"]["rules"][0]["host"], "shop.example.com");
    let world = converge(world, 3);
    assert_eq!(
        status_of(&world, "shop", "web")["url"],
        "http://shop.example.com/"
    );
}

#[test]
fn secret_values_are_referenced_never_inlined() {
    let world = world_of([Application::test("shop", "web")
        .secret_env("DB_PASSWORD", "db", "password")
        .observed()]);
    let dep = plan(&world)
        .into_iter()
        .find(|a| a.target.kind == "Deployment")
        .unwrap()
        .object
        .unwrap();
    let env = &dep["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(
        env["valueFrom"]["secretKeyRef"],
        json!({"name": "db", "key": "password"})
    );
    assert!(env.get("value").is_none());
}

#[test]
fn the_older_application_keeps_a_contested_host() {
    let world = world_of([
        Application::test("a", "new")
            .host("x.example.com")
            .created(2_000)
            .observed(),
        Application::test("b", "old")
            .host("x.example.com")
            .created(1_000)
            .observed(),
    ]);
    let actions = plan(&world);
    assert!(
        actions
            .iter()
            .all(|a| a.app.as_deref() != Some("a/new") || a.verb == Verb::Status)
    );
    let world = converge(world, 3);
    let invalid = condition(&status_of(&world, "a", "new"), "Invalid").clone();
    assert_eq!(invalid["status"], "True");
    assert_eq!(invalid["reason"], "HostConflict");
    assert!(
        invalid["message"].as_str().unwrap().contains("b/old"),
        "{invalid}"
    );
    assert!(
        world
            .object(&ObjKey::new("Deployment", "a", "new"))
            .is_none()
    );
    let ingress = world
        .object(&ObjKey::new("Ingress", "b", SHARED_INGRESS))
        .unwrap();
    assert_eq!(
        ingress.object()["spec"]["rules"].as_array().unwrap().len(),
        1
    );
    assert!(
        world
            .object(&ObjKey::new("Ingress", "a", SHARED_INGRESS))
            .is_none()
    );
}

#[test]
fn host_ties_and_missing_timestamps_are_broken_by_name() {
    let world = world_of([
        Application::test("ns", "zeta")
            .host("x.example.com")
            .observed(),
        Application::test("ns", "alpha")
            .host("x.example.com")
            .observed(),
    ]);
    let world = converge(world, 3);
    assert_eq!(
        condition(&status_of(&world, "ns", "alpha"), "Invalid")["status"],
        "False"
    );
    assert_eq!(
        condition(&status_of(&world, "ns", "zeta"), "Invalid")["reason"],
        "HostConflict"
    );
}

#[test]
fn invalid_specs_get_invalid_and_no_children() {
    let world = world_of(
        [
            Application::test("ns", "two-sources").env("A", "1").build(),
            Application::test("ns", "Bad.Name").build(),
        ]
        .into_iter()
        .map(|mut app| {
            if app.metadata.name.as_deref() == Some("two-sources") {
                app.spec.env[0].secret_key_ref = Some(logbook::model::KeyRef {
                    name: "s".into(),
                    key: "k".into(),
                });
            }
            observed(&app)
        }),
    );
    let actions = plan(&world);
    assert_eq!(targets(&actions, Verb::Create), Vec::<String>::new());
    let world = converge(world, 3);
    let msg = condition(&status_of(&world, "ns", "two-sources"), "Invalid")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("spec.env[0] (A)"), "{msg}");
    let msg = condition(&status_of(&world, "ns", "Bad.Name"), "Invalid")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("cannot name a Service"), "{msg}");
}

#[test]
fn a_hand_edit_is_drift_and_is_put_back_while_server_defaults_are_not() {
    let world = converge(world_of([Application::test("ns", "web").observed()]), 3);
    // server-defaulted fields are already present (model_apply adds them): nothing to do
    assert!(plan(&world).is_empty());
    let mut edited = world.clone();
    let key = ObjKey::new("Deployment", "ns", "web");
    let mut dep = edited.object(&key).unwrap().object().clone();
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil:latest");
    dep["metadata"]["resourceVersion"] = json!("999");
    let (k, o) = Observed::from_value(dep).unwrap();
    edited.observe(k, o).unwrap();
    let actions = plan(&edited);
    let apply = actions
        .iter()
        .find(|a| a.verb == Verb::Apply)
        .expect("drift must be answered");
    assert_eq!(apply.target, key);
    assert!(
        apply.reason.contains("containers[app].image"),
        "{}",
        apply.reason
    );
    assert_eq!(
        apply.basis.get("Deployment/ns/web").map(String::as_str),
        Some("999")
    );
}

#[test]
fn objects_without_the_managed_by_label_are_never_touched() {
    let foreign = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "resourceVersion": "5"},
        "spec": {"replicas": 7}});
    let (k, o) = Observed::from_value(foreign).unwrap();
    let world = world_of([(k, o), Application::test("ns", "web").observed()]);
    let actions = plan(&world);
    assert!(
        actions.iter().all(|a| a.target.kind != "Deployment"),
        "{actions:#?}"
    );
    // without an Application, an unlabelled object is no orphan either
    let foreign = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": "ns", "labels": {"app.kubernetes.io/instance": "db"}}});
    let world = world_of([Observed::from_value(foreign).unwrap()]);
    assert!(plan(&world).is_empty());
}

#[test]
fn a_deleted_application_loses_its_children_and_its_rule() {
    let world = converge(
        world_of([
            Application::test("ns", "a")
                .host("a.example.com")
                .observed(),
            Application::test("ns", "b")
                .host("b.example.com")
                .observed(),
        ]),
        3,
    );
    let mut world = world;
    world.forget(&ObjKey::new("Application", "ns", "a"));
    let actions = plan(&world);
    assert_eq!(
        targets(&actions, Verb::Delete),
        ["Deployment/ns/a", "Service/ns/a"]
    );
    assert!(
        actions
            .iter()
            .filter(|a| a.verb == Verb::Delete)
            .all(|a| a.uid.is_some())
    );
    let apply = actions
        .iter()
        .find(|a| a.target.kind == "Ingress")
        .expect("the rule must leave");
    let rules = apply.object.as_ref().unwrap()["spec"]["rules"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["host"], "b.example.com");
    // and when the last rule goes, the Ingress goes
    world.forget(&ObjKey::new("Application", "ns", "b"));
    let world = converge(world, 3);
    assert!(
        world
            .object(&ObjKey::new("Ingress", "ns", SHARED_INGRESS))
            .is_none()
    );
}

#[test]
fn pending_actions_are_not_asked_for_again() {
    let mut world = world_of([Application::test("ns", "web").observed()]);
    let first = plan(&world);
    for a in &first {
        world.set_pending(a.clone());
    }
    assert!(plan(&world).is_empty(), "{:#?}", plan(&world));
}

#[test]
fn status_follows_the_deployment_to_ready() {
    let mut world = converge(
        world_of([Application::test("ns", "web").replicas(2).observed()]),
        3,
    );
    assert_eq!(
        condition(&status_of(&world, "ns", "web"), "Ready")["status"],
        "False"
    );
    let key = ObjKey::new("Deployment", "ns", "web");
    let mut dep = world.object(&key).unwrap().object().clone();
    dep["status"] = json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2});
    world
        .observe(key, Observed::from_value(dep).unwrap().1)
        .unwrap();
    let world = converge(world, 2);
    let status = status_of(&world, "ns", "web");
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(status["readyReplicas"], 2);
}

#[test]
fn incremental_planning_matches_the_full_plan_for_the_touched_scopes() {
    let world = converge(
        world_of((0..20).map(|i| {
            Application::test("ns", &format!("app{i}"))
                .host(&format!("h{i}.example.com"))
                .observed()
        })),
        3,
    );
    let mut changed = world.clone();
    let (key, obs) = Application::test("ns", "app7")
        .image("nginx:1.28")
        .host("h7.example.com")
        .resource_version("77")
        .observed();
    changed.observe(key.clone(), obs).unwrap();
    let planner = Planner::new(PlannerConfig::default());
    let scopes = planner.scopes_for(&changed, [&key]);
    let incremental = planner.plan_scopes(&changed, &scopes);
    assert_eq!(incremental, planner.plan_all(&changed));
    assert_eq!(
        targets(&incremental, Verb::Apply),
        ["Deployment/ns/app7", "Service/ns/app7"]
    );
}

#[test]
fn with_coalescing_a_burst_of_applications_waits_for_the_ingress_write_on_its_way() {
    let planner = Planner::new(PlannerConfig {
        coalesce_shared_writes: true,
        ..PlannerConfig::default()
    });
    let ingress = ObjKey::new("Ingress", "shop", SHARED_INGRESS);
    let ingress_actions = |world: &World| -> Vec<Action> {
        planner
            .plan_all(world)
            .into_iter()
            .filter(|a| a.target == ingress)
            .collect()
    };
    let mut world = world_of([Application::test("shop", "app0")
        .host("app0.example.com")
        .observed()]);
    // The first version of the Ingress is asked for, and is on its way.
    let first = ingress_actions(&world);
    assert_eq!(targets(&first, Verb::Create), vec![ingress.to_string()]);
    world.set_pending(first[0].clone());
    // A burst of new Applications: no second write while the first is pending.
    for i in 1..=5 {
        let (k, o) = Application::test("shop", &format!("app{i}"))
            .host(&format!("app{i}.example.com"))
            .observed();
        world.observe(k, o).unwrap();
        assert_eq!(ingress_actions(&world), vec![], "after app{i}");
    }
    // Without coalescing, each would have asked for a write of its own.
    let eager = Planner::new(PlannerConfig::default()).plan_all(&world);
    assert_eq!(
        eager.iter().filter(|a| a.target == ingress).count(),
        1,
        "{eager:#?}"
    );
    // Once the first is observed, one write asks for all six rules.
    model_apply(&mut world, &first, 100);
    world.clear_pending(&ingress, &first[0].id);
    let next = ingress_actions(&world);
    assert_eq!(next.len(), 1, "{next:#?}");
    let rules = next[0].object.as_ref().unwrap()["spec"]["rules"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(rules, 6);
}
