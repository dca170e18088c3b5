//! The checked-in CRD is exactly what the Rust types generate, and says what the issue asks.

use logbook::model::crd_yaml;

const CHECKED_IN: &str = include_str!("../schema/application.crd.yaml");

#[test]
fn checked_in_crd_matches_the_types() {
    assert!(
        CHECKED_IN == crd_yaml(),
        "schema/application.crd.yaml is out of date: run `cargo run -- crd > schema/application.crd.yaml`"
    );
}

#[test]
fn crd_validates_what_a_schema_can() {
    let crd: serde_json::Value = serde_saphyr::from_str(CHECKED_IN).expect("the CRD is YAML");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(crd["spec"]["group"], "logbook.dev");
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "app");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert!(version["subresources"]["status"].is_object());
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["image"]));
    assert_eq!(spec["properties"]["replicas"]["default"], 1);
    assert_eq!(spec["properties"]["replicas"]["maximum"], 1000.0);
    assert_eq!(spec["properties"]["port"]["default"], 8080);
    assert_eq!(spec["properties"]["port"]["maximum"], 65535.0);
    assert_eq!(spec["properties"]["path"]["default"], "/");
    assert!(spec["properties"]["host"]["pattern"].is_string());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for want in ["Image", "Replicas", "Ready", "URL", "Age"] {
        assert!(
            columns.contains(&want),
            "missing printer column {want}: {columns:?}"
        );
    }
}

#[test]
fn deploy_carries_the_same_crd() {
    let deployed = include_str!("../deploy/base/application.crd.yaml");
    assert!(
        deployed == CHECKED_IN,
        "deploy/base/application.crd.yaml differs from schema/: run `make crd`"
    );
}
