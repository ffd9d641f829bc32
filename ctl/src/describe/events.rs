//! The `Events:` section every description ends with.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;

use super::format::{human_duration, since, Out};

/// kubectl's event table: Type, Reason, Age (`5s`, or `2m (x3 over 10m)`), From, Message,
/// oldest first.
pub fn section(out: &mut Out, events: &[Event]) {
    if events.is_empty() {
        out.line(0, "Events:\t<none>");
        return;
    }
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| last_seen(e));
    out.line(0, "Events:");
    out.line(1, "Type\tReason\tAge\tFrom\tMessage");
    out.line(1, "----\t------\t----\t----\t-------");
    for e in events {
        let age = last_seen(e)
            .map(|t| human_duration(since(&t)))
            .unwrap_or_else(|| "<unknown>".into());
        let count = e.count.unwrap_or(1);
        let age = match first_seen(e) {
            Some(first) if count > 1 => {
                format!("{age} (x{count} over {})", human_duration(since(&first)))
            }
            _ => age,
        };
        let from = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        out.line(
            1,
            format!(
                "{}\t{}\t{age}\t{from}\t{}",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("").trim()
            ),
        );
    }
}

fn last_seen(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn first_seen(e: &Event) -> Option<Timestamp> {
    e.first_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| last_seen(e))
}
