//! Group-committed purchases: many buyers decided by one script call, each
//! as a call of their own would have decided them.

use api::{
    batch::{Purchases, MAX_BYTES},
    inventory::{AttemptLimit, Inventory},
    queue::OrderQueue,
    sale::{ArmedSale, Sale},
    settings::ReplicaAcks,
    Settings,
};
use domain::{LedgerEntry, OrderId, PurchaseOutcome, SaleKeys, UserId};
use fred::prelude::HashesInterface;
use futures::future::join_all;
use serde_json::Value;

use crate::helpers::{count, redis_get, sample, spawn_app_with, TestApp, TestConfig};

/// An armed sale of `stock` (armed by an app) and a batcher of its own.
async fn armed(stock: u64, max_attempts: u32) -> (TestApp, Purchases) {
    let app = spawn_app_with(TestConfig::active(stock)).await;
    let settings = Settings::from_env(&app.config.env()).expect("settings");
    let inventory = Inventory::connect(&settings.redis, 1, SaleKeys::new(&app.config.sale_id()))
        .await
        .expect("connect");
    let limit = AttemptLimit {
        max_attempts,
        window_seconds: 60,
    };
    let sale = ArmedSale::default();
    sale.set(Sale {
        id: app.config.sale_id(),
        total_stock: stock,
        window: settings.sale.window,
    });
    let on_the_primary_alone = ReplicaAcks {
        min: 0,
        timeout: std::time::Duration::from_millis(100),
    };
    let queue = OrderQueue::spawn(&settings.queue_redis, &settings.queue).expect("queue");
    let purchases = Purchases::spawn(
        inventory.clone(),
        inventory,
        limit,
        sale,
        on_the_primary_alone,
        queue,
        |_: &PurchaseOutcome| {},
    );
    (app, purchases)
}

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("valid user id")
}

/// Purchase-script calls this process made so far.
fn batches() -> f64 {
    sample(
        &api::metrics::handle().render(),
        "flash_sale_purchase_batches_total",
        &[],
    )
    .unwrap_or(0.0)
}

/// Hands every purchase to the batcher before it runs (one thread: the
/// batcher cannot run until all are waiting), so they form one batch.
async fn decide_together(
    purchases: &Purchases,
    buyers: &[(UserId, OrderId)],
) -> Vec<PurchaseOutcome> {
    join_all(
        buyers
            .iter()
            .map(|(user, order)| purchases.decide(user.clone(), *order)),
    )
    .await
    .into_iter()
    .map(|outcome| outcome.expect("decided"))
    .collect()
}

#[tokio::test]
async fn a_buyer_twice_in_one_batch_gets_the_order_then_a_409_with_it() {
    let (app, purchases) = armed(5, 0).await;
    let before = batches();
    let buyers = [
        (user("twice"), OrderId::new()),
        (user("other"), OrderId::new()),
        (user("twice"), OrderId::new()),
    ];

    let outcomes = decide_together(&purchases, &buyers).await;

    assert_eq!(batches() - before, 1.0, "one script call decided all three");
    let PurchaseOutcome::Confirmed { purchased_at, .. } = outcomes[0] else {
        panic!("the first purchase of `twice` is confirmed: {outcomes:?}");
    };
    assert!(matches!(
        outcomes[1],
        PurchaseOutcome::Confirmed { stock_left: 3, .. }
    ));
    assert_eq!(
        outcomes[2],
        PurchaseOutcome::Duplicate(LedgerEntry {
            order_id: buyers[0].1,
            purchased_at,
        }),
        "the second purchase of `twice` answers with the first one's order"
    );
    assert_eq!(redis_get(&app.keys().stock()).await.as_deref(), Some("3"));
    let scrape = app.get("/api/purchases/twice").await;
    let body: Value = scrape.json().await.expect("json");
    assert_eq!(body["orderId"], buyers[0].1.to_string());
}

#[tokio::test]
async fn in_a_rush_a_batch_waits_one_turn_for_purchases_already_on_their_way() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (_app, purchases) = armed(10, 0).await;
    // A batch of two: the batcher now knows it is in a rush.
    let rush = [(user("r-1"), OrderId::new()), (user("r-2"), OrderId::new())];
    decide_together(&purchases, &rush).await;
    // `r-4`'s request is still on the wire: its handler waits to read it.
    let (mut wire, mut request) = tokio::net::UnixStream::pair().expect("a socket pair");
    let on_the_wire = tokio::spawn({
        let purchases = purchases.clone();
        async move {
            let mut byte = [0u8; 1];
            request.read_exact(&mut byte).await.expect("read");
            purchases.decide(user("r-4"), OrderId::new()).await
        }
    });
    tokio::task::yield_now().await;
    let before = batches();

    // It arrives (the runtime has not looked at the socket yet) just
    // as `r-3`'s purchase wakes the batcher.
    wire.write_all(b"!").await.expect("write");
    let first = purchases.decide(user("r-3"), OrderId::new()).await;
    let second = on_the_wire.await.expect("joined");

    for outcome in [&first, &second] {
        assert!(
            matches!(outcome, Ok(PurchaseOutcome::Confirmed { .. })),
            "{outcome:?}"
        );
    }
    assert_eq!(batches() - before, 1.0, "both in one script call");
}

/// The entry the ledger holds for `user`.
async fn ledger_entry(app: &TestApp, user: &str) -> Option<LedgerEntry> {
    let raw: Option<String> = crate::helpers::redis()
        .await
        .hget(app.keys().buyers(), user)
        .await
        .expect("HGET");
    raw.map(|raw| LedgerEntry::parse(&raw).expect("a ledger entry"))
}

#[tokio::test]
async fn a_batch_answers_earlier_buyers_and_writes_each_new_buyer_their_own_entry() {
    let (app, purchases) = armed(3, 0).await;
    let early = user("early");
    let first = purchases
        .decide(early.clone(), OrderId::new())
        .await
        .expect("decided");
    let PurchaseOutcome::Confirmed {
        purchased_at: early_at,
        ..
    } = first
    else {
        panic!("the first buyer is confirmed: {first:?}");
    };
    let early_order = ledger_entry(&app, "early").await.expect("early's entry");
    let buyers = [
        (early, OrderId::new()),
        (user("n-a"), OrderId::new()),
        (user("n-b"), OrderId::new()),
        (user("n-a"), OrderId::new()),
        (user("n-c"), OrderId::new()),
    ];

    let outcomes = decide_together(&purchases, &buyers).await;

    assert_eq!(
        outcomes[0],
        PurchaseOutcome::Duplicate(LedgerEntry {
            order_id: early_order.order_id,
            purchased_at: early_at,
        }),
        "an earlier buyer is answered their order while stock is left"
    );
    let PurchaseOutcome::Confirmed {
        purchased_at,
        stock_left: 1,
    } = outcomes[1]
    else {
        panic!("{outcomes:?}");
    };
    assert!(matches!(
        outcomes[2],
        PurchaseOutcome::Confirmed { stock_left: 0, .. }
    ));
    let a = LedgerEntry {
        order_id: buyers[1].1,
        purchased_at,
    };
    assert_eq!(outcomes[3], PurchaseOutcome::Duplicate(a));
    assert!(
        matches!(outcomes[4], PurchaseOutcome::SoldOut { buyers: 3, .. }),
        "{outcomes:?}"
    );
    assert_eq!(ledger_entry(&app, "n-a").await, Some(a));
    assert_eq!(
        ledger_entry(&app, "n-b").await,
        Some(LedgerEntry {
            order_id: buyers[2].1,
            purchased_at,
        })
    );
    assert_eq!(ledger_entry(&app, "n-c").await, None);
    assert_eq!(redis_get(&app.keys().stock()).await.as_deref(), Some("0"));
}

/// This process's order-queue counter `name`.
fn queued(name: &str) -> f64 {
    sample(&api::metrics::handle().render(), name, &[]).unwrap_or(0.0)
}

#[tokio::test]
async fn a_batch_hands_its_confirmed_orders_to_the_queue_as_one_job() {
    let (_app, purchases) = armed(5, 0).await;
    let buyers = [
        (user("q-twice"), OrderId::new()),
        (user("q-other"), OrderId::new()),
        (user("q-twice"), OrderId::new()),
    ];

    let outcomes = decide_together(&purchases, &buyers).await;
    // The batcher hands the orders over before answering; the push itself
    // follows at once, on the batcher's thread.
    let started = std::time::Instant::now();
    while queued("flash_sale_order_jobs_pushed_total") < 2.0
        && started.elapsed() < std::time::Duration::from_secs(5)
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    assert!(matches!(outcomes[2], PurchaseOutcome::Duplicate(_)));
    assert_eq!(
        queued("flash_sale_order_jobs_pushed_total"),
        2.0,
        "the two confirmed orders, not the 409"
    );
    assert_eq!(
        queued("flash_sale_order_batches_pushed_total"),
        1.0,
        "in one job"
    );
    assert_eq!(queued("flash_sale_order_job_push_failures_total"), 0.0);
}

#[tokio::test]
async fn one_buyers_refusal_never_fails_the_others_in_the_batch() {
    let (app, purchases) = armed(2, 1).await;
    // `eager` used their one attempt before the batch.
    let eager = user("eager");
    purchases
        .decide(eager.clone(), OrderId::new())
        .await
        .expect("decided");
    let before = batches();
    let buyers = [
        (eager, OrderId::new()),
        (user("b-1"), OrderId::new()),
        (user("b-2"), OrderId::new()),
    ];

    let outcomes = decide_together(&purchases, &buyers).await;

    assert_eq!(batches() - before, 1.0, "one script call decided all three");
    assert_eq!(outcomes[0], PurchaseOutcome::TooManyAttempts);
    assert!(
        matches!(
            outcomes[1],
            PurchaseOutcome::Confirmed { stock_left: 0, .. }
        ),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[2], PurchaseOutcome::SoldOut { buyers: 2, .. }),
        "the stock ran out within the batch: {outcomes:?}"
    );
    assert_eq!(redis_get(&app.keys().stock()).await.as_deref(), Some("0"));
}

#[tokio::test]
async fn a_batch_is_bounded_by_the_bytes_of_its_user_ids() {
    let (app, purchases) = armed(200, 0).await;
    // 255 four-byte characters: 1,020 bytes a user id.
    let long = |i: usize| user(&format!("{i:03}{}", "𝄞".repeat(252)));
    let buyers: Vec<_> = (0..100).map(|i| (long(i), OrderId::new())).collect();
    let before = batches();

    let outcomes = decide_together(&purchases, &buyers).await;

    let per_call = MAX_BYTES / 1020;
    assert_eq!(
        batches() - before,
        100usize.div_ceil(per_call) as f64,
        "at most {per_call} such buyers a call"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, PurchaseOutcome::Confirmed { .. })),
        "{outcomes:?}"
    );
    assert_eq!(redis_get(&app.keys().stock()).await.as_deref(), Some("100"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_simultaneous_requests_of_one_user_give_exactly_one_201() {
    let app = spawn_app_with(TestConfig::active(10)).await;

    let answers = join_all((0..100).map(|_| async {
        let response = app.purchase("storm").await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        (status, body)
    }))
    .await;

    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(count(&statuses, 201), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 99, "{statuses:?}");
    let order = &answers.iter().find(|(s, _)| *s == 201).expect("one 201").1["orderId"];
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s == 409)
            .all(|(_, body)| &body["orderId"] == order),
        "every 409 names the one order"
    );
    assert_eq!(app.sale_status().await["stockRemaining"], 9);
}
