//! 10% poison: bad JSON, an event type no route handles, an event whose data
//! lacks the field the route's path needs, and one the target refuses with
//! 422. Every poison message must be on the dead-letter topic, once, as it
//! was published, with the `gluefleet-*` attributes naming the reason; every
//! other event must be applied once; and no poison may cost more calls than
//! its kind needs (none before the call, one for the refusal).

use std::collections::BTreeMap;
use std::time::Duration;

use gluefleet_testkit::http_target::Reply;
use gluefleet_testkit::pubsub::OutgoingMessage;
use serde_json::json;

use crate::harness::{self, Fleet, Setup, tail, terminate};

const MESSAGES: usize = 1_000;
/// Every tenth message is poison, its kind taken in turn from [`Kind`].
const POISON_EVERY: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Not JSON, no `ce-*` attributes: `poison`.
    BadJson,
    /// A valid CloudEvent of type `invoice.sent`: `unroutable`.
    UnknownType,
    /// An `order.created` without `data.orderId`: the path cannot be built,
    /// `permanent` without a call.
    MissingField,
    /// An `order.created` whose `total` is not a number: the target answers
    /// 422, `permanent` with the status.
    Rejected,
}

const KINDS: [Kind; 4] = [
    Kind::BadJson,
    Kind::UnknownType,
    Kind::MissingField,
    Kind::Rejected,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dead_letter_topic_with_its_reason_and_the_rest_is_applied_once() {
    let _turn = harness::one_at_a_time().await;
    let mut setup = Setup::new("poison");
    setup.tables = r#"
[delivery]
unroutable = "dead-letter"
"#
    .into();
    let mut fleet = Fleet::start(setup).await;
    fleet.target.rule(|r| {
        let total = r.json().and_then(|b| b.get("total").cloned());
        total
            .is_some_and(|t| !t.is_number())
            .then(|| Reply::status(422).body(r#"{"error":"total must be a number"}"#))
    });

    let mut messages = Vec::new();
    let mut good = Vec::new();
    // fault-id → (kind, the published bytes)
    let mut poison: BTreeMap<String, (Kind, Vec<u8>)> = BTreeMap::new();
    for i in 0..MESSAGES {
        if i % POISON_EVERY != POISON_EVERY - 1 {
            let order = fleet.order(i);
            messages.push(order.message.clone());
            good.push(order);
            continue;
        }
        let kind = KINDS[(i / POISON_EVERY) % KINDS.len()];
        let id = format!("ev-{i:05}");
        let message = match kind {
            Kind::BadJson => OutgoingMessage {
                data: format!("{{\"specversion\": \"1.0\", \"id\": \"{id}\", oops").into_bytes(),
                attributes: BTreeMap::new(),
            },
            Kind::UnknownType => fleet.cloud_event(&id, "invoice.sent", &json!({"invoiceId": i})),
            Kind::MissingField => fleet.cloud_event(&id, "order.created", &json!({"total": i})),
            Kind::Rejected => fleet.cloud_event(
                &id,
                "order.created",
                &json!({"orderId": format!("BAD-{i:05}"), "total": "a lot"}),
            ),
        }
        .with_attr("fault-id", id.clone());
        poison.insert(id, (kind, message.data.clone()));
        messages.push(message);
    }
    let message_ids = fleet.publish(&messages).await;
    let expected = harness::keys(&good);

    let mut worker = fleet.worker(&["run"]).await;
    let delivered = fleet
        .wait_all_applied(&expected, Duration::from_secs(120))
        .await;
    assert!(delivered, "every good event applied\n{}", tail(&worker));
    let mut dead = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while dead.len() < poison.len() && std::time::Instant::now() < deadline {
        dead.extend(fleet.dead_letters().await);
    }
    assert!(
        fleet
            .wait_quiet(Duration::from_secs(2), Duration::from_secs(30))
            .await,
        "the target goes quiet"
    );
    let (status, _) = terminate(&mut worker, Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}\n{}", tail(&worker));
    dead.extend(fleet.dead_letters().await);
    let left = fleet.left_on_subscription().await;
    assert!(left.is_empty(), "{} messages left unacked", left.len());

    // Every poison message once on the dead-letter topic, nothing else.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    for letter in &dead {
        let attr = |k: &str| letter.attributes.get(k).map(String::as_str);
        let id = attr("fault-id").unwrap_or_else(|| {
            panic!(
                "a dead letter that is not one of the poison messages: {:?}",
                letter.attributes
            )
        });
        *seen.entry(id.to_owned()).or_insert(0) += 1;
        let (kind, data) = poison
            .get(id)
            .unwrap_or_else(|| panic!("dead letter {id} was published as a good event"));
        *per_kind.entry(*kind).or_insert(0) += 1;
        assert_eq!(&letter.data, data, "{id}: the original bytes, unchanged");
        let index: usize = id
            .trim_start_matches("ev-")
            .parse()
            .expect("numbered event id");
        assert_eq!(
            attr("gluefleet-original-message-id"),
            Some(message_ids[index].as_str()),
            "{id}"
        );
        assert!(
            attr("gluefleet-original-subscription")
                .is_some_and(|s| s.ends_with(&format!("/subscriptions/{}", harness::SUBSCRIPTION))),
            "{id}: {:?}",
            letter.attributes
        );
        assert_eq!(attr("gluefleet-connector"), Some("legacy-rest"), "{id}");
        assert_eq!(attr("gluefleet-delivery-attempt"), Some("1"), "{id}");
        assert!(attr("gluefleet-failed-at").is_some(), "{id}");
        let error = attr("gluefleet-error").unwrap_or_default();
        let (class, status, route, attempts, says) = match kind {
            Kind::BadJson => ("poison", None, None, "0", "not JSON"),
            Kind::UnknownType => ("unroutable", None, None, "0", "\"invoice.sent\""),
            Kind::MissingField => ("permanent", None, Some("orders"), "1", "data.orderId"),
            Kind::Rejected => (
                "permanent",
                Some("422"),
                Some("orders"),
                "1",
                "total must be a number",
            ),
        };
        assert_eq!(
            attr("gluefleet-error-class"),
            Some(class),
            "{id} ({kind:?}): {:?}",
            letter.attributes
        );
        assert_eq!(attr("gluefleet-http-status"), status, "{id} ({kind:?})");
        assert_eq!(attr("gluefleet-route"), route, "{id} ({kind:?})");
        assert_eq!(
            attr("gluefleet-attempts"),
            Some(attempts),
            "{id} ({kind:?})"
        );
        assert!(
            error.contains(says),
            "{id} ({kind:?}): the reason names {says:?}: {error}"
        );
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "dead-lettered more than once: {twice:?}");
    let missing: Vec<_> = poison.keys().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} poison messages not on the dead-letter topic: {missing:?}",
        missing.len()
    );

    // Calls: one per good event and one per refused event; none for the
    // poison that fails before the call.
    let requests = fleet.target.requests();
    let rejected = per_kind.get(&Kind::Rejected).copied().unwrap_or_default();
    let refused = requests.iter().filter(|r| r.status == 422).count();
    assert_eq!(refused, rejected, "each refused event was called once");
    let tally = fleet.tally(&expected);
    tally.assert_exactly_once(&tail(&worker));
    assert_eq!(
        tally.requests,
        good.len() + rejected,
        "no retries and no calls for poison that cannot be sent"
    );
    let kinds = per_kind
        .iter()
        .map(|(k, n)| format!("{k:?}:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    fleet.report(
        &tally,
        dead.len(),
        &[
            ("poison", poison.len().to_string()),
            ("by_kind", kinds),
            ("refused_422", refused.to_string()),
        ],
    );
}
