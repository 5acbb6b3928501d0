#![cfg(all(feature = "axum", feature = "webhook"))]
//! Trace propagation end to end: a bus, a webhook over real HTTP on
//! 127.0.0.1, the ingress router and a second bus, with one trace id; and
//! the ingress's handling of malformed trace values.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use hookbus::ingress::Ingress;
use hookbus::signature::{Secret, SignRequest, SignatureScheme};
use hookbus::verify::Verifier;
use hookbus::{Bus, Event};
use http::HeaderMap;
use serde_json::json;
use tokio::sync::mpsc;

const CE_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn collect(bus: &Bus, pattern: &str) -> mpsc::UnboundedReceiver<Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    bus.on(pattern.to_owned(), move |e: &Event| {
        let _ = tx.send(e.clone());
    })
    .unwrap()
    .detach();
    rx
}

/// The ingress on 127.0.0.1, with a layer that records the headers of
/// every request it receives.
async fn serve(bus: &Bus) -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Ingress::new(bus.clone())
        .cloudevents("/events", Verifier::standard_webhooks(CE_SECRET).unwrap())
        .into_router()
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            record.lock().unwrap().push(req.headers().clone());
            next.run(req)
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// Posts `body` signed with Standard Webhooks, plus `extra` headers.
async fn post(base: &str, content_type: &str, body: &str, extra: &[(&str, &str)]) -> u16 {
    let id = uuid::Uuid::new_v4().to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed = SignatureScheme::standard_webhooks()
        .sign(
            &[Secret::new(CE_SECRET)],
            &SignRequest {
                id: &id,
                timestamp: now,
                body: body.as_bytes(),
            },
        )
        .unwrap();
    let mut req = reqwest::Client::new()
        .post(format!("{base}/events"))
        .header("content-type", content_type)
        .body(body.to_owned());
    for (k, v) in signed {
        req = req.header(k, v);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

fn structured(id: &str, extra: serde_json::Value) -> String {
    let mut event = json!({
        "specversion": "1.0", "id": id, "source": "test", "type": "order.placed",
        "data": {"n": 1}
    });
    for (k, v) in extra.as_object().unwrap() {
        event[k] = v.clone();
    }
    event.to_string()
}

/// Shutting the bus down runs every handler on what was emitted: an empty
/// channel afterwards means nothing else was emitted.
async fn assert_nothing_more(bus: &Bus, rx: &mut mpsc::UnboundedReceiver<Event>) {
    let report = bus.shutdown(Duration::from_secs(10)).await;
    assert!(report.is_clean(), "{report}");
    assert!(rx.try_recv().is_err(), "an unexpected event was emitted");
}

#[tokio::test]
async fn malformed_trace_values_are_refused_or_ignored_never_propagated() {
    let bus = Bus::new().unwrap();
    let mut rx = collect(&bus, "order.*");
    let (base, _) = serve(&bus).await;
    let ce = "application/cloudevents+json";

    // A malformed extension makes the event malformed: 400, nothing emitted.
    for bad in [
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
    ] {
        let body = structured("bad-ext", json!({"traceparent": bad}));
        assert_eq!(post(&base, ce, &body, &[]).await, 400, "{bad}");
    }
    let body = structured(
        "bad-state",
        json!({"traceparent": GOOD, "tracestate": "No Key"}),
    );
    assert_eq!(post(&base, ce, &body, &[]).await, 400);
    let body = structured("bad-type", json!({"traceparent": 7}));
    assert_eq!(post(&base, ce, &body, &[]).await, 400);
    // The same in binary mode (`ce-traceparent`).
    let binary = [
        ("ce-specversion", "1.0"),
        ("ce-id", "bin-1"),
        ("ce-source", "test"),
        ("ce-type", "order.placed"),
        ("ce-traceparent", "00-xyz"),
    ];
    assert_eq!(post(&base, "application/json", "{}", &binary).await, 400);

    // A malformed transport header is ignored: the event is taken, without
    // a trace context.
    for bad in [
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "",
    ] {
        let id = format!("bad-header-{}", bad.len());
        let body = structured(&id, json!({}));
        let extra = [("traceparent", bad), ("tracestate", "a=b")];
        assert_eq!(post(&base, ce, &body, &extra).await, 200, "{bad:?}");
        let got = rx.recv().await.unwrap();
        assert_eq!(got.id(), id);
        assert_eq!(got.traceparent(), None, "{bad:?}");
        assert!(got.extension("tracestate").is_none());
    }

    // A valid transport header fills in a missing extension; a malformed
    // tracestate beside it is dropped.
    let body = structured("from-header", json!({}));
    let extra = [("traceparent", GOOD), ("tracestate", "Bad Key")];
    assert_eq!(post(&base, ce, &body, &extra).await, 200);
    let got = rx.recv().await.unwrap();
    assert_eq!(got.traceparent().unwrap().to_string(), GOOD);
    assert_eq!(got.tracestate(), None);

    // The event's own extension wins over the transport's header.
    let own = "00-0af7651916cd43dd8448eb211c80319c-b9c7c989f97918e1-01";
    let body = structured("own", json!({"traceparent": own, "tracestate": "rojo=1"}));
    assert_eq!(post(&base, ce, &body, &[("traceparent", GOOD)]).await, 200);
    let got = rx.recv().await.unwrap();
    assert_eq!(got.extension("traceparent").unwrap().to_string(), own);
    assert_eq!(got.tracestate(), Some("rojo=1"));

    assert_nothing_more(&bus, &mut rx).await;
}

#[cfg(feature = "trace")]
mod traced {
    use std::sync::OnceLock;

    use hookbus::trace::{SpanContext, TraceParent, context_of};
    use hookbus::webhook::{WebhookSink, WireFormat};
    use tracing::span;
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::registry::LookupSpan;

    use super::*;

    /// Records the trace context of every `hookbus.ingress` span when it
    /// closes.
    struct IngressSpans(Arc<Mutex<Vec<SpanContext>>>);

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for IngressSpans {
        fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
            if let Some(span) = ctx.span(&id)
                && span.name() == "hookbus.ingress"
                && let Some(c) = span.extensions().get::<SpanContext>()
            {
                self.0.lock().unwrap().push(c.clone());
            }
        }
    }

    /// One subscriber for the whole test binary: a `Registry` (which keeps
    /// the spans' trace contexts) with the recording layer.
    fn ingress_spans() -> Arc<Mutex<Vec<SpanContext>>> {
        static SPANS: OnceLock<Arc<Mutex<Vec<SpanContext>>>> = OnceLock::new();
        SPANS
            .get_or_init(|| {
                let spans = Arc::new(Mutex::new(Vec::new()));
                tracing_subscriber::registry()
                    .with(IngressSpans(spans.clone()))
                    .init();
                spans
            })
            .clone()
    }

    #[test]
    fn events_built_in_a_span_share_its_trace() {
        ingress_spans();
        // Outside any span: no trace context.
        assert_eq!(Event::new("a.b", json!({})).unwrap().traceparent(), None);

        let root = tracing::info_span!("request");
        let (a, b, inner_ctx) = root.in_scope(|| {
            let a = Event::new("a.b", json!({})).unwrap();
            let inner = tracing::info_span!("step");
            let b = inner.in_scope(|| Event::new("a.b", json!({})).unwrap());
            (a, b, context_of(&inner).unwrap())
        });
        let root_ctx = context_of(&root).unwrap();
        let (a, b) = (a.traceparent().unwrap(), b.traceparent().unwrap());
        // Same trace; each event names the span it was built in.
        assert_eq!(a.trace_id(), root_ctx.trace_id());
        assert_eq!(b.trace_id(), root_ctx.trace_id());
        assert_eq!(a.parent_id(), root_ctx.span_id());
        assert_eq!(b.parent_id(), inner_ctx.span_id());
        assert_eq!(inner_ctx.parent_id(), Some(root_ctx.span_id()));
        assert!(a.sampled());

        // An event that brings its own context keeps it.
        let own: TraceParent = GOOD.parse().unwrap();
        let kept = root.in_scope(|| {
            Event::builder("a.b")
                .extension("traceparent", GOOD)
                .build()
                .unwrap()
        });
        assert_eq!(kept.traceparent(), Some(own));

        // A span given a received context continues that trace.
        let continued = tracing::info_span!("continued");
        assert!(hookbus::trace::attach(
            &continued,
            SpanContext::child_of(&own, None)
        ));
        let e = continued.in_scope(|| Event::new("a.b", json!({})).unwrap());
        let tp = e.traceparent().unwrap();
        assert_eq!(tp.trace_id(), own.trace_id());
        assert_ne!(tp.parent_id(), own.parent_id());
    }

    /// A received event's trace context is the sender's (or none): a
    /// request span around the ingress (as tower-http's `TraceLayer` makes)
    /// does not give one to an event that came without.
    #[tokio::test]
    async fn a_request_span_gives_no_trace_context_to_an_untraced_event() {
        use tracing::Instrument;
        ingress_spans();
        let bus = Bus::new().unwrap();
        let mut rx = collect(&bus, "**");
        let app = Ingress::new(bus.clone())
            .cloudevents("/events", Verifier::standard_webhooks(CE_SECRET).unwrap())
            .into_router()
            .layer(middleware::from_fn(|req: Request, next: Next| {
                next.run(req).instrument(tracing::info_span!("request"))
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let ce = "application/cloudevents+json";
        assert_eq!(
            post(&base, ce, &structured("plain", json!({})), &[]).await,
            200
        );
        assert_eq!(
            post(&base, "application/json", r#"{"n": 1}"#, &[]).await,
            200
        );
        for _ in 0..2 {
            let got = rx.recv().await.unwrap();
            assert_eq!(got.traceparent(), None, "{got:?}");
        }
        assert_nothing_more(&bus, &mut rx).await;
    }

    #[tokio::test]
    async fn one_trace_id_from_bus_through_webhook_and_ingress_to_a_second_bus() {
        let spans = ingress_spans();
        for format in [WireFormat::Binary, WireFormat::Structured] {
            let receiving = Bus::new().unwrap();
            let mut rx = collect(&receiving, "order.*");
            let mut follow_ups = collect(&receiving, "billing.*");
            // A handler on the receiving bus continues the event's trace
            // and emits a follow-up inside its span.
            let (handler_tx, mut handler_spans) = mpsc::unbounded_channel();
            let bus = receiving.clone();
            receiving
                .on("order.*", move |e: &Event| {
                    // What it did goes back to the test, which asserts
                    // (a panic here would only be logged by the bus).
                    let span = tracing::info_span!("bill");
                    let followed = hookbus::trace::follow(&span, e);
                    let emitted = span.in_scope(|| {
                        Event::new("billing.done", json!({}))
                            .map(|e| bus.emit(e).is_ok())
                            .unwrap_or(false)
                    });
                    let _ = handler_tx.send((followed, emitted, context_of(&span)));
                })
                .unwrap()
                .detach();
            let (base, seen) = serve(&receiving).await;

            let sending = Bus::new().unwrap();
            let _sub = WebhookSink::builder(format!("{base}/events"))
                .secret(CE_SECRET)
                .signature(SignatureScheme::standard_webhooks())
                .format(format)
                .events(["order.*"])
                .build()
                .unwrap()
                .subscribe(&sending)
                .unwrap();

            // Emitted inside a traced span: the event takes its context.
            let checkout = tracing::info_span!("checkout");
            checkout.in_scope(|| {
                sending
                    .emit(Event::new("order.placed", json!({"n": 1})).unwrap())
                    .unwrap()
            });
            let origin = context_of(&checkout).unwrap();
            let expected = origin.traceparent().to_string();

            // The second bus gets the event with the same trace context.
            let got = rx.recv().await.unwrap();
            assert_eq!(got.traceparent(), Some(origin.traceparent()), "{format:?}");
            assert_eq!(
                got.extension("traceparent").unwrap().to_string(),
                expected,
                "{format:?}"
            );

            // The handler's follow-up: the same trace, the handler's span
            // as parent, and that span a child of the sender's.
            let (followed, emitted, handler) = handler_spans.recv().await.unwrap();
            assert!(followed && emitted, "{format:?}");
            let handler = handler.unwrap();
            let follow_up = follow_ups.recv().await.unwrap();
            let tp = follow_up.traceparent().unwrap();
            assert_eq!(tp.trace_id(), origin.trace_id(), "{format:?}");
            assert_eq!(tp.parent_id(), handler.span_id());
            assert_eq!(handler.parent_id(), Some(origin.span_id()));

            // The receiver saw the W3C header, and in binary mode the
            // extension's ce- header, with the same value.
            let headers = seen.lock().unwrap().pop().unwrap();
            assert_eq!(headers["traceparent"], expected.as_str(), "{format:?}");
            match format {
                WireFormat::Binary => assert_eq!(headers["ce-traceparent"], expected.as_str()),
                _ => assert!(!headers.contains_key("ce-traceparent")),
            }

            // The ingress's span continued the trace: same trace id, a new
            // span id, the sender's span as parent. (Once the sending bus
            // is shut down, its delivery has its answer, so the ingress's
            // handler and its span are done.)
            let report = sending.shutdown(Duration::from_secs(10)).await;
            assert!(report.is_clean(), "{report}");
            let spans_in_trace: Vec<SpanContext> = spans
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.trace_id() == origin.trace_id())
                .cloned()
                .collect();
            assert_eq!(spans_in_trace.len(), 1, "{format:?}");
            assert_eq!(spans_in_trace[0].parent_id(), Some(origin.span_id()));
            assert_ne!(spans_in_trace[0].span_id(), origin.span_id());

            assert_nothing_more(&receiving, &mut rx).await;
            assert!(follow_ups.try_recv().is_err());
        }
    }
}
