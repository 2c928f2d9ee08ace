//! W3C trace context across the bus.
//!
//! The publisher stores the `traceparent` of the span that produced an event
//! (in the outbox row, then in the AMQP headers); the consumer makes it the
//! parent of its handling span, so one trace runs from the HTTP request that
//! submitted a contact to every service that handled it.
//!
//! This uses the W3C [`TraceContextPropagator`] directly rather than the global
//! propagator, so the wire format does not depend on what telemetry set up.
//! Without an OpenTelemetry layer in the subscriber, spans have no trace
//! context: [`current_traceparent`] gives `None` and [`set_parent_from`] does
//! nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header (AMQP) and key (outbox) carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current tracing span, if it is part of a trace.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The `traceparent` of `span`, if it is part of a trace.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes the trace context in `traceparent` the parent of `span`. Call it
/// before the span is entered or its context read. A missing or malformed
/// traceparent leaves `span` a root; returns whether a parent was set.
pub fn set_parent_from(span: &tracing::Span, traceparent: Option<&str>) -> bool {
    let Some(traceparent) = traceparent else {
        return false;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if !context.span().span_context().is_valid() {
        tracing::debug!("ignoring malformed traceparent");
        return false;
    }
    match span.set_parent(context) {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(error.message = %error, "could not set span parent");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn without_an_otel_layer_it_is_a_no_op() {
        let span = tracing::info_span!("no otel");
        assert_eq!(traceparent_of(&span), None);
        assert!(!set_parent_from(&span, Some(PARENT)));
        assert_eq!(current_traceparent(), None);
    }

    #[test]
    fn traceparent_round_trips_through_a_span() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let consumer_span = tracing::info_span!("handle event");
            assert!(set_parent_from(&consumer_span, Some(PARENT)));
            let child = consumer_span
                .in_scope(current_traceparent)
                .expect("a traced span has a traceparent");
            // Same trace, new span id, sampled.
            assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
            assert!(!child.contains("00f067aa0ba902b7"));
            assert!(child.ends_with("-01"));

            let malformed = tracing::info_span!("malformed");
            assert!(!set_parent_from(&malformed, Some("not-a-traceparent")));
            assert!(!set_parent_from(&malformed, None));
        });
    }
}
