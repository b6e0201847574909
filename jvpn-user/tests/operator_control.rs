//! The control protocol end to end over a real Unix socket, and the Prometheus endpoint over real
//! TCP, against the in-memory fixture gateway of `operator_support`.
//!
//! ```text
//!   test (ControlClient) ──unix socket: $TMP/run/gw0.sock──▶ server::run ──▶ FixtureGateway
//!   test (raw TCP GET)   ──127.0.0.1:0──────────────────────▶ metrics::http::serve
//! ```

mod operator_support;

use jvpn_common::{RejectReason, SessionState};
use jvpn_user::control::{ApiError, ControlClient, ControlClientError};
use jvpn_user::events::{EventFilter, EventKind, EventRecord};
use jvpn_user::metrics::{self, http};
use operator_support::{serve, FixtureGateway, T0_MS};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixStream};

const A: u64 = 0x00aa_0000_0000_0001;
const B: u64 = 0x00bb_0000_0000_0002;

fn gateway(capacity: usize, history: usize) -> Arc<FixtureGateway> {
    let gw = FixtureGateway::new(capacity, history);
    gw.add_session(A, "198.51.100.7:40000".parse().expect("address"));
    gw.add_session(B, "[2001:db8::2]:40001".parse().expect("address"));
    gw
}

async fn connect(socket: &std::path::Path) -> ControlClient {
    ControlClient::connect(socket)
        .await
        .expect("connect to the control socket")
}

#[tokio::test]
async fn every_request_round_trips_over_a_real_unix_socket() {
    let gw = gateway(64, 64);
    let server = serve(gw.clone());
    let mut client = connect(&server.socket).await;

    let status = client.status().await.expect("status");
    assert_eq!(
        (status.sessions.attached, status.iface.as_str()),
        (2, "veth-fixture")
    );

    let list = client.sessions().await.expect("sessions");
    assert_eq!(list.iter().map(|s| s.id).collect::<Vec<_>>(), vec![A, B]);

    let detail = client.session(A).await.expect("show");
    assert_eq!(
        (detail.summary.state, detail.summary.version),
        (SessionState::Attached, 1)
    );

    let stats = client.stats().await.expect("stats");
    assert_eq!(
        (
            stats.dataplane.accepted.packets,
            stats.dataplane.accepted.bytes
        ),
        (15, 1500)
    );
    let bad_tag = stats
        .dataplane
        .drops
        .iter()
        .find(|d| d.reason == RejectReason::BadTag);
    assert_eq!(
        bad_tag.map(|d| d.count.packets),
        Some(7),
        "summed over CPUs"
    );
    assert_eq!(stats.dataplane.dropped().packets, 9);
    assert_eq!(stats.controller.transitions, 4);

    let ended = client.terminate(A).await.expect("terminate");
    assert_eq!((ended.state, ended.version), (SessionState::Terminated, 2));
    let history = client.audit(A).await.expect("audit");
    let versions: Vec<(u64, SessionState)> =
        history.iter().map(|e| (e.version, e.to_state)).collect();
    assert_eq!(
        versions,
        vec![
            (0, SessionState::Birth),
            (1, SessionState::Attached),
            (2, SessionState::Terminated)
        ]
    );

    let again = client.terminate(A).await.expect_err("already terminated");
    assert!(matches!(
        again,
        ControlClientError::Api(ApiError::AlreadyTerminated { id: A, version: 2 })
    ));
    let unknown = client.session(0x42).await.expect_err("unknown session");
    assert!(matches!(
        unknown,
        ControlClientError::Api(ApiError::UnknownSession { id: 0x42 })
    ));
    assert_eq!(
        unknown.to_string(),
        "no session 0000000000000042 on this gateway; list sessions with `jvpn sessions list`"
    );
    let unknown = client.audit(0x42).await.expect_err("unknown session");
    assert!(matches!(
        unknown,
        ControlClientError::Api(ApiError::UnknownSession { .. })
    ));

    drop(client);
    server.shutdown().await;
}

async fn collect_events(client: &mut ControlClient) -> Vec<EventRecord> {
    let mut records = Vec::new();
    while let Some(r) = client.next_event().await.expect("event") {
        records.push(r);
    }
    records
}

#[tokio::test]
async fn events_without_follow_return_the_filtered_history_then_end() {
    let gw = gateway(64, 64);
    gw.bus.publish_at(
        EventRecord::refusal(Some(B), RejectReason::StaleVersion),
        T0_MS,
    );
    let server = serve(gw.clone());
    let mut client = connect(&server.socket).await;

    client
        .start_events(false, EventFilter::default())
        .await
        .expect("send");
    let all = collect_events(&mut client).await;
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );

    let only_b = EventFilter {
        session: Some(B),
        kind: Some(EventKind::StateChange),
    };
    client.start_events(false, only_b).await.expect("send");
    let b = collect_events(&mut client).await;
    let versions: Vec<Option<u64>> = b.iter().map(|r| r.to_version).collect();
    assert_eq!(
        versions,
        vec![Some(0), Some(1)],
        "B's two state changes, not its refusal"
    );

    let status = client
        .status()
        .await
        .expect("the connection still serves requests");
    assert_eq!(status.sessions.attached, 2);
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn follow_streams_live_records_in_order_and_ends_at_shutdown() {
    let gw = FixtureGateway::new(64, 1);
    let server = serve(gw.clone());
    let mut client = connect(&server.socket).await;
    client
        .start_events(true, EventFilter::default())
        .await
        .expect("send");
    // Whether the server subscribes before or after this, the marker arrives exactly once (from
    // the one-record history or live), and once it has arrived the server is subscribed.
    gw.bus
        .publish_at(EventRecord::refusal(None, RejectReason::Malformed), T0_MS);
    assert_eq!(
        client.next_event().await.expect("event").map(|r| r.seq),
        Some(1)
    );

    gw.add_session(A, "198.51.100.7:40000".parse().expect("address"));
    let first = client
        .next_event()
        .await
        .expect("event")
        .expect("live record");
    let second = client
        .next_event()
        .await
        .expect("event")
        .expect("live record");
    assert_eq!((first.seq, first.to_state), (2, Some(SessionState::Birth)));
    assert_eq!(
        (second.seq, second.to_state),
        (3, Some(SessionState::Attached))
    );

    server.shutdown().await;
    assert_eq!(
        client.next_event().await.expect("clean end"),
        None,
        "end_of_events at shutdown"
    );
}

#[tokio::test]
async fn a_slow_follower_gets_an_events_lost_notice_with_the_count_not_silence() {
    let gw = FixtureGateway::new(8, 1);
    let server = serve(gw.clone());
    let mut client = connect(&server.socket).await;
    client
        .start_events(true, EventFilter::default())
        .await
        .expect("send");
    // The marker proves the server is subscribed (see the follow test above).
    gw.bus
        .publish_at(EventRecord::refusal(None, RejectReason::Malformed), T0_MS);
    assert_eq!(
        client.next_event().await.expect("event").map(|r| r.seq),
        Some(1)
    );

    // On this single-threaded runtime the server cannot run while this loop publishes, so its
    // subscription falls 1000 - 8 records behind.
    for _ in 0..1000 {
        gw.bus
            .publish_at(EventRecord::refusal(None, RejectReason::BadTag), T0_MS);
    }
    let notice = client.next_event().await.expect("event").expect("a record");
    assert_eq!(notice.kind, EventKind::EventsLost);
    assert_eq!((notice.lost, notice.seq), (Some(992), 993));
    let rest: Vec<u64> = {
        let mut seqs = Vec::new();
        for _ in 0..8 {
            seqs.push(
                client
                    .next_event()
                    .await
                    .expect("event")
                    .expect("record")
                    .seq,
            );
        }
        seqs
    };
    assert_eq!(rest, (994..=1001).collect::<Vec<_>>());
    assert_eq!(
        gw.bus.losses().subscribers,
        992,
        "the loss is counted globally"
    );
    server.shutdown().await;
}

async fn raw_exchange(socket: &std::path::Path, request: &[u8]) -> (String, String) {
    let stream = UnixStream::connect(socket).await.expect("connect");
    let (read, mut write) = stream.into_split();
    // The server may answer and close before the whole request is written; that is its right.
    let _ = write.write_all(request).await;
    let mut read = BufReader::new(read);
    let mut first = String::new();
    read.read_line(&mut first).await.expect("answer line");
    let mut rest = String::new();
    match read.read_to_string(&mut rest).await {
        Ok(_) => {}
        // Linux resets a Unix stream whose peer closed with request bytes still unread.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading after the answer: {e}"),
    }
    (first, rest)
}

#[tokio::test]
async fn hostile_request_lines_get_an_error_then_the_connection_closes() {
    let server = serve(gateway(8, 8));
    let huge = vec![b'x'; 200 * 1024];
    let cases: [(&[u8], &str); 4] = [
        (b"not json\n", "not a valid request"),
        (
            b"{\"request\":\"show_session\",\"id\":\"zz\"}\n",
            "not a session id",
        ),
        (b"{\"request\":\"rm_rf\"}\n", "unknown variant"),
        (&huge, "line longer than"),
    ];
    for (request, want) in cases {
        let (first, rest) = raw_exchange(&server.socket, request).await;
        let response: serde_json::Value = serde_json::from_str(&first).expect("the error is JSON");
        assert_eq!(response["response"], "error", "{first}");
        assert_eq!(response["body"]["error"], "bad_request", "{first}");
        assert!(first.contains(want), "{first} should mention {want:?}");
        assert_eq!(rest, "", "the connection closes after a bad request");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_text_has_every_family_with_gateway_values() {
    let gw = gateway(8, 8);
    gw.metrics.cas_conflict();
    gw.metrics.reject(RejectReason::StaleVersion);
    gw.bus.report_dataplane_loss(5);
    let registry = metrics::registry(gw.metrics.clone(), gw.clone());
    let text = metrics::render(&registry);
    for family in [
        "# TYPE jvpn_dataplane_drops_total counter",
        "# TYPE jvpn_dataplane_dropped_bytes_total counter",
        "# TYPE jvpn_dataplane_accepted_total counter",
        "# TYPE jvpn_dataplane_to_controller_total counter",
        "# TYPE jvpn_sessions gauge",
        "# TYPE jvpn_transitions_total counter",
        "# TYPE jvpn_cas_conflicts_total counter",
        "# TYPE jvpn_controller_rejects_total counter",
        "# TYPE jvpn_events_lost_total counter",
        "# TYPE jvpn_controller_seal_failures_total counter",
        "# TYPE jvpn_tunnel_packets_total counter",
        "# TYPE jvpn_tunnel_bytes_total counter",
        "# TYPE jvpn_tunnel_drops_total counter",
    ] {
        assert!(text.contains(family), "missing {family:?} in:\n{text}");
    }
    for sample in [
        "jvpn_dataplane_drops_total{reason=\"BAD_TAG\"} 7",
        "jvpn_dataplane_dropped_bytes_total{reason=\"DUPLICATE_NONCE\"} 164",
        "jvpn_dataplane_accepted_total 15",
        "jvpn_sessions{state=\"ATTACHED\"} 2",
        "jvpn_transitions_total{from=\"BIRTH\",to=\"ATTACHED\"} 2",
        "jvpn_cas_conflicts_total 1",
        "jvpn_controller_rejects_total{reason=\"STALE_VERSION\"} 1",
        "jvpn_events_lost_total{where=\"dataplane\"} 5",
        "jvpn_controller_seal_failures_total 3",
        "jvpn_tunnel_packets_total{direction=\"upstream\"} 11",
        "jvpn_tunnel_bytes_total{direction=\"downstream\"} 1200",
        "jvpn_tunnel_drops_total{reason=\"foreign_source\"} 2",
        "jvpn_tunnel_drops_total{reason=\"unroutable\"} 1",
    ] {
        assert!(text.contains(sample), "missing {sample:?} in:\n{text}");
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("read to close");
    answer
}

#[tokio::test]
async fn metrics_are_served_over_http() {
    let gw = gateway(8, 8);
    let registry = Arc::new(metrics::registry(gw.metrics.clone(), gw.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(http::serve(listener, registry, async {
        let _ = stopped.await;
    }));

    let ok = http_get(addr, "/metrics").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Content-Type: text/plain; version=0.0.4"),
        "{ok}"
    );
    assert!(ok.contains("jvpn_sessions{state=\"ATTACHED\"} 2"), "{ok}");
    let missing = http_get(addr, "/").await;
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{missing}"
    );

    let _ = stop.send(());
    task.await.expect("metrics server ends at shutdown");
}
