//! `logbook plan` as a user runs it: output formats, and one clear line for bad input.

use std::io::Write;
use std::process::{Command, Output};

fn logbook(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(args)
        .output()
        .expect("the logbook binary runs")
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write temp file");
    f
}

#[test]
fn plans_the_examples_as_a_table() {
    let out = logbook(&["plan", "-f", "examples/apps.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Deployment/shop/storefront",
        "Service/shop/checkout",
        "Ingress/shop/logbook",
        "Ingress/blog/logbook",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
}

#[test]
fn yaml_output_is_objects_kubectl_can_apply() {
    let out = logbook(&["plan", "-f", "examples/apps.yaml", "-o", "yaml"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&text).expect("multi-document YAML");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "Deployment").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "Ingress").count(), 2);
    assert!(
        docs.iter()
            .filter(|d| !d.is_null())
            .all(|d| d["apiVersion"].is_string() && d["metadata"]["name"].is_string())
    );
}

#[test]
fn json_output_round_trips_and_actual_state_is_honoured() {
    let out = logbook(&["plan", "-f", "examples/apps.yaml", "-o", "json"]);
    assert!(out.status.success());
    let actions: Vec<logbook::record::Action> =
        serde_json::from_slice(&out.stdout).expect("actions as JSON");
    // feed the created objects back as the actual state: only status writes remain
    let objects: Vec<serde_json::Value> = actions
        .iter()
        .filter_map(|a| a.object.clone())
        .filter(|o| o["kind"] != "Application")
        .collect();
    let actual = file(
        &serde_json::to_string(
            &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}),
        )
        .unwrap(),
    );
    let out = logbook(&[
        "plan",
        "-f",
        "examples/apps.yaml",
        "--actual",
        actual.path().to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: Vec<logbook::record::Action> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        again
            .iter()
            .all(|a| a.verb == logbook::record::Verb::Status),
        "{again:#?}"
    );
}

#[test]
fn bad_yaml_is_one_clear_line_and_a_non_zero_exit() {
    let bad =
        file("apiVersion: logbook.dev/v1alpha1\nkind: Application\nmetadata: {name: [unclosed\n");
    let out = logbook(&["plan", "-f", bad.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("not valid YAML"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_kind_is_named() {
    let bad = file("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    let out = logbook(&[
        "plan",
        "-f",
        "examples/apps.yaml",
        "--actual",
        bad.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("unknown kind \"ConfigMap\"") && err.contains("document 1"),
        "{err}"
    );
    let out = logbook(&["plan", "-f", bad.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an Application"));
}

#[test]
fn a_missing_file_and_a_bad_spec_are_reported() {
    let out = logbook(&["plan", "-f", "does-not-exist.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does-not-exist.yaml: cannot read"));
    let bad = file(
        "apiVersion: logbook.dev/v1alpha1\nkind: Application\nmetadata: {name: web}\nspec: {replicas: 2}\n",
    );
    let out = logbook(&["plan", "-f", bad.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a valid Application") && err.contains("image"),
        "{err}"
    );
}
