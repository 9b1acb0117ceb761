//! A `tracing` subscriber that keeps every span and event with its fields as text, and which span
//! each event belongs to (its explicit parent, or the span entered when it fired).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Clone, Debug)]
pub struct SpanRecord {
    pub id: u64,
    pub name: &'static str,
    pub target: String,
    pub fields: HashMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct EventRecord {
    pub level: Level,
    pub target: String,
    pub parent: Option<u64>,
    pub fields: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    next_id: AtomicU64,
    spans: Mutex<Vec<SpanRecord>>,
    events: Mutex<Vec<EventRecord>>,
    /// Entered spans, innermost last (the tests run on one thread).
    entered: Mutex<Vec<u64>>,
}

#[derive(Clone, Default)]
pub struct Capture(Arc<State>);

impl Capture {
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.0.spans.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.0.events.lock().unwrap().clone()
    }
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = HashMap::new();
        span.record(&mut Fields(&mut fields));
        self.0.spans.lock().unwrap().push(SpanRecord {
            id,
            name: span.metadata().name(),
            target: span.metadata().target().to_string(),
            fields,
        });
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.0.spans.lock().unwrap();
        if let Some(s) = spans.iter_mut().find(|s| s.id == span.into_u64()) {
            values.record(&mut Fields(&mut s.fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let parent = if event.is_contextual() {
            self.0.entered.lock().unwrap().last().copied()
        } else {
            event.parent().map(Id::into_u64)
        };
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.events.lock().unwrap().push(EventRecord {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            parent,
            fields,
        });
    }

    fn enter(&self, span: &Id) {
        self.0.entered.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut entered = self.0.entered.lock().unwrap();
        if let Some(i) = entered.iter().rposition(|s| *s == span.into_u64()) {
            entered.remove(i);
        }
    }
}
