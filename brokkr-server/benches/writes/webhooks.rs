//! Webhooks: what one subscription costs the write path, and how fast its events reach
//! a receiver. Creates are measured twice on fresh databases, one after the other:
//! without a subscription, then with one to `deployment_object.created` pointing at a
//! receiver in this process (on 127.0.0.1, answering 200 at once). The second run also
//! waits, at most `DRAIN_TIMEOUT` after its window, until every acknowledged object's
//! event arrived, and prints the delivery rate: events received over the time from the
//! first delivery to the last (one subscription delivers in order, one at a time).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Route, handler, post};

use super::*;

/// How long the drain may take after the write window.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The test key sealing the subscription's secret (bench only).
const SEALING_KEY: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    delivery_ids: HashSet<String>,
    requests: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// A receiver on 127.0.0.1 that answers every delivery 200 and counts it.
pub(super) struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    _serving: tokio::task::JoinHandle<()>,
}

#[handler]
fn receive(req: &Request, seen: Data<&Arc<Mutex<Seen>>>) -> &'static str {
    let now = Instant::now();
    let mut seen = seen.lock().expect("receiver state");
    if let Some(id) = req
        .headers()
        .get("x-brokkr-delivery")
        .and_then(|v| v.to_str().ok())
    {
        seen.delivery_ids.insert(id.to_owned());
    }
    seen.requests += 1;
    seen.first.get_or_insert(now);
    seen.last = Some(now);
    "ok"
}

impl Receiver {
    pub(super) async fn start() -> Result<Self> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Route::new()
            .at("/hook", post(receive))
            .data(Arc::clone(&seen));
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().copied())
            .ok_or("the receiver has no socket address")?;
        let serving = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Ok(Self {
            addr,
            seen,
            _serving: serving,
        })
    }

    /// The server's configuration for sending here.
    pub(super) fn server_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BROKKR__WEBHOOKS__KEYS", SEALING_KEY.to_owned()),
            ("BROKKR__WEBHOOKS__ALLOWED_HOSTS", self.addr.to_string()),
        ]
    }

    /// Subscribes the receiver to every new deployment object, through the API.
    pub(super) async fn subscribe(&self, base: &str, admin: &str) -> Result {
        let request = support::client()?
            .post(format!("{base}/api/v1/webhooks"))
            .header(AUTHORIZATION, format!("Bearer {admin}"))
            .json(&json!({
                "url": format!("http://{}/hook", self.addr),
                "event_types": ["deployment_object.created"],
            }));
        expect_json::<serde_json::Value>(request.send().await)
            .await
            .map_err(|kind| format!("subscribing: {kind}"))?;
        Ok(())
    }

    fn delivered(&self) -> usize {
        self.seen.lock().expect("receiver state").delivery_ids.len()
    }

    /// Waits until `expected` events arrived (or the drain timeout) and prints the
    /// figures; `window_end` is when the writers stopped.
    pub(super) async fn report(&self, expected: usize, window_end: Instant) {
        let behind_at_end = expected.saturating_sub(self.delivered());
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.delivered() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seen = self.seen.lock().expect("receiver state");
        let delivered = seen.delivery_ids.len();
        let span = match (seen.first, seen.last) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let rate = if span > 0.0 {
            delivered as f64 / span
        } else {
            0.0
        };
        figure(
            "delivered/s, one subscription",
            format!(
                "{} ({} events in {span:.1} s, first to last)",
                thousands(rate),
                thousands(delivered as f64)
            ),
        );
        figure(
            "events not yet delivered when the writers stopped",
            thousands(behind_at_end as f64),
        );
        if let Some(last) = seen.last {
            figure(
                "last delivery after the writers stopped",
                format!(
                    "{:.1} s",
                    last.saturating_duration_since(window_end).as_secs_f64()
                ),
            );
        }
        budget(
            "events of acknowledged objects delivered",
            format!(
                "{} / {}",
                thousands(delivered as f64),
                thousands(expected as f64)
            ),
            "all",
            delivered >= expected,
        );
        figure(
            "requests received (repeats included)",
            thousands(seen.requests as f64),
        );
    }
}

/// Creates without and with one subscription, on fresh databases, and the cost.
pub(super) async fn webhooks(backend: Backend, settings: &Settings) -> Result {
    let Some(without) = creates(backend, 1, settings, None).await? else {
        return Ok(());
    };
    let receiver = Receiver::start().await?;
    let Some(with) = creates(backend, 1, settings, Some(&receiver)).await? else {
        return Ok(());
    };
    println!("{backend}: the write path with one webhook subscription (same run):");
    figure(
        "created/s, one subscription vs none",
        format!(
            "{} vs {} ({:+.1}%)",
            thousands(with),
            thousands(without),
            (with / without - 1.0) * 100.0
        ),
    );
    Ok(())
}
