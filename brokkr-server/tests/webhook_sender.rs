//! `ReqwestSender` against the loopback receiver: what it sends, and how each way a
//! receiver can answer (or not) becomes an outcome.

mod common;

use std::time::{Duration, Instant};

use brokkr_core::runtime::{SendOutcome, WebhookRequest, WebhookSender, WebhookSettings};
use brokkr_core::webhook::{self, HostAllowlist, signature};
use brokkr_server::webhooks::ReqwestSender;
use common::receiver::{Answer, Receiver};

const TIMEOUT: Duration = Duration::from_millis(400);
const SECRET: &str = "whsec_sender_test";

fn mk_sender(allowed: &[&str], max_response_bytes: usize) -> ReqwestSender {
    let settings = WebhookSettings {
        allowlist: HostAllowlist::parse(allowed).unwrap(),
        timeout: TIMEOUT,
        ..WebhookSettings::default()
    };
    ReqwestSender::new(&settings, max_response_bytes).unwrap()
}

fn mk_request(url: String) -> WebhookRequest {
    let body = br#"{"id":"d1","type":"webhook.test","data":{}}"#.to_vec();
    let timestamp = 1_700_000_000;
    WebhookRequest {
        url,
        headers: vec![
            ("Content-Type", "application/json".into()),
            (
                webhook::SIGNATURE_HEADER,
                signature::sign(SECRET.as_bytes(), timestamp, &body),
            ),
            (webhook::TIMESTAMP_HEADER, timestamp.to_string()),
            (webhook::DELIVERY_HEADER, "d1".into()),
            (webhook::EVENT_HEADER, "webhook.test".into()),
        ],
        body,
    }
}

/// Sends one request to `receiver` after scripting `answer`.
async fn send_one(receiver: &Receiver, answer: Answer) -> SendOutcome {
    receiver.script([answer]);
    mk_sender(&[&receiver.host_port()], 64 * 1024)
        .send(&mk_request(receiver.url("/hook?token=abc")))
        .await
}

#[tokio::test]
async fn a_200_is_delivered_with_every_header_and_the_body_intact() {
    let receiver = Receiver::start().await;
    let outcome = send_one(&receiver, Answer::Status(200)).await;
    assert_eq!(outcome, SendOutcome::Delivered { status: 200 });
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook?token=abc");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-brokkr-delivery"), Some("d1"));
    assert_eq!(request.header("x-brokkr-event"), Some("webhook.test"));
    assert!(
        request
            .header("user-agent")
            .unwrap()
            .starts_with("brokkr-webhooks/")
    );
    let sent = mk_request(String::new());
    assert_eq!(request.body, sent.body);
    let timestamp: i64 = request
        .header("x-brokkr-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    signature::verify(
        SECRET.as_bytes(),
        timestamp,
        &request.body,
        request.header("x-brokkr-signature").unwrap(),
        timestamp,
        signature::DEFAULT_TOLERANCE,
    )
    .expect("the signature verifies on the receiver's side");
}

#[tokio::test]
async fn a_500_fails_with_its_status_and_the_start_of_its_body() {
    let receiver = Receiver::start().await;
    let outcome = send_one(&receiver, Answer::Status(500)).await;
    assert_eq!(
        outcome,
        SendOutcome::Failed {
            status: Some(500),
            error: "answered 500: scripted 500".into()
        }
    );
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_fails_in_time() {
    let receiver = Receiver::start().await;
    let started = Instant::now();
    let outcome = send_one(&receiver, Answer::Sleep(Duration::from_secs(5))).await;
    let took = started.elapsed();
    assert!(
        matches!(&outcome, SendOutcome::Failed { status: None, error } if error == "no answer within 400 ms"),
        "{outcome:?}"
    );
    assert!(took >= TIMEOUT && took < TIMEOUT * 4, "took {took:?}");
    assert_eq!(receiver.received().len(), 1, "the request itself arrived");
}

#[tokio::test]
async fn a_closed_connection_fails_without_a_status() {
    let receiver = Receiver::start().await;
    let outcome = send_one(&receiver, Answer::Close).await;
    let SendOutcome::Failed {
        status: None,
        error,
    } = &outcome
    else {
        panic!("a closed connection is a failure: {outcome:?}");
    };
    assert!(error.starts_with("request failed"), "{error}");
    assert!(
        !error.contains("token=abc"),
        "the URL stays out of errors: {error}"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_names_its_location() {
    let receiver = Receiver::start().await;
    let elsewhere = receiver.url("/elsewhere");
    let outcome = send_one(&receiver, Answer::Redirect(elsewhere.clone())).await;
    assert_eq!(
        outcome,
        SendOutcome::Failed {
            status: Some(302),
            error: format!("answered 302, a redirect to {elsewhere} (redirects are not followed)")
        }
    );
    // Give a follower time to show itself: still only the one request.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].path, "/hook?token=abc");
}

#[tokio::test]
async fn a_host_outside_the_allowlist_is_never_contacted() {
    let receiver = Receiver::start().await;
    for allowed in [
        &[][..],
        &["127.0.0.1:1"],
        &["*.example.com"],
        &["localhost"],
    ] {
        let outcome = mk_sender(allowed, 1024)
            .send(&mk_request(receiver.url("/hook")))
            .await;
        let SendOutcome::Failed {
            status: None,
            error,
        } = &outcome
        else {
            panic!("{allowed:?}: {outcome:?}");
        };
        assert!(
            error.starts_with("not sent:") && error.contains("allowlist"),
            "{allowed:?}: {error}"
        );
    }
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn localhost_named_in_the_allowlist_is_reached_by_name() {
    let receiver = Receiver::start().await;
    let port = receiver.host_port().rsplit_once(':').unwrap().1.to_owned();
    let sender = mk_sender(&[&format!("localhost:{port}")], 1024);
    let outcome = sender
        .send(&mk_request(format!("http://localhost:{port}/hook")))
        .await;
    // `localhost` may resolve to ::1 first, where nothing listens; the sender tries
    // every address it resolved.
    assert_eq!(outcome, SendOutcome::Delivered { status: 200 });
}

#[tokio::test]
async fn an_endless_answer_is_read_only_up_to_the_bound() {
    let receiver = Receiver::start().await;
    receiver.script([Answer::Endless(500)]);
    let started = Instant::now();
    let outcome = mk_sender(&[&receiver.host_port()], 4096)
        .send(&mk_request(receiver.url("/hook")))
        .await;
    assert!(
        started.elapsed() < TIMEOUT,
        "stopped reading at the bound, not at the timeout: {:?}",
        started.elapsed()
    );
    let SendOutcome::Failed {
        status: Some(500),
        error,
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(
        error.starts_with("answered 500: xxxx") && error.ends_with('…'),
        "{error}"
    );
}
