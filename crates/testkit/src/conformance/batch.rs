//! A batching connector reports each item of a batch on its own.

use serde_json::json;

use super::Subject;
use super::harness::{Case, note, reasons};

/// Events that succeed in the batching case.
const GOOD: usize = 5;

/// Five events and one the system refuses item by item, published
/// together: they travel in fewer calls than events, the five have one
/// effect each, and only the refused one is dead-lettered (`permanent`).
pub async fn batch_outcomes_are_per_item<S: Subject>() {
    let case = Case::<S>::start("batch_outcomes_are_per_item").await;
    let Some(batch) = case.subject.batch() else {
        note(
            S::CONNECTOR,
            case.name,
            "SKIPPED: the connector does not batch",
        );
        return;
    };
    let good: Vec<String> = (0..GOOD).map(|i| case.tag(i)).collect();
    let refused = case.tag(GOOD);
    let mut events: Vec<_> = good
        .iter()
        .map(|t| {
            case.event_with(
                t,
                "conformance.batch",
                json!({"id": t, "name": format!("conformance {t}")}),
            )
        })
        .collect();
    events.push(case.event_with(&refused, "conformance.refused", (batch.refused)(&refused)));
    case.publish(events).await;
    let outcome = case.job().await;
    for tag in &good {
        assert_eq!(
            case.effects(tag).await,
            1,
            "{tag}: one effect beside a refused item\n{}",
            outcome.tail()
        );
    }
    assert_eq!(
        outcome.dead.len(),
        1,
        "only the refused item\n{}",
        outcome.tail()
    );
    let dead = reasons(&outcome.dead[0]);
    assert_eq!(
        dead.get("error-class").map(String::as_str),
        Some("permanent"),
        "{dead:#?}"
    );
    assert_eq!(
        dead.get("route").map(String::as_str),
        Some("conformance-refused"),
        "{dead:#?}"
    );
    let calls = case.proxy.calls().len();
    assert!(
        calls < GOOD + 1,
        "{} events in {calls} calls: batched",
        GOOD + 1
    );
    assert_eq!(outcome.count("acked"), GOOD as u64, "{}", outcome.tail());
    assert!(outcome.left.is_empty(), "nothing left\n{}", outcome.tail());
}
