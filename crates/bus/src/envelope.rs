//! What travels on the bus: one `switchboard.v1.Event` and its trace context.

use prost::Message as _;
use switchboard_proto::v1;

use crate::error::{BusError, BusResult};

/// The AMQP content type of every message body.
pub const CONTENT_TYPE: &str = "application/protobuf";

/// The longest AMQP short string (message id, type, app id, routing key).
const MAX_SHORT_STRING: usize = 255;

/// One event and the W3C trace context it was published under.
///
/// The event's `id` becomes the AMQP `message_id` (and the consumers' inbox
/// key), its `type` the routing key. `Debug` shows the event as is: events carry
/// no personal data in the clear (that travels sealed, see [`crate::seal`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    pub event: v1::Event,
    /// `traceparent` of the span that produced the event, if it was traced.
    pub traceparent: Option<String>,
}

impl Envelope {
    /// Wraps `event` with the trace context of the current span (if any).
    pub fn new(event: v1::Event) -> Self {
        Envelope {
            event,
            traceparent: crate::trace::current_traceparent(),
        }
    }

    pub fn event_id(&self) -> &str {
        &self.event.id
    }

    pub fn event_type(&self) -> &str {
        &self.event.r#type
    }

    /// The protobuf encoding of the event: the message body.
    pub fn encode_body(&self) -> Vec<u8> {
        self.event.encode_to_vec()
    }

    /// Decodes a message body; `event_id` (from the message id) only names the
    /// message in the error.
    pub fn decode_body(event_id: &str, body: &[u8], traceparent: Option<String>) -> BusResult<Envelope> {
        let event = v1::Event::decode(body).map_err(|source| BusError::Decode {
            event_id: event_id.to_owned(),
            source,
        })?;
        Ok(Envelope { event, traceparent })
    }

    /// Refuses events that cannot be routed or deduplicated. The type must be a
    /// routing key without wildcards, so it can never bind unintended queues.
    pub(crate) fn validate(&self) -> BusResult<()> {
        if self.event.id.is_empty() {
            return Err(BusError::InvalidEvent("event has no id".to_owned()));
        }
        let event_type = self.event_type();
        if event_type.is_empty() {
            return Err(BusError::InvalidEvent(format!(
                "event {} has no type",
                self.event.id
            )));
        }
        if event_type.contains(['*', '#']) || event_type.len() > MAX_SHORT_STRING {
            return Err(BusError::InvalidEvent(format!(
                "event {} has type {event_type:?}, which is not a routing key",
                self.event.id
            )));
        }
        // AMQP short strings (message id, type, app id) hold at most 255 bytes.
        if self.event.id.len() > MAX_SHORT_STRING || self.event.source.len() > MAX_SHORT_STRING {
            return Err(BusError::InvalidEvent(format!(
                "event {:.40}… has an id or source longer than {MAX_SHORT_STRING} bytes",
                self.event.id
            )));
        }
        Ok(())
    }
}
